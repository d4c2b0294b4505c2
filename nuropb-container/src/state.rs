//! What a container is doing, for logs, health checks and readiness probes.

use serde::Serialize;
use std::fmt;

/// A container's part in its service's election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// No etcd: the instance configures the mesh itself and serves.
    Standalone,
    /// No leader is known yet (or any more): campaigning, or waiting for etcd.
    Electing,
    /// This instance holds the leader key: it configures the mesh and watches the service.
    Leader,
    /// Another instance holds the leader key.
    Follower,
}

/// How far a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Before the role is known (or, standalone, before the mesh is configured).
    Starting,
    /// The role is known; waiting for the mesh to be configured under the current leader
    /// (`rmq-config-ok` written after the leader key) before consuming.
    WaitingForConfig,
    /// The service consumes its queue. It goes on serving whatever happens to etcd or the
    /// leadership, until stopped.
    Running,
    /// Stopping: lease revoked, the service letting its running handlers finish.
    Stopping,
    /// Stopped.
    Stopped,
}

/// Whether the container can reach etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdLink {
    /// Standalone: no etcd configured.
    NotUsed,
    /// Connecting (the first time, or again after a lost lease).
    Connecting,
    /// Connected, with a lease kept alive and the service's keys watched.
    Connected,
    /// Unreachable; retrying with backoff. `attempts` failed in a row.
    Unreachable {
        /// Failed attempts in a row.
        attempts: u32,
    },
}

/// A container's state: role, phase and etcd link, as its driver last knew them.
///
/// ```
/// use nuropb_container::{ContainerState, EtcdLink, Phase, Role};
/// let state = ContainerState { role: Role::Leader, phase: Phase::Running, etcd: EtcdLink::Connected };
/// assert_eq!(state.to_string(), "leader, running, etcd connected");
/// // A readiness probe: the instance consumes.
/// assert!(state.phase == Phase::Running);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    /// The part in the election.
    pub role: Role,
    /// How far in its life.
    pub phase: Phase,
    /// Whether etcd is reachable.
    pub etcd: EtcdLink,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Standalone => "standalone",
            Role::Electing => "electing",
            Role::Leader => "leader",
            Role::Follower => "follower",
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::WaitingForConfig => "waiting-for-config",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        })
    }
}

impl fmt::Display for EtcdLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdLink::NotUsed => f.write_str("no etcd"),
            EtcdLink::Connecting => f.write_str("etcd connecting"),
            EtcdLink::Connected => f.write_str("etcd connected"),
            EtcdLink::Unreachable { attempts } => {
                write!(f, "etcd unreachable ({attempts} attempts)")
            }
        }
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}, {}", self.role, self.phase, self.etcd)
    }
}
