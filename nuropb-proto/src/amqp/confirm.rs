//! Publisher confirms on one channel: numbering publishes and mapping `basic.ack` / `basic.nack`
//! (with `multiple`) back to each of them.
//!
//! Numbering starts at 1 with the first publish after `confirm.select` was sent; the broker counts
//! the same way because it handles a channel's methods in order.

use std::collections::VecDeque;

use amq_protocol::types::ChannelId;

use crate::amqp::event::{Confirm, Event};

/// The broker confirmed a sequence number that was never published.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UnknownTag(pub(crate) u64);

#[derive(Debug)]
pub(crate) struct Confirms {
    /// The sequence number of the next publish.
    next: u64,
    /// Published and not yet confirmed, in increasing order. Bounded by the caller's publishes.
    outstanding: VecDeque<u64>,
}

impl Confirms {
    pub(crate) fn new() -> Self {
        Confirms {
            next: 1,
            outstanding: VecDeque::new(),
        }
    }

    /// Numbers a publish.
    pub(crate) fn publish(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.outstanding.push_back(seq);
        seq
    }

    /// Publishes not yet confirmed.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Applies a `basic.ack` / `basic.nack` from the broker: one event per confirmed publish.
    ///
    /// `multiple` confirms every outstanding publish up to `tag` (all of them when `tag` is 0). A
    /// single tag that is no longer outstanding (a duplicate) is ignored; one that was never
    /// published is an error.
    pub(crate) fn settle(
        &mut self,
        channel: ChannelId,
        tag: u64,
        multiple: bool,
        outcome: Confirm,
        events: &mut VecDeque<Event>,
    ) -> Result<(), UnknownTag> {
        if tag >= self.next {
            return Err(UnknownTag(tag));
        }
        let mut emit = |seq| {
            events.push_back(Event::Confirmed {
                channel,
                seq,
                outcome,
            })
        };
        if multiple {
            while let Some(&seq) = self.outstanding.front() {
                if tag != 0 && seq > tag {
                    break;
                }
                self.outstanding.pop_front();
                emit(seq);
            }
        } else if let Ok(at) = self.outstanding.binary_search(&tag) {
            self.outstanding.remove(at);
            emit(tag);
        }
        Ok(())
    }

    /// The channel is gone: every outstanding publish is lost.
    pub(crate) fn lose_all(&mut self, channel: ChannelId, events: &mut VecDeque<Event>) {
        for seq in self.outstanding.drain(..) {
            events.push_back(Event::Confirmed {
                channel,
                seq,
                outcome: Confirm::Lost,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(events: &mut VecDeque<Event>) -> Vec<(u64, Confirm)> {
        events
            .drain(..)
            .map(|e| match e {
                Event::Confirmed { seq, outcome, .. } => (seq, outcome),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn single_multiple_nack_and_lost() {
        let mut c = Confirms::new();
        let mut ev = VecDeque::new();
        for want in 1..=6 {
            assert_eq!(c.publish(), want);
        }
        c.settle(1, 2, false, Confirm::Ack, &mut ev).unwrap();
        assert_eq!(seqs(&mut ev), [(2, Confirm::Ack)]);
        c.settle(1, 3, true, Confirm::Ack, &mut ev).unwrap();
        assert_eq!(seqs(&mut ev), [(1, Confirm::Ack), (3, Confirm::Ack)]);
        c.settle(1, 3, false, Confirm::Ack, &mut ev).unwrap();
        assert!(ev.is_empty(), "a duplicate is ignored");
        c.settle(1, 4, false, Confirm::Nack, &mut ev).unwrap();
        assert_eq!(seqs(&mut ev), [(4, Confirm::Nack)]);
        assert_eq!(
            c.settle(1, 7, false, Confirm::Ack, &mut ev),
            Err(UnknownTag(7))
        );
        assert_eq!(c.outstanding(), 2);
        c.lose_all(1, &mut ev);
        assert_eq!(seqs(&mut ev), [(5, Confirm::Lost), (6, Confirm::Lost)]);
    }

    #[test]
    fn multiple_with_tag_zero_confirms_everything() {
        let mut c = Confirms::new();
        let mut ev = VecDeque::new();
        c.publish();
        c.publish();
        c.settle(1, 0, true, Confirm::Ack, &mut ev).unwrap();
        assert_eq!(seqs(&mut ev), [(1, Confirm::Ack), (2, Confirm::Ack)]);
    }
}
