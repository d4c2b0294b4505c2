//! The four NuroPb message types.

use std::fmt;

/// The `nuropb_type` of a message: what it asks of its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Call a method and expect a response.
    Request,
    /// Call a method, fire and forget.
    Command,
    /// Announce something on a topic.
    Event,
    /// The outcome of a request.
    Response,
}

impl MessageType {
    /// All four, in the order Python lists them.
    pub const ALL: [MessageType; 4] = [
        MessageType::Request,
        MessageType::Response,
        MessageType::Event,
        MessageType::Command,
    ];

    /// The wire name, as in the `nuropb_type` header and the body's `tag`.
    ///
    /// ```
    /// use nuropb_proto::message::MessageType;
    /// assert_eq!(MessageType::Command.as_str(), "command");
    /// assert_eq!(MessageType::parse("event"), Some(MessageType::Event));
    /// assert_eq!(MessageType::parse("bogus"), None);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Request => "request",
            MessageType::Command => "command",
            MessageType::Event => "event",
            MessageType::Response => "response",
        }
    }

    /// The type named `name`, if it is one of the four.
    pub fn parse(name: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
