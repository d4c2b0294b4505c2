//! NuroPb's service container: one instance of a service, run standalone or under etcd leader
//! election, key for key compatible with Python NuroPb's `nuropb.service_runner.ServiceContainer`
//! so that Python and Rust instances of one service share one election.
//!
//! - [`Container`] and [`ContainerHandle`]: build, start, observe and stop a container.
//! - [`election`]: the election and lifecycle as a state machine without I/O — the rules, and
//!   where they improve on Python's (watching instead of polling, a flag that must be written
//!   under the current leader, a leader that steps down before its lease can expire and whose
//!   writes are fenced, leadership changes after start-up handled both ways).
//! - [`etcd`]: the etcd requests (on `etcd-client`), for tools and tests that act on an election.
//! - [`health`]: the leader's watch over its service queue and the dead-letter queue, and its
//!   advice.
//! - [`keys`]: the keys and values shared with Python.
//! - [`ContainerState`]: standalone, electing, leader or follower; starting,
//!   waiting-for-config, running, stopping or stopped; and whether etcd answers.
//!
//! ```no_run
//! use nuropb_container::{Container, EtcdSettings, Phase};
//! use nuropb_tokio::{ConnectionSettings, NuropbError, TokioRuntime};
//!
//! # async fn run() -> Result<(), NuropbError> {
//! let settings = ConnectionSettings::from_url("amqp://guest:guest@127.0.0.1:5672/nuropb")?;
//! let service = || nuropb_tokio::testing::service_example("test_service", TokioRuntime::shared());
//! let container = Container::new(nuropb_tokio::connector(settings), service)
//!     .etcd(EtcdSettings::new(["http://127.0.0.1:2379"]))
//!     .start();
//! let mut notices = container.notices();
//! container.wait_until(|s| s.phase == Phase::Running).await;
//! while let Ok(notice) = notices.try_recv() {
//!     println!("{notice:?}");
//! }
//! container.stop().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod container;
mod driver;
pub mod election;
pub mod etcd;
pub mod health;
pub mod keys;
mod mesh;
mod state;

pub use container::{Container, ContainerHandle, HealthConfig};
pub use election::{Fence, Notice, WriteOutcome};
pub use etcd::EtcdSettings;
pub use state::{ContainerState, EtcdLink, Phase, Role};
