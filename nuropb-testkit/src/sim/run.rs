//! Stepping a simulation: bytes along links, handlers, timers, and the clock; the run loops.
//!
//! One step does everything that can happen at the current instant, once: each node's socket to
//! open, completions and timers, its outputs (handlers run here) and its bytes; the broker's
//! output and its closed connections; one arrived chunk per link, links taken in a random order;
//! the broker's timers. The run loops step until nothing more happens now, then
//! move the clock to the next instant at which something will.

use crate::broker::ConnectionId;
use crate::sim::handler::{Reply, Work};
use crate::sim::node::{EndpointPeer, Peer, Pending};
use crate::sim::{Sim, seed};
use nuropb_proto::mesh::{Output, Phase};
use rand::RngExt;
use std::time::{Duration, Instant};

/// Why a run did not reach its goal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The step bound was reached while things kept happening: a livelock.
    #[error("livelock: {steps} steps without reaching the goal (at {at:?} of simulated time)")]
    Livelock {
        /// Steps taken by the run call.
        steps: u64,
        /// Simulated time when it gave up.
        at: Duration,
    },
    /// The time limit passed.
    #[error("not reached within {limit:?} of simulated time")]
    TimeLimit {
        /// The limit.
        limit: Duration,
    },
    /// Nothing can happen any more, and the goal was not reached.
    #[error("stuck: nothing more can happen (at {at:?} of simulated time)")]
    Stuck {
        /// Simulated time.
        at: Duration,
    },
}

impl Sim {
    /// Runs until `done` holds, at most `limit` of simulated time; panics with the seed and how
    /// to run it again otherwise, saying `what` was awaited.
    pub fn run_until(&mut self, what: &str, limit: Duration, done: impl FnMut(&Sim) -> bool) {
        if let Err(e) = self.try_run_until(limit, done) {
            panic!(
                "{what}: {e} [{}]",
                seed::rerun_hint(self.seed(), self.elapsed())
            );
        }
    }

    /// Runs until `done` holds, at most `limit` of simulated time.
    pub fn try_run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        let end = self.now + limit;
        let mut steps = 0u64;
        loop {
            if done(self) {
                return Ok(());
            }
            steps += 1;
            if steps > self.config().max_steps {
                return Err(SimError::Livelock {
                    steps,
                    at: self.elapsed(),
                });
            }
            if self.step() {
                continue;
            }
            if done(self) {
                return Ok(());
            }
            match self.next_at() {
                Some(at) if at <= end => self.now = self.now.max(at),
                Some(_) => {
                    self.now = end;
                    return Err(SimError::TimeLimit { limit });
                }
                None => {
                    return Err(SimError::Stuck { at: self.elapsed() });
                }
            }
        }
    }

    /// Runs for `duration` of simulated time, doing everything that falls due in it.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > self.config().max_steps {
                panic!(
                    "{} [{}]",
                    SimError::Livelock {
                        steps,
                        at: self.elapsed()
                    },
                    seed::rerun_hint(self.seed(), self.elapsed())
                );
            }
            if self.step() {
                continue;
            }
            match self.next_at() {
                Some(at) if at <= end => self.now = self.now.max(at),
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    /// Runs until the mesh is quiet: no bytes on any link, no handler running, no endpoint
    /// waiting to reconnect, no partition still to be found out — only timers (heartbeats,
    /// deadlines) left. Panics (with the seed) if that takes
    /// more than an hour of simulated time or the step bound.
    pub fn settle(&mut self) {
        // What the test just did (a request, a fault) is not visible until a step has run.
        self.last_progress = true;
        self.run_until("settle", Duration::from_secs(3600), |s| s.is_quiet());
    }

    /// Whether nothing but timers is left: see [`settle`](Sim::settle). Only known after a step
    /// that did nothing.
    pub fn is_quiet(&self) -> bool {
        !self.last_progress
            && self.nodes.iter().all(|n| {
                !n.busy()
                    && n.link
                        .as_ref()
                        .is_none_or(|l| l.up.is_empty() && l.down.is_empty() && !l.broker_done)
                    && match &n.peer {
                        // Ready without a socket: cut off, and not yet aware of it.
                        Peer::Endpoint(e) => match e.endpoint.phase() {
                            Phase::Ready => n.link.is_some(),
                            // Disconnected, it reconnects when its backoff is over.
                            Phase::Stopped => true,
                            _ => false,
                        },
                        Peer::Client(_) => true,
                    }
            })
            && self.unreachable.is_empty()
            && self.broker.connections_to_service().is_empty()
            && self.down_until.is_none_or(|t| t <= self.now)
    }

    /// The next instant at which anything is due.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        let mut next = self.broker.poll_timeout();
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        for node in &self.nodes {
            take(node.next_at());
            take(node.link.as_ref().and_then(|l| l.next_at()));
        }
        next
    }

    /// Does everything that can happen now, once; true if anything did.
    pub(crate) fn step(&mut self) -> bool {
        self.steps += 1;
        let mut progress = false;
        for i in 0..self.nodes.len() {
            progress |= self.service_node(i);
        }
        progress |= self.service_broker();
        progress |= self.deliver_due();
        let now = self.now;
        if self.broker.poll_timeout().is_some_and(|t| t <= now) {
            self.broker.handle_timeout(now);
            progress = true;
        }
        self.last_progress = progress;
        progress
    }

    /// A node's socket to open, completions, timers, outputs and bytes.
    fn service_node(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut progress = false;
        // A socket the endpoint asked for.
        if let Peer::Endpoint(e) = &mut self.nodes[i].peer
            && let Some(via) = e.connect_to.take()
        {
            self.drop_link(i);
            let opened = self.open_link(i, via);
            if let Peer::Endpoint(e) = &mut self.nodes[i].peer {
                match opened {
                    Ok(()) => e.endpoint.connected(now),
                    Err(why) => e.endpoint.connect_failed(why, now),
                }
            }
            progress = true;
        }
        let record = self.config().record;
        let node = &mut self.nodes[i];
        match &mut node.peer {
            Peer::Endpoint(e) => {
                // Handlers that finish now.
                while let Some(entry) = e.scheduled.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let p = entry.remove();
                    if let Err(err) = e.endpoint.complete(p.delivery, p.outcome, p.events, now) {
                        e.record.complete_errors.push(err);
                    }
                    progress = true;
                }
                if e.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    e.endpoint.handle_timeout(now);
                    progress = true;
                }
                while let Some(output) = e.endpoint.poll_output() {
                    progress = true;
                    on_output(e, output, now, record, &mut self.seq);
                }
            }
            Peer::Client(c) => {
                if c.conn.poll_timeout().is_some_and(|t| t <= now) {
                    c.conn.handle_timeout(now);
                    progress = true;
                }
                while let Some(event) = c.conn.poll_event() {
                    progress = true;
                    c.events.push_back(event);
                }
            }
        }
        progress |= self.transmit(i);
        progress
    }

    /// Moves a node's output onto its link; drops the socket when its connection has ended.
    fn transmit(&mut self, i: usize) -> bool {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let node = &mut self.nodes[i];
        let (n, ended) = match &mut node.peer {
            Peer::Endpoint(e) => (
                e.endpoint.poll_transmit(&mut buf),
                matches!(e.endpoint.phase(), Phase::Disconnected | Phase::Stopped),
            ),
            Peer::Client(c) => (c.conn.poll_transmit(&mut buf), c.conn.is_closed()),
        };
        let mut progress = false;
        if n > 0
            && let Some(link) = &node.link
            && !link.client_done
        {
            self.send_up(i, buf);
            buf = self.spare();
            progress = true;
        }
        self.buf = buf;
        if ended
            && let Some(link) = &mut self.nodes[i].link
            && !link.client_done
        {
            link.client_done = true;
            progress = true;
        }
        progress
    }

    /// The latency of the next chunk.
    fn latency(&mut self) -> Duration {
        let (min, max) = self.config().latency;
        if max <= min {
            return min;
        }
        let span = (max - min).as_nanos() as u64;
        min + Duration::from_nanos(self.rng.random_range(0..=span))
    }

    /// Splits `bytes` in two at a random byte, sometimes.
    fn split(&mut self, mut bytes: Vec<u8>) -> (Vec<u8>, Option<Vec<u8>>) {
        let chance = self.config().split_chance;
        if chance > 0.0 && bytes.len() > 1 && self.rng.random_bool(chance.min(1.0)) {
            let at = self.rng.random_range(1..bytes.len());
            let tail = bytes.split_off(at);
            (bytes, Some(tail))
        } else {
            (bytes, None)
        }
    }

    fn send_up(&mut self, i: usize, bytes: Vec<u8>) {
        let at = self.now + self.latency();
        let (head, tail) = self.split(bytes);
        if let Some(link) = &mut self.nodes[i].link {
            link.up.push(at, head);
            if let Some(tail) = tail {
                link.up.push(at, tail);
            }
        }
    }

    fn send_down(&mut self, i: usize, bytes: Vec<u8>) {
        let at = self.now + self.latency();
        let (head, tail) = self.split(bytes);
        if let Some(link) = &mut self.nodes[i].link {
            link.down.push(at, head);
            if let Some(tail) = tail {
                link.down.push(at, tail);
            }
        }
    }

    /// Moves the broker's output onto the links; notes the connections it is done with. (Every
    /// connection the broker holds has a link: links are only dropped together with
    /// [`Broker::disconnect`](crate::broker::Broker::disconnect).)
    fn service_broker(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.nodes.len() {
            let Some(c) = self.nodes[i].link.as_ref().map(|l| l.conn) else {
                continue;
            };
            if self.broker.pending_output(c) > 0
                && let Some(buf) = self.broker_output(c)
            {
                self.send_down(i, buf);
                progress = true;
            }
            if let Some(link) = &mut self.nodes[i].link
                && !link.broker_done
                && self.broker.is_closed(c)
            {
                link.broker_done = true;
                progress = true;
            }
        }
        progress | self.service_unreachable()
    }

    /// What the broker writes to a client it cannot reach is lost; once it gives up on the
    /// connection (its heartbeat timeout), the connection goes.
    fn service_unreachable(&mut self) -> bool {
        let mut progress = false;
        let mut k = 0;
        while k < self.unreachable.len() {
            let c = self.unreachable[k];
            if self.broker.pending_output(c) > 0 {
                if let Some(buf) = self.broker_output(c) {
                    self.recycle(buf);
                }
                progress = true;
            }
            if self.broker.is_closed(c) {
                self.unreachable.swap_remove(k);
                self.forget(c);
                progress = true;
            } else {
                k += 1;
            }
        }
        progress
    }

    /// What the broker has written to connection `c`, read by the tap as it goes.
    fn broker_output(&mut self, c: ConnectionId) -> Option<Vec<u8>> {
        let mut buf = self.spare();
        if self.broker.poll_transmit(c, &mut buf) == 0 {
            self.pool.push(buf);
            return None;
        }
        if let Some(tap) = &mut self.tap {
            tap.down(c, &buf);
        }
        Some(buf)
    }

    /// Delivers one arrived chunk per link, links in a random order; ends links whose last
    /// bytes have arrived.
    fn deliver_due(&mut self) -> bool {
        let now = self.now;
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(
            self.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.link.as_ref().is_some_and(|l| due(l, now)))
                .map(|(i, _)| i),
        );
        if order.len() > 1 {
            // Fisher–Yates with the simulation's generator.
            for k in (1..order.len()).rev() {
                let j = self.rng.random_range(0..=k);
                order.swap(k, j);
            }
        }
        let progress = !order.is_empty();
        for &i in &order {
            self.deliver_link(i);
        }
        self.order = order;
        progress
    }

    fn deliver_link(&mut self, i: usize) {
        let now = self.now;
        let Some(link) = &mut self.nodes[i].link else {
            return;
        };
        let c = link.conn;
        // Up and down are independent streams; take whichever is due (up first when both).
        if let Some(bytes) = link.up.pop_due(now) {
            if let Some(tap) = &mut self.tap {
                tap.up(c, &bytes);
            }
            self.broker.handle_input(c, &bytes, now);
            self.recycle(bytes);
        } else if let Some(bytes) = link.down.pop_due(now) {
            if !link.client_done {
                self.nodes[i].handle_input(&bytes, now);
            }
            self.recycle(bytes);
        }
        let Some(link) = &self.nodes[i].link else {
            return;
        };
        if (link.client_done && link.up.is_empty()) || (link.broker_done && link.down.is_empty()) {
            let client_done = link.client_done;
            self.drop_link(i);
            if !client_done {
                self.nodes[i].handle_eof(now);
            }
        }
    }

    /// An empty buffer, with the capacity of one used before when there is one: the peers swap
    /// it in as their next output buffer, so buffers circulate instead of being reallocated.
    fn spare(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.pool.len() < 64 && bytes.capacity() > 0 {
            bytes.clear();
            self.pool.push(bytes);
        }
    }

    /// The socket of node `i` goes: the broker forgets the connection.
    pub(crate) fn drop_link(&mut self, i: usize) {
        if let Some(link) = self.nodes[i].link.take() {
            self.forget(link.conn);
        }
    }

    /// Connection `c`'s socket is gone: the broker (and the tap) forget it.
    fn forget(&mut self, c: ConnectionId) {
        self.broker.disconnect(c, self.now);
        if let Some(tap) = &mut self.tap {
            tap.close(c);
        }
    }
}

/// Whether a link has something to do now.
fn due(link: &crate::sim::link::Link, now: Instant) -> bool {
    link.next_at().is_some_and(|t| t <= now)
        || (link.client_done && link.up.is_empty())
        || (link.broker_done && link.down.is_empty())
}

/// An endpoint's output: open sockets, run handlers, record what happened.
fn on_output(e: &mut EndpointPeer, output: Output, now: Instant, record: bool, seq: &mut u64) {
    match output {
        Output::Connect { node } => {
            e.record.connects.push(node);
            e.connect_to = Some(node);
        }
        Output::Ready => e.record.readies += 1,
        Output::MeshConfigured => e.record.mesh_configured += 1,
        Output::Call(call) => {
            e.record.handed_out += 1;
            let reply = e.handler.as_mut().map(|h| h(&Work::Call(&call)));
            let delivery = call.delivery;
            if record {
                e.record.calls.push(call);
            }
            if let Some(reply) = reply {
                schedule(e, delivery, reply, now, seq);
            }
        }
        Output::Incoming(incoming) => {
            e.record.handed_out += 1;
            let reply = e.handler.as_mut().map(|h| h(&Work::Event(&incoming)));
            let delivery = incoming.delivery;
            if record {
                e.record.incoming.push(incoming);
            }
            if let Some(reply) = reply {
                schedule(e, delivery, reply, now, seq);
            }
        }
        Output::Response { request, result } => match e.record.responses.entry(request) {
            std::collections::hash_map::Entry::Occupied(_) => {
                e.record.duplicate_responses.push(request)
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(result);
            }
        },
        Output::NotDelivered {
            correlation_id,
            kind,
            error,
        } => e.record.not_delivered.push((correlation_id, kind, error)),
        Output::Unreadable(unreadable) => e.record.unreadable.push(unreadable),
        Output::Blocked(_) => {}
        Output::Disconnected { error, .. } => e.record.disconnects.push(error),
        Output::Stopped { error } => e.record.stopped = Some(error),
    }
}

fn schedule(
    e: &mut EndpointPeer,
    delivery: nuropb_proto::mesh::DeliveryId,
    reply: Reply,
    now: Instant,
    seq: &mut u64,
) {
    match reply {
        Reply::Hold => e.record.held += 1,
        Reply::Complete {
            outcome,
            events,
            after,
        } if after.is_zero() => {
            if let Err(err) = e.endpoint.complete(delivery, outcome, events, now) {
                e.record.complete_errors.push(err);
            }
        }
        Reply::Complete {
            outcome,
            events,
            after,
        } => {
            *seq += 1;
            e.scheduled.insert(
                (now + after, *seq),
                Pending {
                    delivery,
                    outcome,
                    events,
                },
            );
        }
    }
}
