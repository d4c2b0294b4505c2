//! Handling each frame the broker sends, by connection state, channel state and method.
//!
//! `basic.deliver` takes a hand-written fast path; every other method is decoded by
//! `amq-protocol` after the nesting check of its field tables ([`decode_method`]). Anything the
//! broker may not send in the current state is a [`Violation`] with its reply code.

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, exchange, queue};
use amq_protocol::types::ChannelId;

use crate::amqp::channel::{ChannelState, Closed, Expect};
use crate::amqp::connection::{Inner, State, reader_limit};
use crate::amqp::delivery::Assembly;
use crate::amqp::error::{ConnectionError, Violation, reply_code};
use crate::amqp::event::{Completion, Confirm, Event};
use crate::amqp::frame::{RawFrame, decode_method, method_ids, write_method};
use crate::amqp::handshake::{self, Stage};
use crate::amqp::wire::{self, BASIC, BASIC_DELIVER};

const CHANNEL: u16 = 20;
const CHANNEL_CLOSE: u16 = 40;
const CHANNEL_CLOSE_OK: u16 = 41;
const CONNECTION: u16 = 10;
const CONNECTION_CLOSE: u16 = 50;
const CONNECTION_CLOSE_OK: u16 = 51;

fn decode(channel: ChannelId, payload: &[u8]) -> Result<AMQPClass, Violation> {
    decode_method(payload).ok_or_else(|| {
        Violation::new(
            reply_code::FRAME_ERROR,
            format!("malformed or unknown method frame on channel {channel}"),
        )
    })
}

/// `class.method` for messages, e.g. `queue.declareok`, from the start of the method's `Debug`
/// output (cut short, so that a large table is not formatted).
fn name(m: &AMQPClass) -> String {
    struct Prefix(String);
    impl std::fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = 48usize.saturating_sub(self.0.len());
            let mut end = s.len().min(room);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            if end < s.len() {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut prefix = Prefix(String::new());
    // Stops with an error once the prefix is full, which is the point.
    let _ = std::fmt::write(&mut prefix, format_args!("{m:?}"));
    let name = prefix
        .0
        .split(['(', ' ', '{'])
        .filter(|p| !p.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
        .to_lowercase();
    format!(
        "{name} ({}.{})",
        m.get_amqp_class_id(),
        m.get_amqp_method_id()
    )
}

fn invalid(what: impl std::fmt::Display) -> Violation {
    Violation::new(reply_code::COMMAND_INVALID, format!("unexpected {what}"))
}

impl Inner {
    /// Handles one frame.
    pub(crate) fn on_frame(&mut self, raw: RawFrame<'_>) -> Result<(), Violation> {
        match self.state {
            State::Closed => return Ok(()),
            State::Closing { .. } => return self.on_frame_while_closing(raw),
            _ => {}
        }
        match raw {
            RawFrame::ProtocolHeader(version) => {
                self.finish(
                    0,
                    "the broker answered with a protocol header".into(),
                    true,
                    Some(ConnectionError::UnsupportedProtocol(version)),
                );
                Ok(())
            }
            RawFrame::Heartbeat(0) => Ok(()),
            RawFrame::Heartbeat(ch) => Err(Violation::new(
                reply_code::FRAME_ERROR,
                format!("heartbeat on channel {ch}"),
            )),
            RawFrame::Method(0, payload) => {
                let method = decode(0, payload)?;
                self.on_connection_method(method)
            }
            RawFrame::Header(0, _) | RawFrame::Body(0, _) => Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                "content frame on channel 0",
            )),
            _ if !matches!(self.state, State::Open) => Err(Violation::new(
                reply_code::CHANNEL_ERROR,
                format!(
                    "frame on channel {} before the connection is open",
                    raw.channel()
                ),
            )),
            RawFrame::Method(ch, payload) => self.on_channel_method(ch, payload),
            RawFrame::Header(ch, payload) => self.on_content(ch, payload, true),
            RawFrame::Body(ch, payload) => self.on_content(ch, payload, false),
        }
    }

    /// After we sent `connection.close`, only `close` and `close-ok` matter.
    fn on_frame_while_closing(&mut self, raw: RawFrame<'_>) -> Result<(), Violation> {
        let RawFrame::Method(0, payload) = raw else {
            return Ok(());
        };
        match method_ids(payload) {
            Some((CONNECTION, CONNECTION_CLOSE)) => {
                self.write(0, close_ok());
                self.finish_closing();
            }
            Some((CONNECTION, CONNECTION_CLOSE_OK)) => self.finish_closing(),
            _ => {}
        }
        Ok(())
    }

    fn write(&mut self, channel: ChannelId, method: AMQPClass) {
        write_method(&mut self.out, channel, &method);
    }

    fn on_connection_method(&mut self, method: AMQPClass) -> Result<(), Violation> {
        use connection::AMQPMethod as M;
        let AMQPClass::Connection(m) = method else {
            return Err(invalid(format_args!("{} on channel 0", name(&method))).caused_by(&method));
        };
        let stage = match self.state {
            State::Handshake(stage) => Some(stage),
            _ => None,
        };
        match (stage, m) {
            (Some(Stage::Start), M::Start(start)) => {
                match handshake::start_ok(&self.config, &start) {
                    Ok(start_ok) => {
                        self.server_properties = start.server_properties;
                        self.write(0, start_ok);
                        self.state = State::Handshake(Stage::Tune);
                    }
                    Err(e) => self.finish(0, e.to_string(), true, Some(e)),
                }
            }
            (Some(Stage::Tune), M::Secure(_)) => {
                let response = handshake::plain_response(&self.config);
                self.write(
                    0,
                    AMQPClass::Connection(M::SecureOk(connection::SecureOk { response })),
                );
            }
            (Some(Stage::Tune), M::Tune(tune)) => {
                let tuning = handshake::negotiate(&self.config, &tune)?;
                for method in handshake::tune_ok_and_open(tuning, &self.config.vhost) {
                    self.write(0, method);
                }
                self.tuning = tuning;
                self.new_frame_max = Some(reader_limit(tuning.frame_max));
                self.heartbeat.start(tuning.heartbeat, self.now);
                self.state = State::Handshake(Stage::OpenOk);
            }
            (Some(Stage::OpenOk), M::OpenOk(_)) => {
                self.state = State::Open;
                self.deadline = None;
                self.events.push_back(Event::Connected {
                    tuning: self.tuning,
                    server_properties: std::mem::take(&mut self.server_properties),
                });
            }
            (stage, M::Close(close)) => {
                self.write(0, close_ok());
                let error = match stage {
                    Some(stage) => handshake::refusal(stage, &close, &self.config.vhost),
                    None => ConnectionError::ClosedByPeer {
                        reply_code: close.reply_code,
                        reply_text: close.reply_text.to_string(),
                    },
                };
                self.finish(
                    close.reply_code,
                    close.reply_text.to_string(),
                    true,
                    Some(error),
                );
            }
            (None, M::Blocked(blocked)) => {
                self.blocked = true;
                self.events.push_back(Event::Blocked {
                    reason: blocked.reason.to_string(),
                });
            }
            (None, M::Unblocked(_)) => {
                self.blocked = false;
                self.events.push_back(Event::Unblocked);
            }
            (_, m) => {
                let m = AMQPClass::Connection(m);
                return Err(invalid(name(&m)).caused_by(&m));
            }
        }
        Ok(())
    }

    fn on_channel_method(&mut self, ch: ChannelId, payload: &[u8]) -> Result<(), Violation> {
        let Some(channel) = self.channel_mut(ch) else {
            return Err(Violation::new(
                reply_code::CHANNEL_ERROR,
                format!("method frame on channel {ch}, which is not open"),
            ));
        };
        let ids = method_ids(payload);
        if let ChannelState::Closing { .. } | ChannelState::AwaitCloseOk = channel.state {
            // After our channel.close, only the broker's close or close-ok count.
            return match ids {
                Some((CHANNEL, CHANNEL_CLOSE | CHANNEL_CLOSE_OK)) => {
                    let method = decode(ch, payload)?;
                    self.on_channel_class(ch, method)
                }
                _ => Ok(()),
            };
        }
        if channel.incoming.is_some() {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                format!("method frame on channel {ch} where content was expected"),
            ));
        }
        if ids == Some((BASIC, BASIC_DELIVER)) {
            // The hot path: no nom, no flag map.
            let deliver = wire::parse_deliver(&payload[4..]).ok_or_else(|| {
                Violation::new(
                    reply_code::FRAME_ERROR,
                    format!("malformed basic.deliver on channel {ch}"),
                )
            })?;
            if channel.state != ChannelState::Open {
                return Err(invalid(format_args!(
                    "basic.deliver on channel {ch} before channel.open-ok"
                )));
            }
            channel.incoming = Some(Assembly::deliver(ch, deliver));
            return Ok(());
        }
        let method = decode(ch, payload)?;
        self.on_channel_class(ch, method)
    }

    fn on_channel_class(&mut self, ch: ChannelId, method: AMQPClass) -> Result<(), Violation> {
        use basic::AMQPMethod as B;
        let events = &mut self.events;
        let Some(channel) = self.channels.get_mut(ch as usize).and_then(Option::as_mut) else {
            return Err(invalid(format_args!("frame on channel {ch}")));
        };
        // Closing and opening channels take only a few methods.
        match (&channel.state, &method) {
            (ChannelState::AwaitCloseOk, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
                // The close-ok for our close that crossed the broker's: the number is free now.
                self.channels[ch as usize] = None;
                return Ok(());
            }
            (ChannelState::AwaitCloseOk, _) => return Ok(()),
            (_, AMQPClass::Channel(channel::AMQPMethod::Close(_))) => {}
            (ChannelState::Closing { .. }, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {
            }
            (ChannelState::Opening, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
            (ChannelState::Open, _) => {}
            _ => {
                return Err(
                    invalid(format_args!("{} on channel {ch}", name(&method))).caused_by(&method)
                );
            }
        }
        match method {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {
                channel.state = ChannelState::Open;
                events.push_back(Event::ChannelOpened { channel: ch });
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(close)) => {
                let crossed = matches!(channel.state, ChannelState::Closing { .. });
                self.write(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                if crossed {
                    // Ours crossed theirs: the broker will still answer ours with close-ok.
                    if let Some(channel) =
                        self.channels.get_mut(ch as usize).and_then(Option::as_mut)
                    {
                        channel.gone(
                            &mut self.events,
                            Closed {
                                channel: ch,
                                reply_code: close.reply_code,
                                reply_text: close.reply_text.to_string(),
                                class_id: close.class_id,
                                method_id: close.method_id,
                                by_peer: true,
                            },
                        );
                        channel.state = ChannelState::AwaitCloseOk;
                    }
                    return Ok(());
                }
                self.channel_gone(
                    ch,
                    close.reply_code,
                    close.reply_text.to_string(),
                    close.class_id,
                    close.method_id,
                    true,
                );
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                if let ChannelState::Closing {
                    reply_code,
                    reply_text,
                } = &mut channel.state
                {
                    let (code, text) = (*reply_code, std::mem::take(reply_text));
                    self.channel_gone(ch, code, text, 0, 0, false);
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                events.push_back(Event::Flow {
                    channel: ch,
                    active: flow.active,
                });
                self.write(
                    ch,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: flow.active,
                    })),
                );
            }
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => channel.complete(
                ch,
                Expect::ExchangeDeclareOk,
                "exchange.declare-ok",
                Completion::ExchangeDeclared,
                events,
            )?,
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_)) => channel.complete(
                ch,
                Expect::ExchangeDeleteOk,
                "exchange.delete-ok",
                Completion::ExchangeDeleted,
                events,
            )?,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => channel.complete(
                ch,
                Expect::QueueDeclareOk,
                "queue.declare-ok",
                Completion::QueueDeclared {
                    queue: ok.queue,
                    message_count: ok.message_count,
                    consumer_count: ok.consumer_count,
                },
                events,
            )?,
            AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => channel.complete(
                ch,
                Expect::QueueBindOk,
                "queue.bind-ok",
                Completion::QueueBound,
                events,
            )?,
            AMQPClass::Queue(queue::AMQPMethod::UnbindOk(_)) => channel.complete(
                ch,
                Expect::QueueUnbindOk,
                "queue.unbind-ok",
                Completion::QueueUnbound,
                events,
            )?,
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)) => channel.complete(
                ch,
                Expect::QueuePurgeOk,
                "queue.purge-ok",
                Completion::QueuePurged {
                    message_count: ok.message_count,
                },
                events,
            )?,
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)) => channel.complete(
                ch,
                Expect::QueueDeleteOk,
                "queue.delete-ok",
                Completion::QueueDeleted {
                    message_count: ok.message_count,
                },
                events,
            )?,
            AMQPClass::Basic(B::QosOk(_)) => channel.complete(
                ch,
                Expect::QosOk,
                "basic.qos-ok",
                Completion::QosSet,
                events,
            )?,
            AMQPClass::Basic(B::ConsumeOk(ok)) => channel.complete(
                ch,
                Expect::ConsumeOk,
                "basic.consume-ok",
                Completion::ConsumeStarted {
                    consumer_tag: ok.consumer_tag,
                },
                events,
            )?,
            AMQPClass::Basic(B::CancelOk(ok)) => channel.complete(
                ch,
                Expect::CancelOk,
                "basic.cancel-ok",
                Completion::ConsumeCancelled {
                    consumer_tag: ok.consumer_tag,
                },
                events,
            )?,
            AMQPClass::Basic(B::Cancel(cancel)) => {
                // consumer_cancel_notify: the broker ended a consumer.
                events.push_back(Event::ConsumerCancelled {
                    channel: ch,
                    consumer_tag: cancel.consumer_tag.clone(),
                });
                if !cancel.nowait {
                    self.write(
                        ch,
                        AMQPClass::Basic(B::CancelOk(basic::CancelOk {
                            consumer_tag: cancel.consumer_tag,
                        })),
                    );
                }
            }
            AMQPClass::Basic(B::Deliver(d)) => {
                // Reached only if the fast path declined; kept for completeness.
                channel.incoming = Some(Assembly::deliver(
                    ch,
                    wire::Deliver {
                        consumer_tag: d.consumer_tag,
                        delivery_tag: d.delivery_tag,
                        redelivered: d.redelivered,
                        exchange: d.exchange,
                        routing_key: d.routing_key,
                    },
                ));
            }
            AMQPClass::Basic(B::Return(r)) => {
                channel.incoming = Some(Assembly::returned(
                    ch,
                    r.reply_code,
                    r.reply_text,
                    r.exchange,
                    r.routing_key,
                ));
            }
            AMQPClass::Basic(B::GetOk(ok)) => {
                let request = channel.take_reply(Expect::Get, "basic.get-ok")?;
                channel.incoming = Some(Assembly::got(
                    request,
                    ok.delivery_tag,
                    ok.redelivered,
                    ok.exchange,
                    ok.routing_key,
                    ok.message_count,
                ));
            }
            AMQPClass::Basic(B::GetEmpty(_)) => channel.complete(
                ch,
                Expect::Get,
                "basic.get-empty",
                Completion::GetEmpty,
                events,
            )?,
            AMQPClass::Basic(B::Ack(ack)) => {
                let confirms = channel.confirms.as_mut().ok_or_else(|| {
                    invalid(format_args!(
                        "basic.ack on channel {ch} without confirm.select"
                    ))
                })?;
                confirms
                    .settle(ch, ack.delivery_tag, ack.multiple, Confirm::Ack, events)
                    .map_err(|t| {
                        invalid(format_args!(
                            "basic.ack for publish {} on channel {ch}, never published",
                            t.0
                        ))
                    })?;
            }
            AMQPClass::Basic(B::Nack(nack)) => {
                let confirms = channel.confirms.as_mut().ok_or_else(|| {
                    invalid(format_args!(
                        "basic.nack on channel {ch} without confirm.select"
                    ))
                })?;
                confirms
                    .settle(ch, nack.delivery_tag, nack.multiple, Confirm::Nack, events)
                    .map_err(|t| {
                        invalid(format_args!(
                            "basic.nack for publish {} on channel {ch}, never published",
                            t.0
                        ))
                    })?;
            }
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => channel.complete(
                ch,
                Expect::SelectOk,
                "confirm.select-ok",
                Completion::ConfirmSelected,
                events,
            )?,
            other => {
                return Err(
                    invalid(format_args!("{} on channel {ch}", name(&other))).caused_by(&other)
                );
            }
        }
        Ok(())
    }

    /// Removes a channel and reports it closed.
    pub(crate) fn channel_gone(
        &mut self,
        ch: ChannelId,
        reply_code: u16,
        reply_text: String,
        class_id: u16,
        method_id: u16,
        by_peer: bool,
    ) {
        if let Some(mut channel) = self.channels.get_mut(ch as usize).and_then(Option::take) {
            channel.gone(
                &mut self.events,
                Closed {
                    channel: ch,
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                    by_peer,
                },
            );
        }
    }

    fn on_content(&mut self, ch: ChannelId, payload: &[u8], header: bool) -> Result<(), Violation> {
        let max_body = self.config.max_body_size;
        let Some(channel) = self.channels.get_mut(ch as usize).and_then(Option::as_mut) else {
            return Err(Violation::new(
                reply_code::CHANNEL_ERROR,
                format!("content frame on channel {ch}, which is not open"),
            ));
        };
        if let ChannelState::Closing { .. } | ChannelState::AwaitCloseOk = channel.state {
            return Ok(());
        }
        let Some(assembly) = channel.incoming.as_mut() else {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                format!("content frame on channel {ch} without a content method"),
            ));
        };
        let complete = if header {
            assembly.header(payload, max_body)?
        } else {
            assembly.body(payload)?
        };
        if complete && let Some(assembly) = channel.incoming.take() {
            self.events.push_back(assembly.finish(ch));
        }
        Ok(())
    }
}

fn close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}
