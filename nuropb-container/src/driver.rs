//! The container's task on tokio: it runs the [`Election`], does what it asks with etcd and
//! the mesh, and hands the answers back. Every etcd request and mesh call runs as a task of its
//! own whose answer comes back on one channel, so the election is never held up by I/O: a hung
//! request cannot keep a leader from stepping down at its deadline.

use crate::container::HealthConfig;
use crate::election::{
    Action, CampaignResult, Change, Election, Fence, Notice, SessionId, Term, WriteOutcome,
};
use crate::etcd::{self, EtcdSettings, SessionLease};
use crate::health::{Advice, HealthPolicy, HealthSample, health_record};
use crate::keys::{CONFIG_OK, Keys};
use crate::mesh::Mesh;
use crate::state::{ContainerState, Phase};
use nuropb_api::Client;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// How many answers may wait for the driver (the tasks wait when it is full).
const REPORTS: usize = 256;
/// How long opening a session may take in all.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long revoking the lease may take when stopping.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(2);

/// An answer from one of the driver's tasks.
enum Report {
    Opened(SessionId, Result<Box<Opening>, String>),
    KeepAlive(SessionId, i64, Instant),
    Changes(SessionId, Vec<Change>),
    SessionFailed(SessionId, String),
    Campaign(SessionId, Result<CampaignResult, String>),
    MeshConfigured(Term, Result<(), String>),
    ConfigMarked(Term, WriteOutcome),
    ConfigWritten(Term, WriteOutcome),
    HealthSampled(Term, Fence, HealthSample),
    HealthWritten(Term, WriteOutcome, Vec<Advice>),
    Served(Result<Client, String>),
}

/// What opening a session brought: the client, the lease with its keep-alive stream, the watch.
struct Opening {
    client: etcd_client::Client,
    lease: SessionLease,
    watch: etcd_client::WatchStream,
}

/// An open session's I/O: dropped, its tasks end.
struct Live {
    id: SessionId,
    client: etcd_client::Client,
    ticks: mpsc::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the container's handles see.
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<ContainerState>,
    pub(crate) fence: watch::Sender<Option<Fence>>,
    pub(crate) client: watch::Sender<Option<Client>>,
    pub(crate) notices: broadcast::Sender<Notice>,
    pub(crate) done: watch::Sender<bool>,
}

pub(crate) struct Driver {
    pub(crate) election: Election,
    pub(crate) mesh: Mesh,
    pub(crate) etcd: Option<EtcdSettings>,
    pub(crate) health: HealthConfig,
    pub(crate) grace: Duration,
    pub(crate) shared: Shared,
    pub(crate) stop: mpsc::Receiver<()>,
}

/// The driver's running state.
struct Running {
    keys: Keys,
    live: Option<Live>,
    reports: mpsc::Sender<Report>,
    served: Option<Client>,
    serve_in_flight: bool,
    policy: (Term, HealthPolicy),
}

impl Driver {
    pub(crate) async fn run(mut self) {
        let (reports, mut answers) = mpsc::channel(REPORTS);
        let mut run = Running {
            keys: self.election.config().keys.clone(),
            live: None,
            reports,
            served: None,
            serve_in_flight: false,
            policy: (Term(0), HealthPolicy::new(self.health.thresholds.clone())),
        };
        let mut stop_open = true;
        loop {
            while let Some(action) = self.election.poll_action() {
                if let Action::Stop { revoke } = action {
                    self.finish(&mut run, revoke, &mut answers).await;
                    return;
                }
                self.execute(&mut run, action);
            }
            self.publish();
            let wake = self.election.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(report) = answers.recv() => self.feed(&mut run, report),
                () = sleep => self.election.handle_timeout(Instant::now()),
                stop = self.stop.recv(), if stop_open => match stop {
                    Some(()) => self.election.handle_stop(),
                    // Every handle is gone: the container runs on, as a served service does.
                    None => stop_open = false,
                },
            }
        }
    }

    /// Logs the election's notices and hands them to the handles.
    fn publish(&mut self) {
        // The fence first: whoever sees the state say "leader" finds the fence there.
        let fence = self.election.fence().cloned();
        self.shared.fence.send_if_modified(|f| {
            let changed = *f != fence;
            *f = fence;
            changed
        });
        while let Some(notice) = self.election.poll_notice() {
            log(&notice);
            if let Notice::State(state) = &notice {
                self.shared.state.send_replace(*state);
            }
            let _ = self.shared.notices.send(notice);
        }
    }

    fn spawn(run: &Running, task: impl Future<Output = Report> + Send + 'static) {
        let reports = run.reports.clone();
        tokio::spawn(async move {
            let _ = reports.send(task.await).await;
        });
    }

    fn execute(&mut self, run: &mut Running, action: Action) {
        match action {
            Action::Open {
                session,
                ttl,
                resign,
                revoke,
            } => {
                run.live = None;
                let Some(settings) = self.etcd.clone() else {
                    return;
                };
                let keys = run.keys.clone();
                Self::spawn(run, async move {
                    let opening = async {
                        let mut client = settings.connect().await?;
                        let lease =
                            etcd::open(&mut client, &keys, ttl, resign.as_ref(), revoke).await?;
                        let from = lease.opened.snapshot.revision + 1;
                        let watch = etcd::watch(&mut client, &keys, from).await?;
                        Ok::<_, etcd_client::Error>(Opening {
                            client,
                            lease,
                            watch,
                        })
                    };
                    let opened = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
                        Ok(Ok(opening)) => Ok(Box::new(opening)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer from etcd within {OPEN_TIMEOUT:?}")),
                    };
                    Report::Opened(session, opened)
                });
            }
            Action::KeepAlive { session } => {
                if let Some(live) = run.live.as_ref().filter(|l| l.id == session) {
                    // Full means keep-alives are not going out; the renew deadline sees to that.
                    let _ = live.ticks.try_send(());
                }
            }
            Action::Campaign { session, lease } => {
                let Some(mut client) = run.client(session) else {
                    return;
                };
                let (keys, id) = (run.keys.clone(), self.mesh.instance_id.clone());
                Self::spawn(run, async move {
                    let result = etcd::campaign(&mut client, &keys, &id, lease).await;
                    Report::Campaign(session, result.map_err(|e| e.to_string()))
                });
            }
            Action::Close { session } => {
                if run.live.as_ref().is_some_and(|l| l.id == session) {
                    run.live = None;
                }
            }
            Action::ConfigureMesh { term } => {
                let mesh = self.mesh.clone();
                Self::spawn(run, async move {
                    let result = mesh.configure().await.map_err(|e| e.to_string());
                    Report::MeshConfigured(term, result)
                });
            }
            Action::MarkConfigPending { term, fence } => {
                Self::put_flag(run, fence, "False", move |o| Report::ConfigMarked(term, o));
            }
            Action::WriteConfigOk { term, fence } => {
                Self::put_flag(run, fence, CONFIG_OK, move |o| {
                    Report::ConfigWritten(term, o)
                });
            }
            Action::CheckHealth { term, fence } => {
                let mesh = self.mesh.clone();
                Self::spawn(run, async move {
                    Report::HealthSampled(term, fence, mesh.sample().await)
                });
            }
            Action::Serve { prefetch } => {
                let mesh = self.mesh.clone();
                run.serve_in_flight = true;
                Self::spawn(run, async move {
                    Report::Served(mesh.serve(prefetch).await.map_err(|e| e.to_string()))
                });
            }
            Action::Reserve { prefetch } => {
                let (mesh, old, grace) = (self.mesh.clone(), run.served.take(), self.grace);
                self.shared.client.send_replace(None);
                run.serve_in_flight = true;
                Self::spawn(run, async move {
                    if let Some(old) = old {
                        Mesh::shutdown(&old, grace).await;
                    }
                    Report::Served(mesh.serve(prefetch).await.map_err(|e| e.to_string()))
                });
            }
            Action::Stop { .. } => {}
        }
    }

    /// Puts `rmq-config-ok = value`, fenced, without a lease.
    fn put_flag(
        run: &Running,
        fence: Fence,
        value: &'static str,
        report: impl FnOnce(WriteOutcome) -> Report + Send + 'static,
    ) {
        let client = run.live.as_ref().map(|l| l.client.clone());
        let key = run.keys.config_ok();
        Self::spawn(run, async move {
            let outcome = match client {
                Some(mut client) => etcd::fenced_put(&mut client, &fence, &key, value, None).await,
                None => WriteOutcome::Failed("no etcd session".to_owned()),
            };
            report(outcome)
        });
    }

    fn feed(&mut self, run: &mut Running, report: Report) {
        let now = Instant::now();
        match report {
            Report::Opened(session, Ok(opening)) => {
                if self.election.session() != Some(session) {
                    // Opened too late (stopping, or a newer session): its lease holds nothing.
                    let Opening {
                        mut client, lease, ..
                    } = *opening;
                    tokio::spawn(async move {
                        let _ = client.lease_revoke(lease.opened.lease).await;
                    });
                    return;
                }
                let Opening {
                    client,
                    lease,
                    watch,
                } = *opening;
                let SessionLease {
                    opened,
                    keeper,
                    answers,
                } = lease;
                let (ticks, tick_rx) = mpsc::channel(4);
                let tasks = vec![
                    tokio::spawn(keep_alive(
                        session,
                        keeper,
                        answers,
                        tick_rx,
                        run.reports.clone(),
                    )),
                    tokio::spawn(watching(
                        session,
                        watch,
                        run.keys.clone(),
                        run.reports.clone(),
                    )),
                ];
                run.live = Some(Live {
                    id: session,
                    client,
                    ticks,
                    tasks,
                });
                self.election.handle_opened(session, opened, now);
            }
            Report::Opened(session, Err(reason)) | Report::SessionFailed(session, reason) => {
                self.election.handle_session_failed(session, &reason, now);
            }
            Report::KeepAlive(session, ttl, sent_at) => {
                self.election.handle_keep_alive(session, ttl, sent_at, now);
            }
            Report::Changes(session, changes) => {
                self.election.handle_changes(session, changes, now)
            }
            Report::Campaign(session, Ok(result)) => {
                self.election.handle_campaign(session, result, now);
            }
            Report::Campaign(session, Err(reason)) => {
                self.election.handle_session_failed(session, &reason, now);
            }
            Report::MeshConfigured(term, result) => {
                self.election.handle_mesh_configured(term, result, now);
            }
            Report::ConfigMarked(term, outcome) => {
                self.election.handle_config_marked(term, outcome, now);
            }
            Report::ConfigWritten(term, outcome) => {
                self.election.handle_config_written(term, outcome, now);
            }
            Report::HealthSampled(term, fence, sample) => {
                self.write_health(run, term, fence, sample)
            }
            Report::HealthWritten(term, outcome, advice) => {
                if let WriteOutcome::Written { .. } = outcome
                    && let Some(client) = &run.served
                {
                    for advice in advice {
                        if let Err(e) =
                            self.mesh
                                .publish_advice(client, &self.health.advice_topic, &advice)
                        {
                            tracing::warn!(error = %e, "the advice could not be published");
                        }
                        let notice = Notice::Advice(advice);
                        log(&notice);
                        let _ = self.shared.notices.send(notice);
                    }
                }
                self.election.handle_health_checked(term, outcome, now);
            }
            Report::Served(result) => {
                run.serve_in_flight = false;
                let result = result.map(|client| {
                    self.shared.client.send_replace(Some(client.clone()));
                    run.served = Some(client);
                });
                self.election.handle_served(result, now);
            }
        }
    }

    /// Judges a health sample and puts the record, fenced, under the leader's lease.
    fn write_health(&mut self, run: &mut Running, term: Term, fence: Fence, sample: HealthSample) {
        if run.policy.0 != term {
            run.policy = (term, HealthPolicy::new(self.health.thresholds.clone()));
        }
        let advice = run.policy.1.observe(&sample, Instant::now());
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = health_record(
            &self.mesh.service,
            &fence.instance_id,
            &sample,
            &advice,
            unix,
        );
        let client = run.live.as_ref().map(|l| l.client.clone());
        let key = run.keys.health();
        Self::spawn(run, async move {
            let outcome = match client {
                Some(mut client) => {
                    let lease = Some(fence.lease);
                    etcd::fenced_put(&mut client, &fence, &key, &record.to_string(), lease).await
                }
                None => WriteOutcome::Failed("no etcd session".to_owned()),
            };
            Report::HealthWritten(term, outcome, advice)
        });
    }

    /// Stops: revokes the lease (handing any leadership over at once), stops serving — a serve
    /// still under way is waited for and stopped too — and says so.
    async fn finish(
        &mut self,
        run: &mut Running,
        revoke: Option<i64>,
        answers: &mut mpsc::Receiver<Report>,
    ) {
        self.publish();
        if let (Some(lease), Some(live)) = (revoke, run.live.as_mut()) {
            let revoked =
                tokio::time::timeout(REVOKE_TIMEOUT, live.client.lease_revoke(lease)).await;
            if !matches!(revoked, Ok(Ok(_))) {
                tracing::warn!("the lease could not be revoked; it expires by itself");
            }
        }
        run.live = None;
        let deadline = tokio::time::Instant::now() + self.grace + OPEN_TIMEOUT;
        while run.serve_in_flight {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
                Ok(Some(Report::Served(result))) => {
                    run.serve_in_flight = false;
                    run.served = result.ok();
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(client) = run.served.take() {
            Mesh::shutdown(&client, self.grace).await;
        }
        self.shared.client.send_replace(None);
        self.election.handle_stopped();
        self.publish();
        self.shared.done.send_replace(true);
    }
}

impl Running {
    fn client(&self, session: SessionId) -> Option<etcd_client::Client> {
        self.live
            .as_ref()
            .filter(|l| l.id == session)
            .map(|l| l.client.clone())
    }
}

/// Sends a keep-alive on each tick and reports each answer with the send time of the
/// keep-alive it answers.
async fn keep_alive(
    session: SessionId,
    mut keeper: etcd_client::LeaseKeeper,
    mut answers: etcd_client::LeaseKeepAliveStream,
    mut ticks: mpsc::Receiver<()>,
    reports: mpsc::Sender<Report>,
) {
    let mut sent: VecDeque<Instant> = VecDeque::new();
    let failed = |why: String| Report::SessionFailed(session, format!("keep-alive: {why}"));
    loop {
        tokio::select! {
            tick = ticks.recv() => {
                let Some(()) = tick else { return };
                if sent.len() >= 16 {
                    sent.pop_front();
                }
                sent.push_back(Instant::now());
                if let Err(e) = keeper.keep_alive().await {
                    let _ = reports.send(failed(e.to_string())).await;
                    return;
                }
            }
            answer = answers.message() => {
                let report = match answer {
                    Ok(Some(answer)) => match sent.pop_front() {
                        Some(sent_at) => Report::KeepAlive(session, answer.ttl(), sent_at),
                        // An answer to nothing sent: it says nothing of when the lease expires,
                        // unless it says the lease is gone.
                        None if answer.ttl() <= 0 => Report::KeepAlive(session, 0, Instant::now()),
                        None => continue,
                    },
                    Ok(None) => failed("etcd closed the stream".to_owned()),
                    Err(e) => failed(e.to_string()),
                };
                let end = matches!(report, Report::SessionFailed(..));
                if reports.send(report).await.is_err() || end {
                    return;
                }
            }
        }
    }
}

/// Reports the watch's changes to the election's keys.
async fn watching(
    session: SessionId,
    mut watch: etcd_client::WatchStream,
    keys: Keys,
    reports: mpsc::Sender<Report>,
) {
    loop {
        let report = match watch.message().await {
            Ok(Some(response)) => match etcd::changes(&keys, &response) {
                Ok(changes) if changes.is_empty() => continue,
                Ok(changes) => Report::Changes(session, changes),
                Err(why) => Report::SessionFailed(session, why),
            },
            Ok(None) => Report::SessionFailed(session, "watch: etcd closed the stream".to_owned()),
            Err(e) => Report::SessionFailed(session, format!("watch: {e}")),
        };
        let end = matches!(report, Report::SessionFailed(..));
        if reports.send(report).await.is_err() || end {
            return;
        }
    }
}

/// One log line per notice.
fn log(notice: &Notice) {
    match notice {
        Notice::State(state) => tracing::info!(%state, "container state"),
        Notice::Elected { fence } => {
            tracing::info!(leader_revision = fence.create_revision, "elected leader");
        }
        Notice::SteppedDown { reason } => tracing::warn!(%reason, "stepped down"),
        Notice::LeaderIs {
            instance_id,
            create_revision,
        } => tracing::info!(leader = %instance_id, leader_revision = create_revision, "following"),
        Notice::MeshConfigured => tracing::info!("mesh configured"),
        Notice::LeaderWrite { what, outcome } => match outcome {
            WriteOutcome::Written { .. } => {
                tracing::debug!(write = what, %outcome, "leader-only write")
            }
            _ => tracing::warn!(write = what, %outcome, "leader-only write"),
        },
        Notice::ConfigAccepted {
            flag_revision,
            leader_revision,
        } => tracing::info!(flag_revision, leader_revision, "rmq-config-ok accepted"),
        Notice::Serving { prefetch } => tracing::info!(?prefetch, "serving"),
        Notice::EtcdUnreachable { reason, retry_in } => {
            tracing::warn!(%reason, ?retry_in, "etcd unreachable");
        }
        Notice::DutyFailed {
            duty,
            reason,
            retry_in,
        } => tracing::warn!(duty, %reason, ?retry_in, "duty failed"),
        Notice::Advice(advice) => {
            tracing::warn!(advice = ?advice.advice, reason = %advice.reason, "advice")
        }
    }
}

/// Whether the container is done.
pub(crate) fn stopped(state: &ContainerState) -> bool {
    state.phase == Phase::Stopped
}
