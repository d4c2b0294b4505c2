//! The leader's watch over its service, without I/O: samples of the service queue and the
//! dead-letter queue (from RabbitMQ's management API) go in; a health record and advice come out.
//!
//! The advice, each given at most once per [`HealthThresholds::cooldown`]:
//! - **scale up** when the queue does not drain: more than [`HealthThresholds::backlog`]
//!   messages waiting, with acknowledgements no faster than publishes (or no consumer at all),
//!   for [`HealthThresholds::sustained`] samples in a row;
//! - **scale down** when it drains with idle consumers: empty, at least
//!   [`HealthThresholds::min_consumers`] consumers, acknowledging fewer than
//!   [`HealthThresholds::idle_ack_rate`] messages a second each, for `sustained` samples in a row;
//! - **dead letters growing** when the dead-letter queue holds at least
//!   [`HealthThresholds::dead_letter_growth`] more messages than at the sample before.

use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A queue as RabbitMQ's management API shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct QueueSample {
    /// Messages ready or unacknowledged.
    pub messages: u64,
    /// Consumers.
    pub consumers: u64,
    /// Publishes per second, as the management API averages them.
    pub publish_rate: f64,
    /// Acknowledgements per second.
    pub ack_rate: f64,
}

impl QueueSample {
    /// Reads a queue object of the management API (`GET /api/queues/{vhost}/{name}`); missing
    /// fields read as 0.
    ///
    /// ```
    /// use nuropb_container::health::QueueSample;
    /// let queue = serde_json::json!({"messages": 12, "consumers": 3,
    ///     "message_stats": {"publish_details": {"rate": 4.5}, "ack_details": {"rate": 4.0}}});
    /// let sample = QueueSample::from_management(&queue);
    /// assert_eq!((sample.messages, sample.consumers, sample.publish_rate), (12, 3, 4.5));
    /// ```
    pub fn from_management(queue: &Value) -> QueueSample {
        let rate = |what: &str| {
            queue["message_stats"][what]["rate"]
                .as_f64()
                .filter(|r| r.is_finite())
                .unwrap_or(0.0)
        };
        QueueSample {
            messages: queue["messages"].as_u64().unwrap_or(0),
            consumers: queue["consumers"].as_u64().unwrap_or(0),
            publish_rate: rate("publish_details"),
            ack_rate: rate("ack_details"),
        }
    }
}

/// One look at the service: its queue and the dead-letter queue (`None` when the queue does not
/// exist), or why the management API could not be asked.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HealthSample {
    /// The service queue.
    pub queue: Option<QueueSample>,
    /// The mesh's dead-letter queue.
    pub dead_letters: Option<QueueSample>,
    /// What went wrong asking the management API.
    pub error: Option<String>,
}

/// When the leader advises what.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthThresholds {
    /// Messages waiting above which the queue has a backlog (100).
    pub backlog: u64,
    /// Samples in a row a condition must hold before advice (3).
    pub sustained: u32,
    /// Acknowledgements per second per consumer below which a consumer is idle (0.5).
    pub idle_ack_rate: f64,
    /// The fewest consumers worth scaling down from (2).
    pub min_consumers: u64,
    /// Growth of the dead-letter queue between two samples that is worth telling (1).
    pub dead_letter_growth: u64,
    /// The same advice is given at most once in this time (60 s).
    pub cooldown: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            backlog: 100,
            sustained: 3,
            idle_ack_rate: 0.5,
            min_consumers: 2,
            dead_letter_growth: 1,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// What the leader advises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdviceKind {
    /// Start more instances: the queue does not drain.
    ScaleUp,
    /// Stop some instances: the queue drains with idle consumers.
    ScaleDown,
    /// The dead-letter queue grows.
    DeadLettersGrowing,
}

impl AdviceKind {
    fn index(self) -> usize {
        match self {
            AdviceKind::ScaleUp => 0,
            AdviceKind::ScaleDown => 1,
            AdviceKind::DeadLettersGrowing => 2,
        }
    }
}

/// One piece of advice, published as an event on the mesh.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Advice {
    /// What is advised.
    pub advice: AdviceKind,
    /// Why, in words.
    pub reason: String,
    /// The sample it is based on.
    pub sample: HealthSample,
}

/// The leader's judgement over successive samples. Fed one [`HealthSample`] per check.
///
/// ```
/// use nuropb_container::health::{AdviceKind, HealthPolicy, HealthSample, HealthThresholds, QueueSample};
/// use std::time::{Duration, Instant};
///
/// let mut policy = HealthPolicy::new(HealthThresholds { sustained: 2, ..Default::default() });
/// let stuck = HealthSample {
///     queue: Some(QueueSample { messages: 500, consumers: 1, publish_rate: 50.0, ack_rate: 10.0 }),
///     ..Default::default()
/// };
/// let now = Instant::now();
/// assert!(policy.observe(&stuck, now).is_empty());
/// let advice = policy.observe(&stuck, now + Duration::from_secs(10));
/// assert_eq!(advice[0].advice, AdviceKind::ScaleUp);
/// ```
#[derive(Clone, Debug)]
pub struct HealthPolicy {
    thresholds: HealthThresholds,
    backlog_run: u32,
    idle_run: u32,
    last_dead_letters: Option<u64>,
    last_advised: [Option<Instant>; 3],
}

impl HealthPolicy {
    /// A policy with `thresholds`, with no samples yet.
    pub fn new(thresholds: HealthThresholds) -> HealthPolicy {
        HealthPolicy {
            thresholds,
            backlog_run: 0,
            idle_run: 0,
            last_dead_letters: None,
            last_advised: [None; 3],
        }
    }

    /// Takes `sample`, seen at `now`; returns the advice it calls for.
    pub fn observe(&mut self, sample: &HealthSample, now: Instant) -> Vec<Advice> {
        let t = &self.thresholds;
        let mut advice = Vec::new();
        if let Some(q) = sample.queue {
            let stuck =
                q.messages > t.backlog && (q.consumers == 0 || q.ack_rate <= q.publish_rate);
            self.backlog_run = if stuck {
                self.backlog_run.saturating_add(1)
            } else {
                0
            };
            let idle = q.messages == 0
                && q.consumers >= t.min_consumers
                && q.ack_rate < t.idle_ack_rate * q.consumers as f64;
            self.idle_run = if idle {
                self.idle_run.saturating_add(1)
            } else {
                0
            };
            if self.backlog_run >= t.sustained {
                advice.push((
                    AdviceKind::ScaleUp,
                    format!(
                        "{} messages waiting, acknowledged at {:.1}/s against {:.1}/s published, for {} checks",
                        q.messages, q.ack_rate, q.publish_rate, self.backlog_run
                    ),
                ));
            }
            if self.idle_run >= t.sustained {
                advice.push((
                    AdviceKind::ScaleDown,
                    format!(
                        "the queue is empty and its {} consumers acknowledge {:.1}/s, for {} checks",
                        q.consumers, q.ack_rate, self.idle_run
                    ),
                ));
            }
        } else {
            self.backlog_run = 0;
            self.idle_run = 0;
        }
        if let Some(dl) = sample.dead_letters {
            if let Some(before) = self.last_dead_letters
                && dl.messages >= before.saturating_add(t.dead_letter_growth)
            {
                advice.push((
                    AdviceKind::DeadLettersGrowing,
                    format!(
                        "the dead-letter queue grew from {before} to {} messages",
                        dl.messages
                    ),
                ));
            }
            self.last_dead_letters = Some(dl.messages);
        }
        let cooldown = t.cooldown;
        advice
            .into_iter()
            .filter(|(kind, _)| {
                let last = &mut self.last_advised[kind.index()];
                let due = last.is_none_or(|at| now.saturating_duration_since(at) >= cooldown);
                if due {
                    *last = Some(now);
                }
                due
            })
            .map(|(advice, reason)| Advice {
                advice,
                reason,
                sample: sample.clone(),
            })
            .collect()
    }
}

/// The health record a leader keeps under `/nuropb/{service}/health`.
///
/// ```
/// use nuropb_container::health::{health_record, HealthSample};
/// let record = health_record("orders", "a1", &HealthSample::default(), &[], 1_700_000_000);
/// assert_eq!(record["leader"], "a1");
/// ```
pub fn health_record(
    service: &str,
    leader: &str,
    sample: &HealthSample,
    advice: &[Advice],
    unix_time: u64,
) -> Value {
    json!({
        "service": service,
        "leader": leader,
        "at": unix_time,
        "queue": sample.queue,
        "dead_letters": sample.dead_letters,
        "error": sample.error,
        "advice": advice.iter().map(|a| a.advice).collect::<Vec<_>>(),
    })
}
