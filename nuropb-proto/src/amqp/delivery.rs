//! Reassembling content: a content-carrying method (`basic.deliver`, `basic.return`,
//! `basic.get-ok`), then its header frame, then body frames until the announced size is reached.
//!
//! The event's message is built where it stays: the method fields when the method arrives, the
//! properties decoded straight into it, the body buffer sized from the header (capped) so that a
//! body arriving in one frame is copied once, into the `Vec` the event hands out.
//!
//! What is wrong inside one content — properties that do not decode, a body over the limit — is
//! that message's problem: the body frames are still counted off (and dropped), and the content
//! ends as an [`Unreadable`] with what could be read of its properties. Only what breaks the
//! framing (a header of another class, a body frame longer than what remains, frames out of
//! order) is the connection's.

use amq_protocol::types::{ChannelId, ShortString};

use crate::amqp::error::{Violation, reply_code};
use crate::amqp::event::{
    Completion, ContentError, Delivery, Event, GetMessage, Origin, Returned, SyncId, Unreadable,
};
use crate::amqp::properties::Properties;
use crate::amqp::wire::Deliver;

/// How much body buffer to reserve up front; larger bodies grow it as they arrive.
const MAX_PREALLOCATION: u64 = 1 << 20;

/// The message being assembled, in the shape of its event.
#[derive(Debug)]
enum Content {
    Deliver(Delivery),
    Return(Returned),
    Get(SyncId, GetMessage),
}

/// A content being received on one channel.
#[derive(Debug)]
pub(crate) struct Assembly {
    content: Content,
    /// Body bytes still to come; `None` until the content header arrived.
    remaining: Option<u64>,
    /// Why the content cannot be read, and the body size its header announced: its body is
    /// counted off, not kept.
    fault: Option<(ContentError, u64)>,
}

impl Assembly {
    /// After `basic.deliver`.
    pub(crate) fn deliver(channel: ChannelId, d: Deliver) -> Self {
        Self::new(Content::Deliver(Delivery {
            channel,
            consumer_tag: d.consumer_tag,
            delivery_tag: d.delivery_tag,
            redelivered: d.redelivered,
            exchange: d.exchange,
            routing_key: d.routing_key,
            properties: Properties::default(),
            body: Vec::new(),
        }))
    }

    /// After `basic.return`.
    pub(crate) fn returned(
        channel: ChannelId,
        reply_code: u16,
        reply_text: ShortString,
        exchange: ShortString,
        routing_key: ShortString,
    ) -> Self {
        Self::new(Content::Return(Returned {
            channel,
            reply_code,
            reply_text,
            exchange,
            routing_key,
            properties: Properties::default(),
            body: Vec::new(),
        }))
    }

    /// After `basic.get-ok` answering `request`.
    pub(crate) fn got(
        request: SyncId,
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortString,
        routing_key: ShortString,
        message_count: u32,
    ) -> Self {
        Self::new(Content::Get(
            request,
            GetMessage {
                delivery_tag,
                redelivered,
                exchange,
                routing_key,
                message_count,
                properties: Properties::default(),
                body: Vec::new(),
            },
        ))
    }

    fn new(content: Content) -> Self {
        Assembly {
            content,
            remaining: None,
            fault: None,
        }
    }

    fn parts(&mut self) -> (&mut Properties, &mut Vec<u8>) {
        match &mut self.content {
            Content::Deliver(d) => (&mut d.properties, &mut d.body),
            Content::Return(r) => (&mut r.properties, &mut r.body),
            Content::Get(_, g) => (&mut g.properties, &mut g.body),
        }
    }

    /// Takes the content header; `Ok(true)` when the content is complete (empty body).
    pub(crate) fn header(&mut self, payload: &[u8], max_body: u64) -> Result<bool, Violation> {
        if self.remaining.is_some() {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                "content header while a content body was expected",
            ));
        }
        let Some((fixed, props)) = payload.split_first_chunk::<12>() else {
            return Err(Violation::new(
                reply_code::FRAME_ERROR,
                "malformed content header: shorter than 12 bytes",
            ));
        };
        let class_id = u16::from_be_bytes([fixed[0], fixed[1]]);
        // fixed[2..4] is the unused weight field.
        let mut size = [0; 8];
        size.copy_from_slice(&fixed[4..12]);
        let body_size = u64::from_be_bytes(size);
        if class_id != 60 {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                format!("content header of class {class_id} after a basic method"),
            ));
        }
        let (properties, body) = self.parts();
        let unreadable = properties.decode_into(props).err().map(ContentError::from);
        let fault = unreadable.or_else(|| {
            (body_size > max_body).then_some(ContentError::BodyTooLarge {
                size: body_size,
                limit: max_body,
            })
        });
        if fault.is_none() {
            *body = Vec::with_capacity(body_size.min(MAX_PREALLOCATION) as usize);
        }
        self.fault = fault.map(|f| (f, body_size));
        self.remaining = Some(body_size);
        Ok(body_size == 0)
    }

    /// Takes a body frame; `Ok(true)` when the content is complete.
    pub(crate) fn body(&mut self, payload: &[u8]) -> Result<bool, Violation> {
        let Some(remaining) = self.remaining else {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                "content body before its content header",
            ));
        };
        let len = payload.len() as u64;
        if len > remaining {
            return Err(Violation::new(
                reply_code::FRAME_ERROR,
                format!("content body frame of {len} bytes where {remaining} remained"),
            ));
        }
        if self.fault.is_none() {
            self.parts().1.extend_from_slice(payload);
        }
        self.remaining = Some(remaining - len);
        Ok(remaining == len)
    }

    /// The event for a complete content.
    pub(crate) fn finish(self, channel: ChannelId) -> Event {
        let Some((error, body_size)) = self.fault else {
            return match self.content {
                Content::Deliver(d) => Event::Delivery(d),
                Content::Return(r) => Event::Returned(r),
                Content::Get(id, message) => Event::Completed {
                    channel,
                    id,
                    result: Ok(Completion::Got(Box::new(message))),
                },
            };
        };
        let unreadable = |origin, exchange, routing_key, properties| {
            Box::new(Unreadable {
                channel,
                origin,
                exchange,
                routing_key,
                properties,
                body_size,
                error,
            })
        };
        match self.content {
            Content::Deliver(d) => Event::Unreadable(unreadable(
                Origin::Delivery {
                    consumer_tag: d.consumer_tag,
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                },
                d.exchange,
                d.routing_key,
                d.properties,
            )),
            Content::Return(r) => Event::Unreadable(unreadable(
                Origin::Returned {
                    reply_code: r.reply_code,
                    reply_text: r.reply_text,
                },
                r.exchange,
                r.routing_key,
                r.properties,
            )),
            Content::Get(id, g) => Event::Completed {
                channel,
                id,
                result: Ok(Completion::GotUnreadable(unreadable(
                    Origin::Got {
                        delivery_tag: g.delivery_tag,
                        redelivered: g.redelivered,
                        message_count: g.message_count,
                    },
                    g.exchange,
                    g.routing_key,
                    g.properties,
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u16, size: u64) -> Vec<u8> {
        let mut h = class.to_be_bytes().to_vec();
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&size.to_be_bytes());
        Properties::default().encode(&mut h);
        h
    }

    fn deliver() -> Assembly {
        Assembly::deliver(
            3,
            Deliver {
                consumer_tag: "c".into(),
                delivery_tag: 1,
                redelivered: false,
                exchange: "".into(),
                routing_key: "q".into(),
            },
        )
    }

    #[test]
    fn a_body_in_three_frames() {
        let mut a = deliver();
        assert_eq!(a.header(&header(60, 6), 100), Ok(false));
        assert_eq!(a.body(b"ab"), Ok(false));
        assert_eq!(a.body(b"cd"), Ok(false));
        assert_eq!(a.body(b"ef"), Ok(true));
        match a.finish(3) {
            Event::Delivery(d) => {
                assert_eq!(d.channel, 3);
                assert_eq!(d.body, b"abcdef");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_body_completes_at_the_header() {
        let mut a = deliver();
        assert_eq!(a.header(&header(60, 0), 100), Ok(true));
    }

    fn unreadable(event: Event) -> Unreadable {
        match event {
            Event::Unreadable(u) => *u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_over_the_limit_is_counted_off_not_kept() {
        let mut a = deliver();
        assert_eq!(a.header(&header(60, 101), 100), Ok(false));
        assert_eq!(a.body(&[7; 60]), Ok(false));
        assert_eq!(a.body(&[7; 41]), Ok(true));
        let u = unreadable(a.finish(3));
        assert_eq!(
            u.error,
            ContentError::BodyTooLarge {
                size: 101,
                limit: 100
            }
        );
        assert_eq!(u.body_size, 101);
        assert_eq!(
            u.origin,
            Origin::Delivery {
                consumer_tag: "c".into(),
                delivery_tag: 1,
                redelivered: false
            }
        );
    }

    #[test]
    fn properties_that_do_not_decode_make_the_content_unreadable() {
        let mut bad = header(60, 3);
        bad.push(0);
        let mut a = deliver();
        assert_eq!(a.header(&bad, 100), Ok(false));
        assert_eq!(a.body(b"abc"), Ok(true));
        let u = unreadable(a.finish(3));
        assert_eq!(
            u.error,
            ContentError::Properties(crate::amqp::PropertiesError::TrailingBytes(1))
        );
        // Framing still holds the connection to account: more body than announced.
        let mut a = deliver();
        a.header(&bad, 100).unwrap();
        assert_eq!(a.body(b"abcd").unwrap_err().code, 501);
    }

    #[test]
    fn violations_carry_their_reply_codes() {
        let code = |r: Result<bool, Violation>| r.unwrap_err().code;
        assert_eq!(code(deliver().body(b"x")), 505);
        assert_eq!(code(deliver().header(&header(50, 1), 100)), 505);
        assert_eq!(code(deliver().header(&[0, 60], 100)), 501);
        let mut a = deliver();
        a.header(&header(60, 2), 100).unwrap();
        assert_eq!(code(a.body(b"abc")), 501);
        let mut a = deliver();
        a.header(&header(60, 2), 100).unwrap();
        assert_eq!(code(a.header(&header(60, 2), 100)), 505);
    }
}
