//! The election as a state machine: etcd's answers go in, what to do comes out. No I/O.
//!
//! [`Election`] follows the house's sans-IO shape (quinn-proto, str0m): the driver executes each
//! [`Action`] it polls and hands the answer back through the `handle_*` method the action names;
//! it calls [`Election::handle_timeout`] when [`Election::poll_timeout`] is reached; it drains
//! [`Election::poll_notice`] for logs and users. Time comes in as arguments, the jitter of the
//! backoff from a seed: a test drives the whole election, step by step, without etcd.
//!
//! The scheme, shared with Python's `ServiceContainer`:
//! - a session grants a 15 s lease and keeps it alive (every third of its time to live) before
//!   it campaigns: `IF version(leader) == 0 THEN put(leader, instance_id, lease)`;
//! - the leader configures the mesh and writes `rmq-config-ok = True`; everyone consumes once
//!   the flag is there — **and was written after the current leader's key was created**, so a
//!   flag left from an earlier run (Python's flag has no lease) does not count;
//! - a leader steps down at once when a keep-alive fails, etcd says the lease is gone, or the
//!   renew deadline passes (a fifth of the time to live before the lease could expire on the
//!   server); its leader-only writes are fenced (see [`Fence`]);
//! - a deleted leader key makes everyone campaign again; a follower that wins takes over the
//!   duties, a leader that loses drops them; serving goes on throughout.

mod io;
#[cfg(test)]
mod tests;

pub use io::{
    Action, CampaignResult, Change, Entry, Fence, Notice, Opened, SessionId, Snapshot, Term,
    WriteOutcome,
};

use crate::keys::{CONFIG_OK, KeyName, Keys};
use crate::state::{ContainerState, EtcdLink, Phase, Role};
use nuropb_proto::mesh::Backoff;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most this many notices wait to be drained; older ones are dropped past it.
const MAX_NOTICES: usize = 1024;

/// How an election runs.
///
/// ```
/// use nuropb_container::election::ElectionConfig;
/// let config = ElectionConfig::new("orders", "a1b2").leader_prefetch(Some(1));
/// assert_eq!(config.lease_ttl.as_secs(), 15);
/// assert_eq!(config.keep_alive_every().as_secs(), 5);
/// assert_eq!(config.renew_margin().as_secs(), 3);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ElectionConfig {
    /// The service's keys.
    pub keys: Keys,
    /// This instance's id: the leader key's value when it leads.
    pub instance_id: String,
    /// The lease's time to live to ask for (15 s, as Python).
    pub lease_ttl: Duration,
    /// The leader's prefetch, when it should differ from the followers' (which is the
    /// service's own).
    pub leader_prefetch: Option<u16>,
    /// How often the leader checks its service's health (10 s).
    pub health_every: Duration,
    /// Retries of etcd and of the duties: exponential backoff with jitter (200 ms up to 5 s).
    pub retry: Backoff,
}

impl ElectionConfig {
    /// The election of `service`'s instance `instance_id`, with Python's lease.
    pub fn new(service: &str, instance_id: impl Into<String>) -> ElectionConfig {
        ElectionConfig {
            keys: Keys::new(service),
            instance_id: instance_id.into(),
            lease_ttl: crate::keys::LEASE_TTL,
            leader_prefetch: None,
            health_every: Duration::from_secs(10),
            retry: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(5),
                ..Backoff::default()
            },
        }
    }

    /// Sets the leader's prefetch.
    pub fn leader_prefetch(mut self, prefetch: Option<u16>) -> Self {
        self.leader_prefetch = prefetch;
        self
    }

    /// How often a keep-alive goes out: a third of the lease's time to live.
    pub fn keep_alive_every(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How long before the lease could expire on the server a leader steps down when no
    /// keep-alive was answered: a fifth of the time to live, at least 500 ms.
    pub fn renew_margin(&self) -> Duration {
        (self.lease_ttl / 5).max(Duration::from_millis(500))
    }
}

/// The lease of an open session.
#[derive(Clone, Copy, Debug)]
struct Lease {
    id: i64,
    ttl: Duration,
    /// The lease cannot have expired on the server before this (the send time of the last
    /// answered keep-alive, or of the grant, plus the time to live).
    valid_until: Instant,
    next_keep_alive: Instant,
}

#[derive(Clone, Copy, Debug)]
enum Session {
    /// No etcd (standalone) or stopped.
    Off,
    /// Lost or not yet opened; the next `Open` goes out at `retry_at`.
    Down { retry_at: Instant },
    /// `Open` sent.
    Opening { id: SessionId },
    /// Open: lease kept alive, keys watched.
    Up { id: SessionId, lease: Lease },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Campaign {
    Idle,
    /// A campaign is out; `again` when the leader key was deleted meanwhile.
    InFlight {
        again: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duty {
    /// Not leading (or stopped).
    None,
    /// Marking `rmq-config-ok = False` before configuring.
    Marking,
    /// Configuring the mesh; when it failed, tried again at `retry_at`.
    Configuring { retry_at: Option<Instant> },
    /// Writing `rmq-config-ok`.
    Writing,
    /// Standalone, mesh configured: nothing more to do.
    Done,
    /// Leading with the mesh configured: a health check at `next`, unless one is out.
    Watching { next: Instant, checking: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Serving {
    Idle,
    Requested { prefetch: Option<u16> },
    Retry { at: Instant },
    Up { prefetch: Option<u16> },
}

/// One service instance's election and lifecycle, without I/O. See the [module](self) docs.
///
/// ```
/// use nuropb_container::election::{Action, Election, ElectionConfig};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let mut election = Election::new(ElectionConfig::new("orders", "a1"), now, 7);
/// // The first thing asked for: a session (a lease, then the campaign).
/// assert!(matches!(election.poll_action(), Some(Action::Open { .. })));
/// assert_eq!(election.state().to_string(), "electing, starting, etcd connecting");
/// ```
#[derive(Debug)]
pub struct Election {
    config: ElectionConfig,
    standalone: bool,
    state: ContainerState,
    session: Session,
    next_session: u64,
    /// etcd failures in a row.
    etcd_failures: u32,
    /// A leadership of a lost session, to resign at the next `Open`.
    resign: Option<Fence>,
    /// A lease of a lost session, to revoke at the next `Open`.
    revoke: Option<i64>,
    leader: Option<Entry>,
    /// The revision the knowledge of the leader key is from.
    leader_seen: i64,
    config_ok: Option<Entry>,
    config_seen: i64,
    campaign: Campaign,
    term: Term,
    fence: Option<Fence>,
    duty: Duty,
    duty_failures: u32,
    serving: Serving,
    serve_failures: u32,
    /// Why the next step-down happens, for its notice.
    step_down_reason: Option<String>,
    accepted_flag: Option<i64>,
    /// The leader last announced with [`Notice::LeaderIs`].
    announced_leader: Option<(String, i64)>,
    /// The state last announced with [`Notice::State`].
    announced_state: Option<ContainerState>,
    stopping: bool,
    actions: VecDeque<Action>,
    notices: VecDeque<Notice>,
    rng: u64,
}

impl Election {
    /// An instance that elects a leader through etcd; asks for a session at once.
    pub fn new(config: ElectionConfig, now: Instant, seed: u64) -> Election {
        let mut election = Election::with(config, false, seed);
        election.session = Session::Down { retry_at: now };
        election.open();
        election
    }

    /// An instance without etcd: it configures the mesh itself, then serves.
    pub fn standalone(config: ElectionConfig, seed: u64) -> Election {
        let mut election = Election::with(config, true, seed);
        election.state.role = Role::Standalone;
        election.state.etcd = EtcdLink::NotUsed;
        election.term = Term(1);
        election.duty = Duty::Configuring { retry_at: None };
        election
            .actions
            .push_back(Action::ConfigureMesh { term: Term(1) });
        election.notify_state();
        election
    }

    fn with(config: ElectionConfig, standalone: bool, seed: u64) -> Election {
        Election {
            config,
            standalone,
            state: ContainerState {
                role: Role::Electing,
                phase: Phase::Starting,
                etcd: EtcdLink::Connecting,
            },
            session: Session::Off,
            next_session: 0,
            etcd_failures: 0,
            resign: None,
            revoke: None,
            leader: None,
            leader_seen: 0,
            config_ok: None,
            config_seen: 0,
            campaign: Campaign::Idle,
            term: Term(0),
            fence: None,
            duty: Duty::None,
            duty_failures: 0,
            serving: Serving::Idle,
            serve_failures: 0,
            step_down_reason: None,
            accepted_flag: None,
            announced_leader: None,
            announced_state: None,
            stopping: false,
            actions: VecDeque::new(),
            notices: VecDeque::new(),
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// The state.
    pub fn state(&self) -> ContainerState {
        self.state
    }

    /// The leadership, while this instance leads.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// The session being opened or open, if any: what the driver's etcd streams belong to.
    pub fn session(&self) -> Option<SessionId> {
        self.session_id()
    }

    /// The leader key as last known.
    pub fn leader(&self) -> Option<&Entry> {
        self.leader.as_ref()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next notice.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// When [`Election::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = match self.session {
            Session::Up { lease, .. } => {
                Some(lease.next_keep_alive.min(self.renew_deadline(&lease)))
            }
            Session::Down { retry_at } => Some(retry_at),
            Session::Off | Session::Opening { .. } => None,
        };
        let duty = match self.duty {
            Duty::Configuring { retry_at } => retry_at,
            Duty::Watching {
                next,
                checking: false,
            } => Some(next),
            _ => None,
        };
        let serving = match self.serving {
            Serving::Retry { at } => Some(at),
            _ => None,
        };
        [session, duty, serving].into_iter().flatten().min()
    }

    fn renew_deadline(&self, lease: &Lease) -> Instant {
        let margin = self.config.renew_margin().min(lease.ttl / 2);
        lease
            .valid_until
            .checked_sub(margin)
            .unwrap_or(lease.valid_until)
    }

    /// Time has passed: keep-alives, the renew deadline, retries and health checks.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        // The renew deadline first: a leader that was paused past it steps down before it
        // does anything else.
        match self.session {
            Session::Up { lease, .. } if now >= self.renew_deadline(&lease) => {
                self.lose_lease(now, "no keep-alive answered before the renew deadline");
            }
            Session::Up { id, mut lease } if now >= lease.next_keep_alive => {
                lease.next_keep_alive = now + self.config.keep_alive_every();
                self.session = Session::Up { id, lease };
                self.actions.push_back(Action::KeepAlive { session: id });
            }
            Session::Down { retry_at } if now >= retry_at => self.open(),
            _ => {}
        }
        match self.duty {
            Duty::Configuring { retry_at: Some(at) } if now >= at => {
                self.duty = Duty::Configuring { retry_at: None };
                self.actions
                    .push_back(Action::ConfigureMesh { term: self.term });
            }
            Duty::Watching {
                next,
                checking: false,
            } if now >= next => {
                if let Some(fence) = self.fence.clone() {
                    self.duty = Duty::Watching {
                        next,
                        checking: true,
                    };
                    self.actions.push_back(Action::CheckHealth {
                        term: self.term,
                        fence,
                    });
                }
            }
            _ => {}
        }
        if let Serving::Retry { at } = self.serving
            && now >= at
        {
            self.serving = Serving::Idle;
            self.maybe_serve();
        }
    }

    /// The answer to [`Action::Open`].
    pub fn handle_opened(&mut self, session: SessionId, opened: Opened, now: Instant) {
        if self.stopping || !matches!(self.session, Session::Opening { id } if id == session) {
            return;
        }
        if let Some(outcome) = opened.resigned {
            self.notice(Notice::LeaderWrite {
                what: "resign",
                outcome,
            });
        }
        self.resign = None;
        self.revoke = None;
        self.etcd_failures = 0;
        self.session = Session::Up {
            id: session,
            lease: Lease {
                id: opened.lease,
                ttl: opened.ttl,
                valid_until: opened.granted_at + opened.ttl,
                next_keep_alive: now + self.config.keep_alive_every(),
            },
        };
        self.state.etcd = EtcdLink::Connected;
        // A new session knows the keys afresh (an etcd restored or wiped starts its revisions
        // over).
        self.leader_seen = 0;
        self.config_seen = 0;
        let snapshot = opened.snapshot;
        self.observe_leader(snapshot.leader, snapshot.revision);
        self.observe_flag(snapshot.config_ok, snapshot.revision);
        self.campaign();
        self.decide(now);
    }

    /// The session failed: etcd unreachable, a request or a stream broke. Tried again after a
    /// backoff; a leader steps down at once.
    pub fn handle_session_failed(&mut self, session: SessionId, reason: &str, now: Instant) {
        let current = match self.session {
            Session::Opening { id } | Session::Up { id, .. } => id,
            _ => return,
        };
        if self.stopping || current != session {
            return;
        }
        self.forget_session(session, reason);
        let retry_in = self.backoff(self.etcd_failures);
        self.etcd_failures = self.etcd_failures.saturating_add(1);
        self.session = Session::Down {
            retry_at: now + retry_in,
        };
        self.state.etcd = EtcdLink::Unreachable {
            attempts: self.etcd_failures,
        };
        self.notice(Notice::EtcdUnreachable {
            reason: reason.to_owned(),
            retry_in,
        });
        self.decide(now);
    }

    /// A keep-alive was answered: the lease has `ttl` seconds left, counted from `sent_at`
    /// (when that keep-alive went out); 0 or less means etcd no longer has it.
    pub fn handle_keep_alive(
        &mut self,
        session: SessionId,
        ttl: i64,
        sent_at: Instant,
        now: Instant,
    ) {
        let Session::Up { id, mut lease } = self.session else {
            return;
        };
        if self.stopping || id != session {
            return;
        }
        if ttl <= 0 {
            self.lose_lease(now, "etcd says the lease has expired");
            return;
        }
        let until = sent_at + Duration::from_secs(ttl.unsigned_abs());
        lease.valid_until = lease.valid_until.max(until);
        self.session = Session::Up { id, lease };
    }

    /// Changes the watch saw under the service's prefix.
    pub fn handle_changes(
        &mut self,
        session: SessionId,
        changes: impl IntoIterator<Item = Change>,
        now: Instant,
    ) {
        if self.stopping || !matches!(self.session, Session::Up { id, .. } if id == session) {
            return;
        }
        for change in changes {
            match change {
                Change::Put {
                    key: KeyName::Leader,
                    entry,
                } => {
                    let revision = entry.mod_revision;
                    self.observe_leader(Some(entry), revision);
                }
                Change::Delete {
                    key: KeyName::Leader,
                    revision,
                } => {
                    if self.observe_leader(None, revision) {
                        // Python's rule too: a deleted leader key starts a campaign.
                        self.campaign();
                    }
                }
                Change::Put {
                    key: KeyName::ConfigOk,
                    entry,
                } => {
                    let revision = entry.mod_revision;
                    self.observe_flag(Some(entry), revision);
                }
                Change::Delete {
                    key: KeyName::ConfigOk,
                    revision,
                } => {
                    self.observe_flag(None, revision);
                }
                Change::Put {
                    key: KeyName::Health,
                    ..
                }
                | Change::Delete {
                    key: KeyName::Health,
                    ..
                } => {}
            }
        }
        self.decide(now);
    }

    /// The answer to [`Action::Campaign`].
    pub fn handle_campaign(&mut self, session: SessionId, result: CampaignResult, now: Instant) {
        if self.stopping || !matches!(self.session, Session::Up { id, .. } if id == session) {
            return;
        }
        let again = matches!(self.campaign, Campaign::InFlight { again: true });
        self.campaign = Campaign::Idle;
        self.observe_leader(result.leader, result.revision);
        if again && self.leader.is_none() {
            self.campaign();
        }
        self.decide(now);
    }

    /// The answer to [`Action::ConfigureMesh`].
    pub fn handle_mesh_configured(&mut self, term: Term, result: Result<(), String>, now: Instant) {
        if self.stopping || term != self.term || !matches!(self.duty, Duty::Configuring { .. }) {
            return;
        }
        match result {
            Ok(()) => {
                self.duty_failures = 0;
                self.notice(Notice::MeshConfigured);
                if self.standalone {
                    self.duty = Duty::Done;
                    self.maybe_serve();
                } else if let Some(fence) = self.fence.clone() {
                    self.duty = Duty::Writing;
                    self.actions
                        .push_back(Action::WriteConfigOk { term, fence });
                }
            }
            Err(reason) => {
                let retry_in = self.backoff(self.duty_failures);
                self.duty_failures = self.duty_failures.saturating_add(1);
                self.duty = Duty::Configuring {
                    retry_at: Some(now + retry_in),
                };
                self.notice(Notice::DutyFailed {
                    duty: "configure the mesh",
                    reason,
                    retry_in,
                });
            }
        }
    }

    /// The answer to [`Action::MarkConfigPending`].
    pub fn handle_config_marked(&mut self, term: Term, outcome: WriteOutcome, now: Instant) {
        if self.stopping || term != self.term || self.duty != Duty::Marking {
            return;
        }
        self.notice(Notice::LeaderWrite {
            what: "rmq-config-ok=False",
            outcome: outcome.clone(),
        });
        match outcome {
            WriteOutcome::Written { revision } => {
                let entry = Entry {
                    value: "False".to_owned(),
                    create_revision: revision,
                    mod_revision: revision,
                    lease: 0,
                };
                self.observe_flag(Some(entry), revision);
                self.duty = Duty::Configuring { retry_at: None };
                self.actions.push_back(Action::ConfigureMesh { term });
            }
            WriteOutcome::Refused => self.fenced_out(now),
            WriteOutcome::Failed(reason) => self.fail_current_session(&reason, now),
        }
    }

    /// The answer to [`Action::WriteConfigOk`].
    pub fn handle_config_written(&mut self, term: Term, outcome: WriteOutcome, now: Instant) {
        if self.stopping || term != self.term || self.duty != Duty::Writing {
            return;
        }
        self.notice(Notice::LeaderWrite {
            what: "rmq-config-ok",
            outcome: outcome.clone(),
        });
        match outcome {
            WriteOutcome::Written { revision } => {
                let entry = Entry {
                    value: CONFIG_OK.to_owned(),
                    create_revision: revision,
                    mod_revision: revision,
                    lease: 0,
                };
                self.observe_flag(Some(entry), revision);
                self.duty = Duty::Watching {
                    next: now,
                    checking: false,
                };
                self.decide(now);
            }
            WriteOutcome::Refused => self.fenced_out(now),
            WriteOutcome::Failed(reason) => self.fail_current_session(&reason, now),
        }
    }

    /// The answer to [`Action::CheckHealth`]: how the health record's put went.
    pub fn handle_health_checked(&mut self, term: Term, outcome: WriteOutcome, now: Instant) {
        if self.stopping || term != self.term {
            return;
        }
        let Duty::Watching { .. } = self.duty else {
            return;
        };
        self.notice(Notice::LeaderWrite {
            what: "health",
            outcome: outcome.clone(),
        });
        match outcome {
            WriteOutcome::Written { .. } => {
                self.duty = Duty::Watching {
                    next: now + self.config.health_every,
                    checking: false,
                };
            }
            WriteOutcome::Refused => self.fenced_out(now),
            WriteOutcome::Failed(reason) => self.fail_current_session(&reason, now),
        }
    }

    /// The answer to [`Action::Serve`] or [`Action::Reserve`].
    pub fn handle_served(&mut self, result: Result<(), String>, now: Instant) {
        if self.stopping {
            return;
        }
        let Serving::Requested { prefetch } = self.serving else {
            return;
        };
        match result {
            Ok(()) => {
                self.serve_failures = 0;
                self.serving = Serving::Up { prefetch };
                self.notice(Notice::Serving { prefetch });
                self.state.phase = Phase::Running;
                self.decide(now);
                self.notify_state();
            }
            Err(reason) => {
                let retry_in = self.backoff(self.serve_failures);
                self.serve_failures = self.serve_failures.saturating_add(1);
                self.serving = Serving::Retry { at: now + retry_in };
                self.notice(Notice::DutyFailed {
                    duty: "serve",
                    reason,
                    retry_in,
                });
            }
        }
    }

    /// Stop: hand over any leadership, stop serving. Answered by [`Action::Stop`].
    pub fn handle_stop(&mut self) {
        if self.stopping {
            return;
        }
        let revoke = match self.session {
            Session::Up { lease, .. } => Some(lease.id),
            _ => None,
        };
        self.stopping = true;
        self.session = Session::Off;
        if self.fence.is_some() {
            self.step_down_reason = Some("stopping".to_owned());
            self.drop_duties();
            self.state.role = Role::Electing;
        }
        self.duty = Duty::None;
        self.state.phase = Phase::Stopping;
        self.actions.push_back(Action::Stop { revoke });
        self.notify_state();
    }

    /// The answer to [`Action::Stop`].
    pub fn handle_stopped(&mut self) {
        self.state.phase = Phase::Stopped;
        self.notify_state();
    }

    // --- inner workings ---

    fn session_id(&self) -> Option<SessionId> {
        match self.session {
            Session::Opening { id } | Session::Up { id, .. } => Some(id),
            _ => None,
        }
    }

    fn open(&mut self) {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        self.session = Session::Opening { id };
        if !matches!(self.state.etcd, EtcdLink::Unreachable { .. }) {
            self.state.etcd = EtcdLink::Connecting;
        }
        self.actions.push_back(Action::Open {
            session: id,
            ttl: self.config.lease_ttl,
            resign: self.resign.clone(),
            revoke: self.revoke,
        });
        self.notify_state();
    }

    /// Closes `session`, keeping what a next session must clean up: its lease, and its
    /// leadership if it led.
    fn forget_session(&mut self, session: SessionId, reason: &str) {
        if let Session::Up { lease, .. } = self.session {
            self.revoke = Some(lease.id);
        }
        if let Some(fence) = self.fence.clone() {
            self.resign = Some(fence);
            self.step_down_reason = Some(reason.to_owned());
        }
        self.campaign = Campaign::Idle;
        self.actions.push_back(Action::Close { session });
    }

    /// The lease is lost (or may be): step down, open a new session at once.
    fn lose_lease(&mut self, now: Instant, reason: &str) {
        let Some(id) = self.session_id() else {
            return;
        };
        self.forget_session(id, reason);
        self.session = Session::Down { retry_at: now };
        self.state.etcd = EtcdLink::Connecting;
        self.decide(now);
        self.open();
    }

    fn fail_current_session(&mut self, reason: &str, now: Instant) {
        if let Some(id) = self.session_id() {
            self.handle_session_failed(id, reason, now);
        }
    }

    /// A fenced write was refused: the leader key is not ours any more. Forget it and campaign:
    /// the transaction says who leads.
    fn fenced_out(&mut self, now: Instant) {
        self.step_down_reason = Some("a leader-only write was refused".to_owned());
        self.leader = None;
        self.campaign();
        self.decide(now);
    }

    fn campaign(&mut self) {
        let Session::Up { id, lease } = self.session else {
            return;
        };
        if self.stopping {
            return;
        }
        match self.campaign {
            Campaign::InFlight { .. } => self.campaign = Campaign::InFlight { again: true },
            Campaign::Idle => {
                self.campaign = Campaign::InFlight { again: false };
                self.actions.push_back(Action::Campaign {
                    session: id,
                    lease: lease.id,
                });
            }
        }
    }

    /// Takes `entry` as the leader key at `revision` unless something newer is known; true
    /// when taken.
    fn observe_leader(&mut self, entry: Option<Entry>, revision: i64) -> bool {
        if revision < self.leader_seen {
            return false;
        }
        self.leader_seen = revision;
        self.leader = entry;
        true
    }

    fn observe_flag(&mut self, entry: Option<Entry>, revision: i64) {
        if revision < self.config_seen {
            return;
        }
        self.config_seen = revision;
        self.config_ok = entry;
    }

    /// The flag counts: `True`, and written after the current leader's key was created.
    fn config_valid(&self) -> Option<(i64, i64)> {
        let leader = self.leader.as_ref()?;
        let flag = self.config_ok.as_ref()?;
        (flag.value == CONFIG_OK && flag.mod_revision > leader.create_revision)
            .then_some((flag.mod_revision, leader.create_revision))
    }

    /// The role that follows from what is known, and the duties and serving that follow from
    /// the role.
    fn decide(&mut self, now: Instant) {
        if self.standalone || self.stopping {
            return;
        }
        let lease = match self.session {
            Session::Up { lease, .. } => Some(lease.id),
            _ => None,
        };
        let role = match &self.leader {
            Some(l) if l.value == self.config.instance_id && Some(l.lease) == lease => Role::Leader,
            // Our own key under a lease of a lost session: it is going; nobody leads.
            Some(l) if l.value == self.config.instance_id => Role::Electing,
            Some(_) => Role::Follower,
            None => Role::Electing,
        };
        let was = self.state.role;
        if role == Role::Leader && was != Role::Leader {
            self.take_duties(now);
        } else if role != Role::Leader && was == Role::Leader {
            self.drop_duties();
        }
        if role == Role::Follower
            && let Some(l) = &self.leader
        {
            let leader = (l.value.clone(), l.create_revision);
            if self.announced_leader.as_ref() != Some(&leader) {
                self.announced_leader = Some(leader.clone());
                self.notice(Notice::LeaderIs {
                    instance_id: leader.0,
                    create_revision: leader.1,
                });
            }
        }
        self.state.role = role;
        if self.state.phase == Phase::Starting && role != Role::Electing {
            self.state.phase = Phase::WaitingForConfig;
        }
        self.maybe_serve();
        self.maybe_reserve();
        self.notify_state();
    }

    fn take_duties(&mut self, _now: Instant) {
        let Some(leader) = &self.leader else {
            return;
        };
        let fence = Fence {
            leader_key: self.config.keys.leader(),
            instance_id: self.config.instance_id.clone(),
            create_revision: leader.create_revision,
            lease: leader.lease,
        };
        self.term = Term(self.term.0 + 1);
        self.fence = Some(fence.clone());
        self.step_down_reason = None;
        self.duty = Duty::Marking;
        self.duty_failures = 0;
        self.notice(Notice::Elected {
            fence: fence.clone(),
        });
        self.actions.push_back(Action::MarkConfigPending {
            term: self.term,
            fence,
        });
    }

    fn drop_duties(&mut self) {
        self.term = Term(self.term.0 + 1);
        self.fence = None;
        self.duty = Duty::None;
        let reason = self
            .step_down_reason
            .take()
            .unwrap_or_else(|| "another instance holds the leader key".to_owned());
        self.notice(Notice::SteppedDown { reason });
    }

    fn desired_prefetch(&self) -> Option<u16> {
        match self.state.role {
            Role::Leader => self.config.leader_prefetch,
            _ => None,
        }
    }

    fn maybe_serve(&mut self) {
        if self.stopping || self.serving != Serving::Idle {
            return;
        }
        let ready = if self.standalone {
            self.duty == Duty::Done
        } else if let Some((flag_revision, leader_revision)) = self.config_valid() {
            if self.accepted_flag != Some(flag_revision) {
                self.accepted_flag = Some(flag_revision);
                self.notice(Notice::ConfigAccepted {
                    flag_revision,
                    leader_revision,
                });
            }
            self.state.phase != Phase::Starting
        } else {
            false
        };
        if ready {
            let prefetch = self.desired_prefetch();
            self.serving = Serving::Requested { prefetch };
            self.actions.push_back(Action::Serve { prefetch });
        }
    }

    fn maybe_reserve(&mut self) {
        if self.stopping {
            return;
        }
        if let Serving::Up { prefetch } = self.serving {
            let desired = self.desired_prefetch();
            if desired != prefetch {
                self.serving = Serving::Requested { prefetch: desired };
                self.actions
                    .push_back(Action::Reserve { prefetch: desired });
            }
        }
    }

    fn notify_state(&mut self) {
        if self.announced_state != Some(self.state) {
            self.announced_state = Some(self.state);
            self.notice(Notice::State(self.state));
        }
    }

    fn notice(&mut self, notice: Notice) {
        if self.notices.len() >= MAX_NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back(notice);
    }

    /// The backoff before retry `attempt` (0 for the first), with jitter.
    fn backoff(&mut self, attempt: u32) -> Duration {
        let jitter = self.jitter();
        self.config.retry.delay(attempt, jitter)
    }

    /// A number in `[0, 1)` for the backoff's jitter (xorshift64*).
    fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let n = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (n >> 11) as f64 / (1u64 << 53) as f64
    }
}
