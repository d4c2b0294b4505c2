//! The service consumer's deliveries not yet settled on the wire: acks are held back until the
//! next write, so that a run of them goes out as one `multiple` ack.

use crate::amqp::{ChannelId, Connection};
use std::collections::BTreeMap;

/// Acks waiting to be sent: contiguous acks go out as one `multiple` ack.
#[derive(Debug, Default)]
pub(crate) struct Settlements {
    /// Unsettled delivery tags of the service consumer: `true` once acked by the endpoint.
    outstanding: BTreeMap<u64, bool>,
}

impl Settlements {
    pub(crate) fn track(&mut self, tag: u64) {
        self.outstanding.insert(tag, false);
    }

    pub(crate) fn ack(&mut self, tag: u64) {
        if let Some(acked) = self.outstanding.get_mut(&tag) {
            *acked = true;
        }
    }

    pub(crate) fn forget(&mut self, tag: u64) {
        self.outstanding.remove(&tag);
    }

    pub(crate) fn clear(&mut self) {
        self.outstanding.clear();
    }

    /// Deliveries not settled on the wire yet.
    pub(crate) fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Sends the acks: the acked run at the front as one `multiple` ack (every earlier tag is
    /// settled), the rest one by one.
    pub(crate) fn flush(&mut self, conn: &mut Connection, ch: ChannelId) {
        let mut front = None;
        let mut front_len = 0;
        while let Some((&tag, &true)) = self.outstanding.first_key_value() {
            self.outstanding.pop_first();
            front = Some(tag);
            front_len += 1;
        }
        if let Some(tag) = front {
            let _ = conn.basic_ack(ch, tag, front_len > 1);
        }
        let acked: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, acked)| **acked)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in acked {
            self.outstanding.remove(&tag);
            let _ = conn.basic_ack(ch, tag, false);
        }
    }
}
