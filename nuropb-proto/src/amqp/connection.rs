//! [`Connection`]: the AMQP 0-9-1 client state machine. Bytes in, bytes out, events out, time in.

use std::collections::VecDeque;
use std::time::Instant;

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{ChannelId, ShortString};

use crate::amqp::channel::Channel;
use crate::amqp::channel::Closed as ChannelClosedHow;
use crate::amqp::config::Config;
use crate::amqp::error::{ConnectionError, Error, Violation};
use crate::amqp::event::{Event, SyncId, Tuning};
use crate::amqp::frame::{
    FrameError, FrameReader, MIN_FRAME_MAX, write_heartbeat, write_method, write_protocol_header,
};
use crate::amqp::handshake::Stage;
use crate::amqp::heartbeat::{Due, Heartbeat};

/// An AMQP 0-9-1 client connection, without I/O.
///
/// It holds the protocol state of one connection to a broker: the handshake, channels, requests
/// awaiting replies, content being reassembled, publisher confirms and heartbeats. It never reads a
/// clock, sleeps, spawns or touches a socket: a runtime adapter moves bytes and time in and out.
///
/// The methods fall in four groups, as in `quinn-proto`:
///
/// - **Handlers** `handle_*`: something happened outside — bytes arrived ([`handle_input`]), the
///   socket closed ([`handle_eof`]), a timer fired ([`handle_timeout`]).
/// - **Commands** (e.g. [`open_channel`], [`queue_declare`], [`basic_publish`], [`basic_ack`],
///   [`close`]): the application wants something. They write frames into the transmit buffer and
///   return at once; a request's reply comes later as [`Event::Completed`] carrying the
///   [`SyncId`] the command returned. A command that is refused returns an [`Error`] and sends
///   nothing.
/// - **Polls** `poll_*`: what the driver must do now — bytes to write ([`poll_transmit`]), events
///   to act on ([`poll_event`]), when to call back ([`poll_timeout`]).
/// - **Getters** taking `&self`.
///
/// # Driving it
///
/// 1. Open a TCP (or TLS) stream and create the connection with [`Connection::new`]. It has the
///    protocol header ready to send.
/// 2. Loop:
///    - after **any** handler or command, drain [`poll_event`] until `None`, then write what
///      [`poll_transmit`] gives (all pending frames in one buffer, so one write per wake-up), then
///      (re)arm a single timer for [`poll_timeout`];
///    - when bytes arrive, call [`handle_input`] with them and the current time, in any chunking;
///    - when the timer fires, call [`handle_timeout`] with the current time;
///    - when the socket reaches end-of-file or fails, call [`handle_eof`].
/// 3. Stop after [`Event::Closed`] (always the last event) once [`poll_transmit`] is flushed, and
///    drop the socket.
///
/// # Time
///
/// Time comes in through `new`, the handlers and [`close`] (the one command that starts a timer);
/// an earlier `now` than one given before counts as the later one — time never goes back, the
/// rule of every state machine here ([`crate::mesh::Endpoint`], the testkit's broker). The other
/// commands start no timer and are stamped with the latest time given. Bytes handed out by
/// [`poll_transmit`] count as sent at the latest time passed in, which can only make a heartbeat go
/// out early, never late.
///
/// # Bounds
///
/// Input is buffered only up to one frame, checked against `frame_max` from its 7-byte header, plus
/// one message body up to [`Config::max_body_size`]. The event queue is not capped but bounded by
/// input and by the caller: at most one event per frame of input, except that a `basic.ack` with
/// `multiple` or a closing channel or connection adds one event per pending request and unconfirmed
/// publish — which the caller created. The driver empties it after each handler. The transmit
/// buffer holds what the caller's commands and the handlers wrote since the last `poll_transmit`.
/// Channels are bounded by the negotiated `channel_max`.
///
/// # Peer errors
///
/// Nothing the broker sends can make it panic. A protocol violation closes the connection with the
/// AMQP reply code for it (501 frame error, 502 syntax error, 503 command invalid, 504 channel
/// error, 505 unexpected frame, 506 resource error) and ends in [`Event::Closed`] with
/// [`ConnectionError::ProtocolViolation`]: at once when the byte stream itself is broken, otherwise
/// after the broker's `close-ok` (or [`Config::close_timeout`]).
///
/// # Example
///
/// ```
/// use std::time::Instant;
/// use nuropb_proto::amqp::{Config, Connection, Event};
///
/// let now = Instant::now();
/// let mut conn = Connection::new(Config::new("guest", "guest", "/"), now).unwrap();
/// let mut out = Vec::new();
/// conn.poll_transmit(&mut out);
/// assert_eq!(out, b"AMQP\x00\x00\x09\x01"); // write this to the socket
/// assert!(conn.poll_event().is_none());
/// // The handshake must finish within Config::handshake_timeout:
/// assert_eq!(conn.poll_timeout(), Some(now + conn.config().handshake_timeout));
/// conn.handle_eof(now); // the broker hung up
/// assert!(matches!(conn.poll_event(), Some(Event::Closed { by_peer: true, .. })));
/// ```
///
/// [`handle_input`]: Connection::handle_input
/// [`handle_eof`]: Connection::handle_eof
/// [`handle_timeout`]: Connection::handle_timeout
/// [`poll_transmit`]: Connection::poll_transmit
/// [`poll_event`]: Connection::poll_event
/// [`poll_timeout`]: Connection::poll_timeout
/// [`open_channel`]: Connection::open_channel
/// [`queue_declare`]: Connection::queue_declare
/// [`basic_publish`]: Connection::basic_publish
/// [`basic_ack`]: Connection::basic_ack
/// [`close`]: Connection::close
#[derive(Debug)]
pub struct Connection {
    pub(crate) reader: FrameReader,
    pub(crate) inner: Inner,
}

/// Where the connection is.
#[derive(Debug)]
pub(crate) enum State {
    Handshake(Stage),
    Open,
    /// We sent `connection.close`; waiting for `close-ok`. Everything else is discarded.
    Closing {
        reply_code: u16,
        reply_text: String,
        /// What [`Event::Closed`] will report.
        error: Option<ConnectionError>,
    },
    Closed,
}

/// Everything but the frame reader, so that a frame borrowed from the reader can be handled.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) state: State,
    /// Frames to send, appended by commands and handlers.
    pub(crate) out: Vec<u8>,
    pub(crate) events: VecDeque<Event>,
    /// Indexed by channel number; slot 0 stays empty.
    pub(crate) channels: Vec<Option<Channel>>,
    pub(crate) tuning: Tuning,
    pub(crate) heartbeat: Heartbeat,
    /// The latest time passed in.
    pub(crate) now: Instant,
    /// Handshake or close-ok deadline.
    pub(crate) deadline: Option<Instant>,
    pub(crate) next_request: u64,
    pub(crate) blocked: bool,
    /// From `connection.start`, handed out in [`Event::Connected`].
    pub(crate) server_properties: amq_protocol::types::FieldTable,
    /// A new frame size limit for the reader, set by `connection.tune`.
    pub(crate) new_frame_max: Option<u32>,
}

/// The reader's limit for a negotiated (or proposed) `frame_max`; 0 means no limit.
pub(crate) fn reader_limit(frame_max: u32) -> u32 {
    if frame_max == 0 {
        u32::MAX
    } else {
        frame_max.max(MIN_FRAME_MAX)
    }
}

impl Connection {
    /// A connection that starts its handshake at `now`: the protocol header is ready in
    /// [`Connection::poll_transmit`].
    ///
    /// Fails when the configuration cannot go on the wire (a name longer than 255 bytes, a
    /// `frame_max` below 4096).
    pub fn new(config: Config, now: Instant) -> Result<Connection, Error> {
        config.validate()?;
        let mut out = Vec::with_capacity(1024);
        write_protocol_header(&mut out);
        let tuning = Tuning {
            channel_max: 0,
            frame_max: MIN_FRAME_MAX,
            heartbeat: 0,
        };
        Ok(Connection {
            // Before tuning, accept frames up to what we will propose.
            reader: FrameReader::new(reader_limit(config.frame_max)),
            inner: Inner {
                deadline: now.checked_add(config.handshake_timeout),
                config,
                state: State::Handshake(Stage::Start),
                out,
                events: VecDeque::new(),
                channels: Vec::new(),
                tuning,
                heartbeat: Heartbeat::new(now),
                now,
                next_request: 0,
                blocked: false,
                server_properties: Default::default(),
                new_frame_max: None,
            },
        })
    }

    // ----- handlers -----

    /// Takes bytes read from the socket, in any chunking: a partial frame is kept for the next
    /// call, many frames are handled in order.
    pub fn handle_input(&mut self, mut input: &[u8], now: Instant) {
        let inner = &mut self.inner;
        inner.tick(now);
        if inner.is_closed() {
            return;
        }
        if !input.is_empty() {
            inner.heartbeat.received(inner.now);
        }
        loop {
            let raw = match self.reader.next_raw(&mut input) {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    self.inner.broken_stream(e);
                    break;
                }
            };
            if let Err(v) = self.inner.on_frame(raw) {
                self.inner.violate(v);
            }
            if let Some(limit) = self.inner.new_frame_max.take() {
                self.reader.set_frame_max(limit);
            }
            if self.inner.is_closed() {
                break;
            }
        }
    }

    /// The socket reached end-of-file or failed.
    ///
    /// Right after `start-ok` this means the broker refused the credentials
    /// ([`ConnectionError::AuthenticationFailed`]); while closing, the close is complete; otherwise
    /// it is [`ConnectionError::SocketClosed`].
    pub fn handle_eof(&mut self, now: Instant) {
        let inner = &mut self.inner;
        inner.tick(now);
        match &mut inner.state {
            State::Closed => {}
            State::Closing { .. } => inner.finish_closing(),
            State::Handshake(Stage::Tune) => inner.finish(
                0,
                "socket closed after start-ok".into(),
                true,
                Some(ConnectionError::AuthenticationFailed {
                    reply_text: "the broker closed the socket after start-ok".into(),
                }),
            ),
            _ => inner.finish(
                0,
                "socket closed".into(),
                true,
                Some(ConnectionError::SocketClosed),
            ),
        }
    }

    /// A timer armed from [`Connection::poll_timeout`] fired (calling it early is harmless).
    ///
    /// Sends a heartbeat when nothing was sent for one interval; declares the broker dead
    /// ([`ConnectionError::HeartbeatTimeout`]) when nothing arrived for two; ends a handshake or a
    /// close that takes too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let inner = &mut self.inner;
        inner.tick(now);
        if inner.is_closed() {
            return;
        }
        if inner.deadline.is_some_and(|d| inner.now >= d) {
            match &mut inner.state {
                State::Closing { .. } => inner.finish_closing(),
                _ => inner.finish(
                    0,
                    "handshake timed out".into(),
                    false,
                    Some(ConnectionError::HandshakeTimeout),
                ),
            }
            return;
        }
        match inner.heartbeat.due(inner.now) {
            Due::Nothing => {}
            Due::Send => {
                write_heartbeat(&mut inner.out);
                inner.heartbeat.sent(inner.now);
            }
            Due::Dead => inner.finish(
                0,
                "missed heartbeats".into(),
                true,
                Some(ConnectionError::HeartbeatTimeout),
            ),
        }
    }

    // ----- polls -----

    /// Appends every frame waiting to be sent to `buf` and returns how many bytes that was (0 when
    /// there is nothing to send). Write them all to the socket.
    ///
    /// When `buf` is empty the internal buffer is swapped with it, not copied, so passing the same
    /// cleared `Vec` each time recycles two allocations.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let inner = &mut self.inner;
        let n = inner.out.len();
        if n == 0 {
            return 0;
        }
        if buf.is_empty() {
            std::mem::swap(buf, &mut inner.out);
        } else {
            buf.extend_from_slice(&inner.out);
            inner.out.clear();
        }
        inner.heartbeat.sent(inner.now);
        n
    }

    /// How many bytes wait for [`Connection::poll_transmit`]: what a caller bounds when the
    /// socket is slower than what it publishes.
    pub fn pending_output(&self) -> usize {
        self.inner.out.len()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.inner.events.pop_front()
    }

    /// When to call [`Connection::handle_timeout`] next; `None` when no timer is needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let inner = &self.inner;
        if inner.is_closed() {
            return None;
        }
        match (inner.deadline, inner.heartbeat.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- getters -----

    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The settled limits, once the handshake got that far.
    pub fn tuning(&self) -> Option<Tuning> {
        match self.inner.state {
            State::Handshake(Stage::Start | Stage::Tune) => None,
            _ => Some(self.inner.tuning),
        }
    }

    /// Whether the handshake finished and the connection is not closing.
    pub fn is_open(&self) -> bool {
        matches!(self.inner.state, State::Open)
    }

    /// Whether [`Event::Closed`] has been queued.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether the broker has blocked the connection (`connection.blocked`).
    pub fn is_blocked(&self) -> bool {
        self.inner.blocked
    }

    /// Whether `channel` is open (or opening) and not closing.
    pub fn channel_is_open(&self, channel: ChannelId) -> bool {
        matches!(
            self.inner.channel(channel).map(|c| &c.state),
            Some(
                crate::amqp::channel::ChannelState::Open
                    | crate::amqp::channel::ChannelState::Opening
            )
        )
    }

    // ----- connection commands (channel and method commands are in `command.rs`) -----

    /// Closes the connection with `reply_code` (200 for a normal close) and `reply_text` at
    /// `now`, from which [`Config::close_timeout`] counts.
    ///
    /// [`Event::Closed`] follows the broker's `close-ok` (or the close timeout), with
    /// `error: None`. Everything the broker sends meanwhile is discarded.
    pub fn close(&mut self, reply_code: u16, reply_text: &str, now: Instant) -> Result<(), Error> {
        let text = crate::amqp::config::short("reply text", reply_text)?;
        let inner = &mut self.inner;
        inner.tick(now);
        match inner.state {
            State::Closing { .. } | State::Closed => Err(Error::Closed),
            State::Handshake(Stage::Start) => {
                inner.finish(reply_code, reply_text.into(), false, None);
                Ok(())
            }
            _ => {
                inner.send_close(reply_code, text, 0, 0, None);
                Ok(())
            }
        }
    }
}

impl Inner {
    /// Moves time forward (never back).
    pub(crate) fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub(crate) fn channel(&self, channel: ChannelId) -> Option<&Channel> {
        self.channels.get(channel as usize)?.as_ref()
    }

    pub(crate) fn channel_mut(&mut self, channel: ChannelId) -> Option<&mut Channel> {
        self.channels.get_mut(channel as usize)?.as_mut()
    }

    pub(crate) fn next_request(&mut self) -> SyncId {
        self.next_request += 1;
        SyncId(self.next_request)
    }

    /// Sends `connection.close` and waits for `close-ok`.
    pub(crate) fn send_close(
        &mut self,
        reply_code: u16,
        reply_text: ShortString,
        class_id: u16,
        method_id: u16,
        error: Option<ConnectionError>,
    ) {
        let text = reply_text.to_string();
        write_method(
            &mut self.out,
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code,
                reply_text,
                class_id,
                method_id,
            })),
        );
        self.heartbeat.stop();
        self.deadline = self.now.checked_add(self.config.close_timeout);
        self.state = State::Closing {
            reply_code,
            reply_text: text,
            error,
        };
    }

    /// The broker broke the protocol: close the connection with the violation's reply code.
    pub(crate) fn violate(&mut self, v: Violation) {
        let mut v = v;
        truncate_to_short(&mut v.text);
        let error = Some(ConnectionError::ProtocolViolation {
            reply_code: v.code,
            reply_text: v.text.clone(),
        });
        match self.state {
            State::Closed => {}
            // Before start-ok there is no connection to close: just hang up.
            State::Handshake(Stage::Start) | State::Closing { .. } => {
                self.finish(v.code, v.text, false, error)
            }
            _ => {
                let short = ShortString::try_new(v.text).unwrap_or_default();
                self.send_close(v.code, short, v.cause.0, v.cause.1, error);
            }
        }
    }

    /// The byte stream cannot be read any further: send `connection.close` and end at once, as no
    /// `close-ok` could be recognised.
    pub(crate) fn broken_stream(&mut self, e: FrameError) {
        self.violate(Violation::new(e.reply_code(), e.to_string()));
        self.finish_closing();
    }

    /// Ends a close in progress with the code, text and error it began with.
    pub(crate) fn finish_closing(&mut self) {
        if let State::Closing {
            reply_code,
            reply_text,
            error,
        } = &mut self.state
        {
            let (code, text, error) = (*reply_code, std::mem::take(reply_text), error.take());
            self.finish(code, text, false, error);
        }
    }

    /// The connection is over: every channel goes, then [`Event::Closed`].
    pub(crate) fn finish(
        &mut self,
        reply_code: u16,
        reply_text: String,
        by_peer: bool,
        error: Option<ConnectionError>,
    ) {
        if self.is_closed() {
            return;
        }
        for (id, slot) in self.channels.iter_mut().enumerate() {
            if let Some(mut channel) = slot.take() {
                if channel.state == crate::amqp::channel::ChannelState::AwaitCloseOk {
                    continue; // already reported
                }
                channel.gone(
                    &mut self.events,
                    ChannelClosedHow {
                        channel: id as ChannelId,
                        reply_code,
                        reply_text: reply_text.clone(),
                        class_id: 0,
                        method_id: 0,
                        by_peer,
                    },
                );
            }
        }
        self.channels = Vec::new();
        self.heartbeat.stop();
        self.deadline = None;
        self.blocked = false;
        self.state = State::Closed;
        self.events.push_back(Event::Closed {
            reply_code,
            reply_text,
            by_peer,
            error,
        });
    }
}

/// Shortens `text` to at most 255 bytes on a character boundary.
pub(crate) fn truncate_to_short(text: &mut String) {
    if text.len() > 255 {
        let mut end = 255;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Connection>();
        send::<Event>();
    }

    #[test]
    fn close_texts_are_cut_to_a_short_string_on_a_char_boundary() {
        let mut text = "é".repeat(200); // 400 bytes
        truncate_to_short(&mut text);
        assert_eq!(text.len(), 254);
        assert!(ShortString::try_new(text).is_ok());
        let mut short = "fine".to_owned();
        truncate_to_short(&mut short);
        assert_eq!(short, "fine");
    }
}
