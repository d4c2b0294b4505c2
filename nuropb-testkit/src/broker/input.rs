//! From bytes to methods: the protocol header, frames one at a time (so `frame_max` can change
//! right after `tune-ok`), RabbitMQ's command assembler for content, and method dispatch.
//!
//! The assembler's errors are RabbitMQ's: a content frame where a method was expected, a method
//! where content was expected, a header of the wrong class — `505 UNEXPECTED_FRAME`; a method on a
//! channel that is not open — `504 CHANNEL_ERROR - expected 'channel.open'`; a heartbeat on a
//! channel other than 0 — `505`; malformed frames — `501 FRAME_ERROR`. All close the connection.

use crate::broker::channel::{Body, Content, Pending, PublishArgs};
use crate::broker::connection::Phase;
use crate::broker::error::AmqpError;
use crate::broker::props::facts;
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, access, basic, channel, confirm, exchange, queue, tx};
use nuropb_proto::amqp::frame::{Frame, FrameError, RawFrame, method_ids};
use nuropb_proto::amqp::properties::PropertiesError;
use nuropb_proto::amqp::reply_code::INTERNAL_ERROR;
use std::time::Instant;

/// A method frame, decoded; the hot methods without `amq-protocol`.
enum Incoming {
    Publish(PublishArgs),
    Ack {
        tag: u64,
        multiple: bool,
    },
    /// `basic.qos` with a non-zero `prefetch_size`, which RabbitMQ refuses.
    QosSize(u32),
    Other(AMQPClass),
}

impl Incoming {
    fn ids(&self) -> (u16, u16) {
        match self {
            Incoming::Publish(_) => (60, 40),
            Incoming::Ack { .. } => (60, 80),
            Incoming::QosSize(_) => (60, 10),
            Incoming::Other(m) => (m.get_amqp_class_id(), m.get_amqp_method_id()),
        }
    }

    /// The content method this is, if it carries content.
    fn content(self) -> Result<Pending, Incoming> {
        match self {
            Incoming::Publish(p) => Ok(Pending::Publish(p)),
            Incoming::Other(AMQPClass::Basic(basic::AMQPMethod::Publish(p))) => {
                Ok(Pending::Publish(PublishArgs {
                    exchange: p.exchange.into(),
                    routing_key: p.routing_key.into(),
                    mandatory: p.mandatory,
                    immediate: p.immediate,
                }))
            }
            Incoming::Other(
                m @ AMQPClass::Basic(
                    basic::AMQPMethod::Deliver(_)
                    | basic::AMQPMethod::Return(_)
                    | basic::AMQPMethod::GetOk(_),
                ),
            ) => Ok(Pending::Other(
                m.get_amqp_class_id(),
                m.get_amqp_method_id(),
            )),
            other => Err(other),
        }
    }
}

fn decode_incoming(payload: &[u8]) -> Result<Incoming, FrameError> {
    match method_ids(payload) {
        Some((60, 40)) => {
            if let Some((x, k, mandatory, immediate)) = wire::parse_publish(payload) {
                return Ok(Incoming::Publish(PublishArgs {
                    exchange: x.to_owned(),
                    routing_key: k.to_owned(),
                    mandatory,
                    immediate,
                }));
            }
        }
        Some((60, 80)) => {
            if let Some((tag, multiple)) = wire::parse_ack(payload) {
                return Ok(Incoming::Ack { tag, multiple });
            }
        }
        _ => {}
    }
    match RawFrame::Method(0, payload).decode()? {
        Frame::Method(_, m @ AMQPClass::Basic(basic::AMQPMethod::Qos(_))) => {
            // amq-protocol drops prefetch_size; RabbitMQ refuses anything but 0.
            match payload
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            {
                Some(size) if size != 0 => Ok(Incoming::QosSize(size)),
                _ => Ok(Incoming::Other(m)),
            }
        }
        Frame::Method(_, m) => Ok(Incoming::Other(m)),
        _ => Err(FrameError::BadMethod(0)),
    }
}

fn frame_error_text(e: &FrameError) -> String {
    match e {
        FrameError::TooLarge { size, frame_max } => {
            format!("frame of {size} bytes exceeds frame_max {frame_max}: frame_too_large")
        }
        FrameError::BadFrameEnd => "frame does not end with 0xCE: invalid_frame_end_marker".into(),
        FrameError::UnknownFrameType(t) => format!("type {t}: unknown_frame"),
        FrameError::BadProtocolHeader => "type 65: unknown_frame".into(),
        FrameError::BadMethod(ch) => format!("cannot decode the method frame on channel {ch}"),
        FrameError::BadHeader { channel, error } => {
            format!("cannot decode the content header on channel {channel}: {error}")
        }
    }
}

/// The state of a channel as the assembler sees it.
enum ChannelState {
    Missing,
    Open,
    Closing,
    ExpectHeader((u16, u16)),
    ExpectBody((u16, u16)),
}

impl Broker {
    pub(crate) fn input(&mut self, c: ConnectionId, bytes: &[u8], now: Instant) {
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        conn.last_recv = now;
        let mut input = bytes;
        if conn.phase == Phase::Header {
            let (used, verdict) = conn.take_header(input);
            input = &input[used..];
            match verdict {
                None => return,
                Some(ok) => {
                    self.protocol_header(c, ok);
                    if !ok {
                        return;
                    }
                }
            }
        }
        let Some(mut reader) = self
            .connections
            .get_mut(&c)
            .and_then(|conn| conn.reader.take())
        else {
            return;
        };
        while let Some(conn) = self.connections.get(&c) {
            if conn.phase == Phase::Closed {
                break;
            }
            if reader.frame_max() != conn.frame_max {
                reader.set_frame_max(conn.frame_max);
            }
            match reader.next_raw(&mut input) {
                Ok(None) => break,
                Ok(Some(raw)) => self.frame(c, raw),
                Err(e) => {
                    self.frame_failed(c, &e);
                    break;
                }
            }
            self.run_dispatch(now);
        }
        if let Some(conn) = self.connections.get_mut(&c) {
            conn.reader = Some(reader);
        }
    }

    /// A frame the reader could not read: the stream is lost.
    fn frame_failed(&mut self, c: ConnectionId, e: &FrameError) {
        let running = self
            .connections
            .get(&c)
            .is_some_and(|conn| conn.phase == Phase::Running);
        if running {
            self.connection_error(c, AmqpError::frame_error(frame_error_text(e)));
        }
        // Nothing more can be read, so close-ok would never be seen.
        self.close_silently(c);
    }

    fn frame(&mut self, c: ConnectionId, raw: RawFrame<'_>) {
        let Some(phase) = self.connections.get(&c).map(|conn| conn.phase) else {
            return;
        };
        match phase {
            Phase::StartOk | Phase::TuneOk | Phase::Open => match raw {
                RawFrame::Heartbeat(0) => {}
                RawFrame::Method(0, payload) => match RawFrame::Method(0, payload).decode() {
                    Ok(Frame::Method(_, m)) => self.handshake_method(c, m),
                    _ => self.close_silently(c),
                },
                _ => self.close_silently(c),
            },
            Phase::Running => self.running_frame(c, raw),
            Phase::Closing => {
                if let RawFrame::Method(0, payload) = raw
                    && let Ok(Frame::Method(_, m)) = RawFrame::Method(0, payload).decode()
                {
                    self.closing_method(c, m);
                }
            }
            Phase::Header | Phase::Closed => {}
        }
    }

    fn running_frame(&mut self, c: ConnectionId, raw: RawFrame<'_>) {
        let result = match raw {
            RawFrame::Heartbeat(0) => Ok(()),
            RawFrame::Heartbeat(_) => {
                Err(AmqpError::unexpected_frame("type 8, all octets = <<>>").at(0, 0))
            }
            RawFrame::ProtocolHeader(_) => Err(AmqpError::frame_error(frame_error_text(
                &FrameError::BadProtocolHeader,
            ))),
            RawFrame::Method(0, payload) => match RawFrame::Method(0, payload).decode() {
                Ok(Frame::Method(_, m)) => {
                    let ids = (m.get_amqp_class_id(), m.get_amqp_method_id());
                    self.connection_method(c, m).map_err(|e| with_ids(e, ids))
                }
                Ok(_) => Ok(()),
                Err(e) => {
                    self.frame_failed(c, &e);
                    return;
                }
            },
            RawFrame::Header(0, _) => {
                Err(AmqpError::unexpected_frame("type 2 on channel 0").at(0, 0))
            }
            RawFrame::Body(0, _) => {
                Err(AmqpError::unexpected_frame("type 3 on channel 0").at(0, 0))
            }
            RawFrame::Method(ch, payload) => match decode_incoming(payload) {
                Ok(m) => {
                    self.channel_frame(c, ch, m);
                    Ok(())
                }
                Err(e) => {
                    let e = match e {
                        FrameError::BadMethod(_) => FrameError::BadMethod(ch),
                        other => other,
                    };
                    self.frame_failed(c, &e);
                    return;
                }
            },
            RawFrame::Header(ch, payload) => {
                self.content_header(c, ch, payload);
                Ok(())
            }
            RawFrame::Body(ch, payload) => {
                self.content_body(c, ch, payload);
                Ok(())
            }
        };
        if let Err(e) = result {
            self.connection_error(c, e);
        }
    }

    fn channel_state(&self, c: ConnectionId, ch: u16) -> ChannelState {
        let Some(channel) = self
            .connections
            .get(&c)
            .and_then(|conn| conn.channels.get(&ch))
        else {
            return ChannelState::Missing;
        };
        match &channel.content {
            Content::Header { method, .. } => ChannelState::ExpectHeader(method.ids()),
            Content::Body(b) => ChannelState::ExpectBody(b.method.ids()),
            Content::Idle if channel.closing => ChannelState::Closing,
            Content::Idle => ChannelState::Open,
        }
    }

    /// Reports `err` on channel `ch`: a soft error closes the channel, a hard one the connection.
    pub(crate) fn fail(&mut self, c: ConnectionId, ch: u16, err: AmqpError) {
        if err.is_hard() || ch == 0 {
            self.connection_error(c, err);
        } else {
            self.channel_error(c, ch, err);
        }
    }

    fn set_content(&mut self, c: ConnectionId, ch: u16, content: Content) {
        if let Some(channel) = self
            .connections
            .get_mut(&c)
            .and_then(|conn| conn.channels.get_mut(&ch))
        {
            channel.content = content;
        }
    }

    fn channel_frame(&mut self, c: ConnectionId, ch: u16, m: Incoming) {
        let ids = m.ids();
        match self.channel_state(c, ch) {
            ChannelState::ExpectHeader(pending) => self.connection_error(
                c,
                AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                )
                .at(pending.0, pending.1),
            ),
            ChannelState::ExpectBody(pending) => self.connection_error(
                c,
                AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                )
                .at(pending.0, pending.1),
            ),
            ChannelState::Missing => {
                let result = match m {
                    Incoming::Other(AMQPClass::Channel(channel::AMQPMethod::Open(_))) => {
                        self.channel_open(c, ch)
                    }
                    _ => Err(AmqpError::channel_error("expected 'channel.open'")),
                };
                if let Err(e) = result {
                    self.connection_error(c, with_ids(e, ids));
                }
            }
            ChannelState::Closing => match m {
                Incoming::Other(AMQPClass::Channel(channel::AMQPMethod::Open(_))) => self
                    .connection_error(
                        c,
                        AmqpError::channel_error("second 'channel.open' seen").at(20, 10),
                    ),
                Incoming::Other(AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                    if let Some(conn) = self.connections.get_mut(&c) {
                        conn.channels.remove(&ch);
                    }
                }
                Incoming::Other(AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {
                    if let Some(conn) = self.connections.get_mut(&c) {
                        let ok =
                            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
                        wire::method(&mut conn.out, ch, &ok);
                    }
                }
                other => {
                    if let Ok(method) = other.content() {
                        self.set_content(
                            c,
                            ch,
                            Content::Header {
                                method,
                                discard: true,
                            },
                        );
                    }
                }
            },
            ChannelState::Open => match m.content() {
                Ok(method) => self.set_content(
                    c,
                    ch,
                    Content::Header {
                        method,
                        discard: false,
                    },
                ),
                Err(m) => {
                    let result = match m {
                        Incoming::Ack { tag, multiple } => self.basic_ack(c, ch, tag, multiple),
                        Incoming::QosSize(size) => Err(AmqpError::not_implemented(format_args!(
                            "prefetch_size!=0 ({size})"
                        ))),
                        Incoming::Other(m) => self.channel_method(c, ch, m),
                        Incoming::Publish(_) => Ok(()),
                    };
                    if let Err(e) = result {
                        self.fail(c, ch, with_ids(e, ids));
                    }
                }
            },
        }
    }

    fn content_header(&mut self, c: ConnectionId, ch: u16, payload: &[u8]) {
        let (method, discard) = match self.channel_state(c, ch) {
            ChannelState::Missing | ChannelState::Open | ChannelState::Closing => {
                return self.connection_error(
                    c,
                    AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    )
                    .at(0, 0),
                );
            }
            ChannelState::ExpectBody(pending) => {
                return self.connection_error(
                    c,
                    AmqpError::unexpected_frame(
                        "expected content body, got non content body frame instead",
                    )
                    .at(pending.0, pending.1),
                );
            }
            ChannelState::ExpectHeader(_) => {
                let Some(Content::Header { method, discard }) = self
                    .connections
                    .get_mut(&c)
                    .and_then(|conn| conn.channels.get_mut(&ch))
                    .map(|channel| std::mem::take(&mut channel.content))
                else {
                    return;
                };
                (method, discard)
            }
        };
        let (class_id, method_id) = method.ids();
        // Class (2), weight (2), body size (8), then the property flags and list.
        let Some((fixed, props)) = payload.split_first_chunk::<12>() else {
            let e = FrameError::BadHeader {
                channel: ch,
                error: PropertiesError::Malformed,
            };
            return self.frame_failed(c, &e);
        };
        // A property list RabbitMQ cannot parse ends the connection with a bare 541 (its
        // parser crashes the channel's reader); one it can parse goes on as it came.
        let Ok(facts) = facts(props) else {
            return self.send_connection_close(c, INTERNAL_ERROR, "INTERNAL_ERROR", 0, 0);
        };
        let header_class = u16::from_be_bytes([fixed[0], fixed[1]]);
        let body_size = u64::from_be_bytes([
            fixed[4], fixed[5], fixed[6], fixed[7], fixed[8], fixed[9], fixed[10], fixed[11],
        ]);
        if header_class != class_id {
            return self.connection_error(
                c,
                AmqpError::unexpected_frame(format_args!(
                    "expected content header for class {class_id}, got one for class \
                     {header_class} instead"
                ))
                .at(class_id, method_id),
            );
        }
        let max = self.config.max_message_size as u64;
        let too_big = !discard && body_size > max;
        let discard = discard || too_big;
        let raw_properties = if discard { Vec::new() } else { props.to_vec() };
        if body_size == 0 {
            let done = Body {
                method,
                facts,
                raw_properties,
                body: Vec::new(),
                remaining: 0,
                discard,
            };
            self.complete(c, ch, done);
        } else {
            let frame_room = self.config.frame_max as u64;
            let capacity = if discard {
                0
            } else {
                body_size.min(frame_room) as usize
            };
            let remaining = body_size;
            self.set_content(
                c,
                ch,
                Content::Body(Box::new(Body {
                    method,
                    facts,
                    raw_properties,
                    body: Vec::with_capacity(capacity),
                    remaining,
                    discard,
                })),
            );
        }
        if too_big {
            self.channel_error(
                c,
                ch,
                AmqpError::precondition_failed(format_args!(
                    "message size {body_size} is larger than configured max size {max}"
                ))
                .at(60, 40),
            );
        }
    }

    fn content_body(&mut self, c: ConnectionId, ch: u16, payload: &[u8]) {
        match self.channel_state(c, ch) {
            ChannelState::Missing | ChannelState::Open | ChannelState::Closing => {
                return self.connection_error(
                    c,
                    AmqpError::unexpected_frame(
                        "expected method frame, got non method frame instead",
                    )
                    .at(0, 0),
                );
            }
            ChannelState::ExpectHeader(pending) => {
                return self.connection_error(
                    c,
                    AmqpError::unexpected_frame(
                        "expected content header for class 60, got non content header frame \
                         instead",
                    )
                    .at(pending.0, pending.1),
                );
            }
            ChannelState::ExpectBody(_) => {}
        }
        let Some(channel) = self
            .connections
            .get_mut(&c)
            .and_then(|conn| conn.channels.get_mut(&ch))
        else {
            return;
        };
        let Content::Body(b) = &mut channel.content else {
            return;
        };
        if payload.len() as u64 > b.remaining {
            let text = format!(
                "content body frame of {} bytes exceeds the {} bytes the header announced",
                payload.len(),
                b.remaining
            );
            return self.connection_error(c, AmqpError::frame_error(text));
        }
        b.remaining -= payload.len() as u64;
        if !b.discard {
            b.body.extend_from_slice(payload);
        }
        if b.remaining > 0 {
            return;
        }
        if let Content::Body(b) = std::mem::take(&mut channel.content) {
            self.complete(c, ch, *b);
        }
    }

    /// A content method with all its content.
    fn complete(&mut self, c: ConnectionId, ch: u16, content: Body) {
        let Body {
            method,
            facts,
            raw_properties,
            body,
            discard,
            ..
        } = content;
        if discard {
            return;
        }
        let result = match method {
            Pending::Publish(args) => self
                .publish(c, ch, args, facts, raw_properties, body)
                .map_err(|e| with_ids(e, (60, 40))),
            Pending::Other(class_id, method_id) => {
                Err(AmqpError::unimplemented_method().at(class_id, method_id))
            }
        };
        if let Err(e) = result {
            self.fail(c, ch, e);
        }
    }

    /// A method on an open channel.
    fn channel_method(&mut self, c: ConnectionId, ch: u16, m: AMQPClass) -> Result<(), AmqpError> {
        use AMQPClass as C;
        match m {
            C::Channel(channel::AMQPMethod::Open(_)) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            C::Channel(channel::AMQPMethod::Close(_)) => self.channel_close(c, ch),
            C::Channel(channel::AMQPMethod::Flow(f)) => self.channel_flow(c, ch, f.active),
            C::Access(access::AMQPMethod::Request(_)) => {
                let conn = self.conn_mut(c)?;
                let ok = C::Access(access::AMQPMethod::RequestOk(access::RequestOk {}));
                wire::method(&mut conn.out, ch, &ok);
                Ok(())
            }
            C::Exchange(exchange::AMQPMethod::Declare(m)) => self.exchange_declare(c, ch, m),
            C::Exchange(exchange::AMQPMethod::Delete(m)) => self.exchange_delete(c, ch, m),
            C::Exchange(exchange::AMQPMethod::Bind(m)) => self.exchange_bind(c, ch, m),
            C::Exchange(exchange::AMQPMethod::Unbind(m)) => self.exchange_unbind(c, ch, m),
            C::Queue(queue::AMQPMethod::Declare(m)) => self.queue_declare(c, ch, m),
            C::Queue(queue::AMQPMethod::Bind(m)) => self.queue_bind(c, ch, m),
            C::Queue(queue::AMQPMethod::Unbind(m)) => self.queue_unbind(c, ch, m),
            C::Queue(queue::AMQPMethod::Purge(m)) => self.queue_purge(c, ch, m),
            C::Queue(queue::AMQPMethod::Delete(m)) => self.queue_delete(c, ch, m),
            C::Basic(basic::AMQPMethod::Qos(m)) => self.basic_qos(c, ch, m),
            C::Basic(basic::AMQPMethod::Consume(m)) => self.basic_consume(c, ch, m),
            C::Basic(basic::AMQPMethod::Cancel(m)) => self.basic_cancel(c, ch, m),
            C::Basic(basic::AMQPMethod::Get(m)) => self.basic_get(c, ch, m),
            C::Basic(basic::AMQPMethod::Ack(m)) => {
                self.basic_ack(c, ch, m.delivery_tag, m.multiple)
            }
            C::Basic(basic::AMQPMethod::Reject(m)) => {
                self.basic_reject(c, ch, m.delivery_tag, false, m.requeue)
            }
            C::Basic(basic::AMQPMethod::Nack(m)) => {
                self.basic_reject(c, ch, m.delivery_tag, m.multiple, m.requeue)
            }
            C::Basic(basic::AMQPMethod::Recover(m)) => self.basic_recover(c, ch, m.requeue, true),
            C::Basic(basic::AMQPMethod::RecoverAsync(m)) => {
                self.basic_recover(c, ch, m.requeue, false)
            }
            C::Confirm(confirm::AMQPMethod::Select(m)) => self.confirm_select(c, ch, m.nowait),
            C::Tx(tx::AMQPMethod::Select(_)) => self.tx_select(c, ch),
            C::Tx(tx::AMQPMethod::Commit(_)) => self.tx_commit(c, ch),
            C::Tx(tx::AMQPMethod::Rollback(_)) => self.tx_rollback(c, ch),
            _ => Err(AmqpError::unimplemented_method()),
        }
    }
}

/// Names the method an error belongs to, unless it names one already.
fn with_ids(mut e: AmqpError, ids: (u16, u16)) -> AmqpError {
    e.method.get_or_insert(ids);
    e
}
