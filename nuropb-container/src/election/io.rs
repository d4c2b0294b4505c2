//! The election's vocabulary with its driver: what it asks for ([`Action`]), what it is told
//! back (the `handle_*` arguments), and what it lets users know ([`Notice`]).

use crate::keys::KeyName;
use crate::state::ContainerState;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

/// One etcd session: a connection, a lease kept alive, and a watch of the service's keys.
/// Answers that name an older session are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// One term of duties: a leadership (or the standalone run). Answers for an older term are
/// ignored, so a leader that stepped down never acts on what its duties bring back late.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// What etcd holds under one key, as far as the election cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value, as text (invalid UTF-8 replaced; the driver cuts it at 1 KiB).
    pub value: String,
    /// The revision that created the key (a new key after each delete).
    pub create_revision: i64,
    /// The revision of the last write to the key.
    pub mod_revision: i64,
    /// The lease the key is attached to; 0 for none.
    pub lease: i64,
}

/// The right to write as the leader: the leader key as this instance created it.
///
/// Every leader-only write is a transaction that compares the leader key's create revision and
/// value with these, so a leader whose key has gone — its lease expired while it was paused, say
/// — has its writes refused by etcd even if it has not noticed yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fence {
    /// `/nuropb/{service}/leader`.
    pub leader_key: String,
    /// The leader's instance id: the key's value.
    pub instance_id: String,
    /// The revision that created the key under this leadership.
    pub create_revision: i64,
    /// The lease the key is attached to.
    pub lease: i64,
}

/// How a leader-only (fenced) write went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// Done, at this revision.
    Written {
        /// The revision of the write.
        revision: i64,
    },
    /// Refused by etcd: the leader key is no longer the one of the fence.
    Refused,
    /// etcd could not be asked (unreachable, timed out).
    Failed(String),
}

impl fmt::Display for WriteOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteOutcome::Written { revision } => write!(f, "written at revision {revision}"),
            WriteOutcome::Refused => f.write_str("refused: no longer the leader"),
            WriteOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A change under the service's prefix, from the watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `key` was written.
    Put {
        /// Which key.
        key: KeyName,
        /// What it holds now.
        entry: Entry,
    },
    /// `key` was deleted (or its lease expired) at `revision`.
    Delete {
        /// Which key.
        key: KeyName,
        /// The revision of the delete.
        revision: i64,
    },
}

/// The leader key and the `rmq-config-ok` flag as read together, and the revision read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `/nuropb/{service}/leader`, if present.
    pub leader: Option<Entry>,
    /// `/nuropb/{service}/rmq-config-ok`, if present.
    pub config_ok: Option<Entry>,
    /// The store's revision at the read; the watch starts after it.
    pub revision: i64,
}

/// What opening a session found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The lease granted.
    pub lease: i64,
    /// Its time to live, as granted.
    pub ttl: Duration,
    /// When the grant was asked for: the lease cannot expire on the server before `granted_at + ttl`.
    pub granted_at: Instant,
    /// The keys, read after the grant.
    pub snapshot: Snapshot,
    /// How resigning the previous leadership went, when there was one to resign.
    pub resigned: Option<WriteOutcome>,
}

/// The answer to a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignResult {
    /// Whether this instance's put went through.
    pub won: bool,
    /// The leader key after the transaction: this instance's when it won, else the holder's.
    pub leader: Option<Entry>,
    /// The revision of the transaction.
    pub revision: i64,
}

/// What the election asks its driver to do. Each is answered with the `handle_*` method its
/// documentation names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Connect to etcd; resign `resign` (a fenced delete of the leader key) and revoke `revoke`
    /// when given (best effort: they belong to a lost session); grant a lease of `ttl`; start
    /// its keep-alive stream; read the leader key and the flag in one transaction; watch the
    /// service's prefix from the revision after that read. Answer with
    /// [`Election::handle_opened`](super::Election::handle_opened) or
    /// [`Election::handle_session_failed`](super::Election::handle_session_failed); then
    /// feed keep-alive answers to `handle_keep_alive` and watch changes to `handle_changes`.
    Open {
        /// The new session.
        session: SessionId,
        /// The lease time to live to ask for.
        ttl: Duration,
        /// A leadership of a lost session to give up.
        resign: Option<Fence>,
        /// A lease of a lost session to revoke.
        revoke: Option<i64>,
    },
    /// Send one keep-alive for the session's lease.
    KeepAlive {
        /// The session.
        session: SessionId,
    },
    /// `IF version(leader) == 0 THEN put(leader, instance_id, lease) ELSE get(leader)`, as
    /// Python's `nominate_as_leader`; answer `handle_campaign`.
    Campaign {
        /// The session.
        session: SessionId,
        /// The lease to put the key under.
        lease: i64,
    },
    /// Drop the session: its keep-alives and its watch (an `Open` follows unless stopping).
    Close {
        /// The session.
        session: SessionId,
    },
    /// Create the vhost (when so configured) and declare the mesh's exchanges and dead-letter
    /// queue; answer `handle_mesh_configured`.
    ConfigureMesh {
        /// The term.
        term: Term,
    },
    /// Put `rmq-config-ok = False` (no lease), fenced: a new leader is configuring the mesh.
    /// Rust followers wait for `True` written under the leader anyway; this is for Python 0.1.8
    /// followers that start meanwhile, which fail to start when the key is absent (`len(None)`
    /// on the empty answer) but wait for `True` when it says `False`. Answer
    /// `handle_config_marked`.
    MarkConfigPending {
        /// The term.
        term: Term,
        /// The leadership the write needs.
        fence: Fence,
    },
    /// Put `rmq-config-ok = True` (no lease, as Python does), fenced; answer
    /// `handle_config_written`.
    WriteConfigOk {
        /// The term.
        term: Term,
        /// The leadership the write needs.
        fence: Fence,
    },
    /// Sample the service queue and the dead-letter queue, put the health record (fenced, under
    /// the leader's lease), publish advice; answer `handle_health_checked` with the put's outcome.
    CheckHealth {
        /// The term.
        term: Term,
        /// The leadership the write needs.
        fence: Fence,
    },
    /// Start consuming: serve the service, with `prefetch` if given (else the service's own);
    /// answer `handle_served`.
    Serve {
        /// The prefetch for this role.
        prefetch: Option<u16>,
    },
    /// Serve again with another prefetch (the role changed): shut the running endpoint down,
    /// letting its handlers finish, and serve anew; answer `handle_served`.
    Reserve {
        /// The prefetch for the new role.
        prefetch: Option<u16>,
    },
    /// Stop: revoke `revoke` (handing any leadership over at once), drop the session (no
    /// `Close` comes for it), stop serving; answer `handle_stopped`.
    Stop {
        /// The lease to revoke.
        revoke: Option<i64>,
    },
}

/// What a container lets its users know, in order: for logs, tests and operators.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// The state changed.
    State(ContainerState),
    /// This instance won the election.
    Elected {
        /// Its leadership.
        fence: Fence,
    },
    /// This instance gave up the leadership.
    SteppedDown {
        /// Why.
        reason: String,
    },
    /// Another instance leads.
    LeaderIs {
        /// The leader's instance id.
        instance_id: String,
        /// The revision that created its key.
        create_revision: i64,
    },
    /// This instance configured the mesh.
    MeshConfigured,
    /// A leader-only write was tried: `what` (`rmq-config-ok=False`, `rmq-config-ok`, `health`,
    /// `resign`) and how it went.
    LeaderWrite {
        /// Which write.
        what: &'static str,
        /// How it went.
        outcome: WriteOutcome,
    },
    /// The flag counts: written at `flag_revision`, after the current leader's key was created
    /// at `leader_revision`. The service starts consuming.
    ConfigAccepted {
        /// The flag's revision.
        flag_revision: i64,
        /// The leader key's create revision.
        leader_revision: i64,
    },
    /// The service consumes its queue (again), with this prefetch (the service's own if `None`).
    Serving {
        /// The prefetch.
        prefetch: Option<u16>,
    },
    /// etcd failed; retrying after `retry_in`.
    EtcdUnreachable {
        /// What failed.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// A duty (configuring the mesh, serving) failed; retrying after `retry_in`.
    DutyFailed {
        /// Which duty.
        duty: &'static str,
        /// What failed.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// The leader's health check advises something (see [`crate::health`]).
    Advice(crate::health::Advice),
}
