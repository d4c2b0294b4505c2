//! One channel's state: open/closing, the requests awaiting their reply (answered in order per
//! kind of reply, see [`Channel::take_reply`]), a content being received, and publisher confirms.

use std::collections::VecDeque;

use amq_protocol::types::ChannelId;

use crate::amqp::confirm::Confirms;
use crate::amqp::delivery::Assembly;
use crate::amqp::error::{Violation, reply_code};
use crate::amqp::event::{Completion, Event, SyncFailed, SyncId};

/// Where a channel is in its life.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// `channel.open` sent; commands may already follow it (the broker handles them in order).
    Opening,
    /// `channel.open-ok` received.
    Open,
    /// `channel.close` sent; everything but `close` / `close-ok` from the broker is discarded.
    Closing { reply_code: u16, reply_text: String },
    /// Our `channel.close` crossed the broker's: we answered theirs and reported the channel
    /// closed; the number stays taken until the `close-ok` for ours arrives.
    AwaitCloseOk,
}

/// The reply a request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    ExchangeDeclareOk,
    ExchangeDeleteOk,
    QueueDeclareOk,
    QueueBindOk,
    QueueUnbindOk,
    QueuePurgeOk,
    QueueDeleteOk,
    QosOk,
    ConsumeOk,
    CancelOk,
    SelectOk,
    /// `basic.get-ok` or `basic.get-empty`.
    Get,
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) state: ChannelState,
    /// Requests in the order they were sent. Bounded by the caller's commands.
    pending: VecDeque<(SyncId, Expect)>,
    /// A content being received.
    pub(crate) incoming: Option<Assembly>,
    /// Present once `confirm.select` was sent.
    pub(crate) confirms: Option<Confirms>,
}

impl Channel {
    pub(crate) fn new() -> Self {
        Channel {
            state: ChannelState::Opening,
            pending: VecDeque::new(),
            incoming: None,
            confirms: None,
        }
    }

    /// Records a request that waits for `expect`.
    pub(crate) fn await_reply(&mut self, request: SyncId, expect: Expect) {
        self.pending.push_back((request, expect));
    }

    /// Takes the oldest request waiting for `got`.
    ///
    /// Replies come in request order with one exception that matters: RabbitMQ answers
    /// `basic.consume` from the queue's process, so a `consume-ok` can overtake the replies to
    /// methods sent after it (seen with a consume pipelined before a `queue.declare`). So a reply
    /// completes the oldest request waiting for that kind of reply, not merely the oldest request.
    pub(crate) fn take_reply(&mut self, got: Expect, what: &str) -> Result<SyncId, Violation> {
        match self.pending.iter().position(|&(_, expect)| expect == got) {
            Some(at) => Ok(self
                .pending
                .remove(at)
                .map(|(request, _)| request)
                .unwrap_or(SyncId(0))),
            None => Err(Violation::new(
                reply_code::COMMAND_INVALID,
                format!("{what} that no request is waiting for"),
            )),
        }
    }

    /// Answers the oldest request with `completion`.
    pub(crate) fn complete(
        &mut self,
        channel: ChannelId,
        got: Expect,
        what: &str,
        completion: Completion,
        events: &mut VecDeque<Event>,
    ) -> Result<(), Violation> {
        let id = self.take_reply(got, what)?;
        events.push_back(Event::Completed {
            channel,
            id,
            result: Ok(completion),
        });
        Ok(())
    }

    /// The channel is gone: fails its requests, loses its unconfirmed publishes, then reports the
    /// close itself.
    pub(crate) fn gone(&mut self, events: &mut VecDeque<Event>, closed: Closed) {
        self.incoming = None;
        for (id, _) in self.pending.drain(..) {
            events.push_back(Event::Completed {
                channel: closed.channel,
                id,
                result: Err(SyncFailed {
                    reply_code: closed.reply_code,
                    reply_text: closed.reply_text.clone(),
                }),
            });
        }
        if let Some(mut confirms) = self.confirms.take() {
            confirms.lose_all(closed.channel, events);
        }
        events.push_back(Event::ChannelClosed {
            channel: closed.channel,
            reply_code: closed.reply_code,
            reply_text: closed.reply_text,
            class_id: closed.class_id,
            method_id: closed.method_id,
            by_peer: closed.by_peer,
        });
    }
}

/// How a channel closed.
pub(crate) struct Closed {
    pub(crate) channel: ChannelId,
    pub(crate) reply_code: u16,
    pub(crate) reply_text: String,
    pub(crate) class_id: u16,
    pub(crate) method_id: u16,
    pub(crate) by_peer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_kind_in_order_and_the_rest_fail_on_close() {
        let mut ch = Channel::new();
        let mut events = VecDeque::new();
        ch.await_reply(SyncId(1), Expect::QueueDeclareOk);
        ch.await_reply(SyncId(2), Expect::QosOk);
        ch.await_reply(SyncId(3), Expect::QueueDeclareOk);
        // A reply nobody waits for is a protocol violation.
        assert_eq!(
            ch.take_reply(Expect::CancelOk, "basic.cancel-ok")
                .unwrap_err()
                .code,
            503
        );
        // A declare-ok completes the oldest declare, even with a qos waiting before it.
        ch.complete(
            1,
            Expect::QueueDeclareOk,
            "queue.declare-ok",
            Completion::QueueBound,
            &mut events,
        )
        .unwrap();
        assert_eq!(
            ch.take_reply(Expect::QueueDeclareOk, "queue.declare-ok"),
            Ok(SyncId(3))
        );
        ch.gone(
            &mut events,
            Closed {
                channel: 1,
                reply_code: 404,
                reply_text: "NOT_FOUND".into(),
                class_id: 50,
                method_id: 20,
                by_peer: true,
            },
        );
        let events: Vec<_> = events.into_iter().collect();
        assert!(matches!(
            &events[..],
            [
                Event::Completed {
                    id: SyncId(1),
                    result: Ok(_),
                    ..
                },
                Event::Completed {
                    id: SyncId(2),
                    result: Err(SyncFailed {
                        reply_code: 404,
                        ..
                    }),
                    ..
                },
                Event::ChannelClosed {
                    channel: 1,
                    reply_code: 404,
                    by_peer: true,
                    ..
                },
            ]
        ));
    }
}
