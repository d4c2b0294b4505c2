//! Reassembling content: a content-carrying method (`basic.deliver`, `basic.return`,
//! `basic.get-ok`), then its header frame, then body frames until the announced size is reached.
//!
//! The body buffer is sized from the header (capped), so a body that arrives in one frame is
//! copied once, into the `Vec` the event hands out.

use amq_protocol::types::{ChannelId, ShortString};

use crate::amqp::error::{Violation, reply_code};
use crate::amqp::event::{Completion, Delivery, Event, GetMessage, RequestId, Returned};
use crate::amqp::frame::decode_content_header;
use crate::amqp::properties::Properties;
use crate::amqp::wire::Deliver;

/// How much body buffer to reserve up front; larger bodies grow it as they arrive.
const MAX_PREALLOCATION: u64 = 1 << 20;

/// The method a content belongs to.
#[derive(Debug)]
pub(crate) enum ContentMethod {
    Deliver(Deliver),
    Return {
        reply_code: u16,
        reply_text: ShortString,
        exchange: ShortString,
        routing_key: ShortString,
    },
    GetOk {
        request: RequestId,
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortString,
        routing_key: ShortString,
        message_count: u32,
    },
}

#[derive(Debug)]
enum Stage {
    Header,
    Body {
        remaining: u64,
        properties: Properties,
        body: Vec<u8>,
    },
}

/// A content being received on one channel.
#[derive(Debug)]
pub(crate) struct Assembly {
    method: ContentMethod,
    stage: Stage,
}

impl Assembly {
    pub(crate) fn new(method: ContentMethod) -> Self {
        Assembly {
            method,
            stage: Stage::Header,
        }
    }

    /// Takes the content header; `Ok(true)` when the content is complete (empty body).
    pub(crate) fn header(&mut self, payload: &[u8], max_body: u64) -> Result<bool, Violation> {
        if !matches!(self.stage, Stage::Header) {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                "content header while a content body was expected",
            ));
        }
        let header = decode_content_header(payload).map_err(|e| {
            Violation::new(
                reply_code::FRAME_ERROR,
                format!("malformed content header: {e}"),
            )
        })?;
        if header.class_id != 60 {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                format!(
                    "content header of class {} after a basic method",
                    header.class_id
                ),
            ));
        }
        if header.body_size > max_body {
            return Err(Violation::new(
                reply_code::RESOURCE_ERROR,
                format!(
                    "content body of {} bytes exceeds the limit of {max_body}",
                    header.body_size
                ),
            ));
        }
        self.stage = Stage::Body {
            remaining: header.body_size,
            properties: header.properties,
            body: Vec::with_capacity(header.body_size.min(MAX_PREALLOCATION) as usize),
        };
        Ok(header.body_size == 0)
    }

    /// Takes a body frame; `Ok(true)` when the content is complete.
    pub(crate) fn body(&mut self, payload: &[u8]) -> Result<bool, Violation> {
        let Stage::Body {
            remaining, body, ..
        } = &mut self.stage
        else {
            return Err(Violation::new(
                reply_code::UNEXPECTED_FRAME,
                "content body before its content header",
            ));
        };
        if payload.len() as u64 > *remaining {
            return Err(Violation::new(
                reply_code::FRAME_ERROR,
                format!(
                    "content body frame of {} bytes where {} remained",
                    payload.len(),
                    remaining
                ),
            ));
        }
        body.extend_from_slice(payload);
        *remaining -= payload.len() as u64;
        Ok(*remaining == 0)
    }

    /// The event for a complete content.
    pub(crate) fn finish(self, channel: ChannelId) -> Event {
        let (properties, body) = match self.stage {
            Stage::Body {
                properties, body, ..
            } => (properties, body),
            // Not reached: finish is called after header() or body() said complete.
            Stage::Header => (Properties::default(), Vec::new()),
        };
        match self.method {
            ContentMethod::Deliver(d) => Event::Delivery(Delivery {
                channel,
                consumer_tag: d.consumer_tag,
                delivery_tag: d.delivery_tag,
                redelivered: d.redelivered,
                exchange: d.exchange,
                routing_key: d.routing_key,
                properties,
                body,
            }),
            ContentMethod::Return {
                reply_code,
                reply_text,
                exchange,
                routing_key,
            } => Event::Returned(Returned {
                channel,
                reply_code,
                reply_text,
                exchange,
                routing_key,
                properties,
                body,
            }),
            ContentMethod::GetOk {
                request,
                delivery_tag,
                redelivered,
                exchange,
                routing_key,
                message_count,
            } => Event::Completed {
                channel,
                request,
                result: Ok(Completion::Got(Box::new(GetMessage {
                    delivery_tag,
                    redelivered,
                    exchange,
                    routing_key,
                    message_count,
                    properties,
                    body,
                }))),
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
        Assembly::new(ContentMethod::Deliver(Deliver {
            consumer_tag: "c".into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
        }))
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

    #[test]
    fn violations_carry_their_reply_codes() {
        let code = |r: Result<bool, Violation>| r.unwrap_err().code;
        assert_eq!(code(deliver().body(b"x")), 505);
        assert_eq!(code(deliver().header(&header(50, 1), 100)), 505);
        assert_eq!(code(deliver().header(&header(60, 101), 100)), 506);
        assert_eq!(code(deliver().header(&[0, 60], 100)), 501);
        let mut a = deliver();
        a.header(&header(60, 2), 100).unwrap();
        assert_eq!(code(a.body(b"abc")), 501);
        let mut a = deliver();
        a.header(&header(60, 2), 100).unwrap();
        assert_eq!(code(a.header(&header(60, 2), 100)), 505);
    }
}
