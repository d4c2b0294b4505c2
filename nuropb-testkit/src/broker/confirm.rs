//! Publisher confirms: `confirm.select`, and one `basic.ack` (or `basic.nack` when a queue
//! refused the message) per publish sequence number once the message is routed and stored.
//!
//! Every message is settled the moment it is published — the broker is in memory — so confirms
//! go out one per publish, `multiple=false`, in order; returns come before their confirm.

use crate::broker::error::AmqpError;
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, basic, confirm};

impl Broker {
    pub(crate) fn confirm_select(
        &mut self,
        c: ConnectionId,
        ch: u16,
        nowait: bool,
    ) -> Result<(), AmqpError> {
        let channel = self.channel_mut(c, ch)?;
        if channel.tx.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from tx to confirm mode",
            ));
        }
        if channel.confirm_next.is_none() {
            channel.confirm_next = Some(1);
        }
        if !nowait {
            let ok = AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}));
            wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        }
        Ok(())
    }

    /// Takes the next publish sequence number of a channel in confirm mode.
    pub(crate) fn next_publish_seq(&mut self, c: ConnectionId, ch: u16) -> Option<u64> {
        let channel = self.channel_mut(c, ch).ok()?;
        let seq = channel.confirm_next?;
        channel.confirm_next = Some(seq + 1);
        Some(seq)
    }

    /// Sends the confirm of publish `seq`.
    pub(crate) fn send_confirm(&mut self, c: ConnectionId, ch: u16, seq: u64, ack: bool) {
        let Ok(conn) = self.conn_mut(c) else {
            return;
        };
        let m = if ack {
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: seq,
                multiple: false,
            }))
        } else {
            // RabbitMQ's nack record keeps the spec default, requeue=true.
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: seq,
                multiple: false,
                requeue: true,
            }))
        };
        wire::method(&mut conn.out, ch, &m);
    }
}
