//! A wire tap: every frame between the clients and the broker, read as the broker sees it, to
//! check that each delivery is settled exactly once.
//!
//! Frames from the broker are read when the broker writes them, frames from a client when they
//! reach the broker, so the tap's view of a channel is the broker's: a delivery is outstanding
//! from its `basic.deliver` (on a consumer that needs acks) until an `ack`, `nack` or `reject`
//! covering its tag arrives. A settlement of a tag that is not outstanding — settled twice,
//! or never delivered — is a [violation](Tap::violations). Closing a channel or losing the
//! connection hands the outstanding deliveries back to the broker (it requeues them); deleting
//! a queue makes the broker forget them, and settling them later is counted, not a violation
//! (the client cannot know yet).

use crate::broker::ConnectionId;
use amq_protocol::protocol::{AMQPClass, basic, channel};
use nuropb_proto::amqp::Properties;
use nuropb_proto::amqp::frame::{ContentHeader, Frame, FrameError, FrameReader, RawFrame};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Counts of what the tap saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Deliveries on consumers that need acks.
    pub deliveries: u64,
    /// Of those, the ones flagged `redelivered`.
    pub redeliveries: u64,
    /// Deliveries on auto-ack consumers.
    pub auto_acked: u64,
    /// Deliveries acknowledged (`basic.ack`, one per tag covered).
    pub acks: u64,
    /// Deliveries requeued by the client (`nack`/`reject` with `requeue`).
    pub requeues: u64,
    /// Deliveries rejected without requeue (`nack`/`reject`): dropped or dead-lettered.
    pub rejects: u64,
    /// Deliveries handed back to the broker by a closing channel or a lost connection.
    pub released: u64,
    /// Settlements of deliveries the broker forgot (their queue was deleted meanwhile).
    pub forgotten_settles: u64,
}

#[derive(Debug)]
struct Outstanding {
    consumer: String,
    correlation_id: Option<String>,
}

#[derive(Debug, Default)]
struct ChannelTap {
    /// Consumer tag → whether it is auto-ack.
    consumers: HashMap<String, bool>,
    /// Auto-ack flags of consumes with a broker-chosen tag, until their `consume-ok`.
    unnamed: VecDeque<bool>,
    outstanding: BTreeMap<u64, Outstanding>,
    forgotten: HashSet<u64>,
    /// A delivery whose content header is awaited.
    awaiting_header: Option<u64>,
    closing: bool,
}

#[derive(Debug)]
struct LinkTap {
    up: FrameReader,
    down: FrameReader,
    channels: HashMap<u16, ChannelTap>,
    frames: Vec<Frame>,
}

/// Reads the frames in `bytes` into `out`, as [`FrameReader::read`] does, except body frames:
/// the tap never looks at bodies, so they are not copied.
fn read_skipping_bodies(
    reader: &mut FrameReader,
    mut bytes: &[u8],
    out: &mut Vec<Frame>,
) -> Result<(), FrameError> {
    while let Some(raw) = reader.next_raw(&mut bytes)? {
        match raw {
            RawFrame::Body(..) => {}
            // What the client reads of a header whose properties do not decode whole (a
            // publisher's bytes, forwarded by the broker as they came).
            RawFrame::Header(ch, payload) => {
                let Some((fixed, properties)) = payload.split_first_chunk::<12>() else {
                    return Err(FrameError::BadHeader {
                        channel: ch,
                        error: nuropb_proto::amqp::PropertiesError::Malformed,
                    });
                };
                out.push(Frame::Header(
                    ch,
                    ContentHeader {
                        class_id: u16::from_be_bytes([fixed[0], fixed[1]]),
                        body_size: u64::from_be_bytes(
                            *fixed[4..].first_chunk::<8>().unwrap_or(&[0; 8]),
                        ),
                        properties: Properties::salvage(properties).0,
                    },
                ));
            }
            raw => out.push(raw.decode()?),
        }
    }
    Ok(())
}

/// The wire tap of a [`Sim`](crate::sim::Sim); see the module documentation.
#[derive(Debug, Default)]
pub struct Tap {
    links: HashMap<ConnectionId, LinkTap>,
    stats: TapStats,
    violations: Vec<String>,
    /// Client requeues per correlation id.
    requeued: HashMap<String, u32>,
}

impl Tap {
    /// What the tap counted.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// Settlements that broke the rules, in the order they happened.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Deliveries outstanding on live channels: not settled yet.
    pub fn unsettled(&self) -> usize {
        self.links
            .values()
            .flat_map(|l| l.channels.values())
            .filter(|c| !c.closing)
            .map(|c| c.outstanding.len())
            .sum()
    }

    /// How many times the client requeued the message with `correlation_id`.
    pub fn requeues_of(&self, correlation_id: &str) -> u32 {
        self.requeued.get(correlation_id).copied().unwrap_or(0)
    }

    /// The largest number of requeues of any one message, with its correlation id.
    pub fn most_requeued(&self) -> Option<(&str, u32)> {
        self.requeued
            .iter()
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse(c.as_str())))
            .map(|(c, n)| (c.as_str(), *n))
    }

    pub(crate) fn open(&mut self, c: ConnectionId) {
        self.links.insert(
            c,
            LinkTap {
                up: FrameReader::new(u32::MAX),
                down: FrameReader::new(u32::MAX),
                channels: HashMap::new(),
                frames: Vec::new(),
            },
        );
    }

    /// The connection is gone: its outstanding deliveries go back to their queues.
    pub(crate) fn close(&mut self, c: ConnectionId) {
        if let Some(link) = self.links.remove(&c) {
            let n: usize = link.channels.values().map(|ch| ch.outstanding.len()).sum();
            self.stats.released += n as u64;
        }
    }

    /// Bytes that reached the broker from client `c`.
    pub(crate) fn up(&mut self, c: ConnectionId, bytes: &[u8]) {
        let Some(mut link) = self.links.remove(&c) else {
            return;
        };
        let mut frames = std::mem::take(&mut link.frames);
        if read_skipping_bodies(&mut link.up, bytes, &mut frames).is_err() {
            self.violations
                .push(format!("{c}: unreadable bytes from the client"));
        }
        for frame in frames.drain(..) {
            if let Frame::Method(ch, method) = frame {
                self.client_method(c, &mut link, ch, method);
            }
        }
        link.frames = frames;
        self.links.insert(c, link);
    }

    /// Bytes the broker wrote to client `c`.
    pub(crate) fn down(&mut self, c: ConnectionId, bytes: &[u8]) {
        let Some(mut link) = self.links.remove(&c) else {
            return;
        };
        let mut frames = std::mem::take(&mut link.frames);
        if read_skipping_bodies(&mut link.down, bytes, &mut frames).is_err() {
            self.violations
                .push(format!("{c}: unreadable bytes from the broker"));
        }
        for frame in frames.drain(..) {
            match frame {
                Frame::Method(ch, method) => self.broker_method(&mut link, ch, method),
                Frame::Header(ch, header) => {
                    if let Some(channel) = link.channels.get_mut(&ch)
                        && let Some(tag) = channel.awaiting_header.take()
                        && let Some(o) = channel.outstanding.get_mut(&tag)
                    {
                        o.correlation_id = header
                            .properties
                            .correlation_id
                            .as_ref()
                            .map(|c| c.as_str().to_owned());
                    }
                }
                _ => {}
            }
        }
        link.frames = frames;
        self.links.insert(c, link);
    }

    fn client_method(&mut self, c: ConnectionId, link: &mut LinkTap, ch: u16, method: AMQPClass) {
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                link.channels.insert(ch, ChannelTap::default());
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                if let Some(channel) = link.channels.get_mut(&ch) {
                    self.stats.released += channel.outstanding.len() as u64;
                    channel.outstanding.clear();
                    channel.closing = true;
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                link.channels.remove(&ch);
            }
            AMQPClass::Basic(basic::AMQPMethod::Consume(consume)) => {
                if let Some(channel) = link.channels.get_mut(&ch) {
                    let tag = consume.consumer_tag.as_str();
                    if tag.is_empty() {
                        channel.unnamed.push_back(consume.no_ack);
                    } else {
                        channel.consumers.insert(tag.to_owned(), consume.no_ack);
                    }
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(ack)) => {
                self.settle(c, link, ch, ack.delivery_tag, ack.multiple, Settled::Ack)
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(nack)) => {
                let how = if nack.requeue {
                    Settled::Requeue
                } else {
                    Settled::Reject
                };
                self.settle(c, link, ch, nack.delivery_tag, nack.multiple, how)
            }
            AMQPClass::Basic(basic::AMQPMethod::Reject(reject)) => {
                let how = if reject.requeue {
                    Settled::Requeue
                } else {
                    Settled::Reject
                };
                self.settle(c, link, ch, reject.delivery_tag, false, how)
            }
            _ => {}
        }
    }

    fn broker_method(&mut self, link: &mut LinkTap, ch: u16, method: AMQPClass) {
        let Some(channel) = link.channels.get_mut(&ch) else {
            return;
        };
        match method {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)) => {
                if channel.closing {
                    return;
                }
                let tag = deliver.consumer_tag.as_str();
                if channel.consumers.get(tag).copied().unwrap_or(false) {
                    self.stats.auto_acked += 1;
                    return;
                }
                self.stats.deliveries += 1;
                if deliver.redelivered {
                    self.stats.redeliveries += 1;
                }
                channel.outstanding.insert(
                    deliver.delivery_tag,
                    Outstanding {
                        consumer: tag.to_owned(),
                        correlation_id: None,
                    },
                );
                channel.awaiting_header = Some(deliver.delivery_tag);
            }
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => {
                let tag = ok.consumer_tag.as_str().to_owned();
                if !channel.consumers.contains_key(&tag)
                    && let Some(no_ack) = channel.unnamed.pop_front()
                {
                    channel.consumers.insert(tag, no_ack);
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)) => {
                // The queue went: the broker forgets the consumer's deliveries.
                let tag = cancel.consumer_tag.as_str();
                let gone: Vec<u64> = channel
                    .outstanding
                    .iter()
                    .filter(|(_, o)| o.consumer == tag)
                    .map(|(t, _)| *t)
                    .collect();
                for t in gone {
                    channel.outstanding.remove(&t);
                    channel.forgotten.insert(t);
                }
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                self.stats.released += channel.outstanding.len() as u64;
                channel.outstanding.clear();
                channel.closing = true;
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                link.channels.remove(&ch);
            }
            _ => {}
        }
    }

    fn settle(
        &mut self,
        c: ConnectionId,
        link: &mut LinkTap,
        ch: u16,
        tag: u64,
        multiple: bool,
        how: Settled,
    ) {
        let Some(channel) = link.channels.get_mut(&ch) else {
            return;
        };
        if channel.closing {
            return; // the broker ignores it; the deliveries were handed back
        }
        let tags: Vec<u64> = if multiple {
            if tag != 0 && !channel.outstanding.contains_key(&tag) {
                self.unknown(c, ch, tag, channel);
                return;
            }
            channel
                .outstanding
                .range(..=if tag == 0 { u64::MAX } else { tag })
                .map(|(t, _)| *t)
                .collect()
        } else {
            vec![tag]
        };
        for t in tags {
            let Some(o) = channel.outstanding.remove(&t) else {
                self.unknown(c, ch, t, channel);
                continue;
            };
            match how {
                Settled::Ack => self.stats.acks += 1,
                Settled::Reject => self.stats.rejects += 1,
                Settled::Requeue => {
                    self.stats.requeues += 1;
                    if let Some(id) = o.correlation_id {
                        *self.requeued.entry(id).or_default() += 1;
                    }
                }
            }
        }
    }

    fn unknown(&mut self, c: ConnectionId, ch: u16, tag: u64, channel: &mut ChannelTap) {
        if channel.forgotten.remove(&tag) {
            self.stats.forgotten_settles += 1;
            // RabbitMQ closes the channel for it (406 unknown delivery tag).
            return;
        }
        self.violations.push(format!(
            "{c} channel {ch}: delivery tag {tag} settled but not outstanding (settled twice?)"
        ));
    }
}

#[derive(Clone, Copy)]
enum Settled {
    Ack,
    Requeue,
    Reject,
}
