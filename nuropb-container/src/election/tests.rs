//! The election's story, step by step, without etcd: the driver's part is played by hand.

use super::*;
use std::time::{Duration, Instant};

const ME: &str = "me";
const LEASE: i64 = 100;

fn config() -> ElectionConfig {
    ElectionConfig::new("orders", ME)
}

fn actions(e: &mut Election) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn notices(e: &mut Election) -> Vec<Notice> {
    std::iter::from_fn(|| e.poll_notice()).collect()
}

fn entry(value: &str, create: i64, modified: i64, lease: i64) -> Entry {
    Entry {
        value: value.to_owned(),
        create_revision: create,
        mod_revision: modified,
        lease,
    }
}

fn flag(revision: i64) -> Entry {
    entry(CONFIG_OK, revision, revision, 0)
}

/// The watch saw the flag written at `revision` (created long before, at 5).
fn flag_put(revision: i64) -> Change {
    Change::Put {
        key: KeyName::ConfigOk,
        entry: entry(CONFIG_OK, 5, revision, 0),
    }
}

/// The watch saw the leader key deleted at `revision`.
fn leader_gone(revision: i64) -> Change {
    Change::Delete {
        key: KeyName::Leader,
        revision,
    }
}

/// The term of the `ConfigureMesh` asked for, the only action expected — after marking the
/// flag `False` (at the revision after the leader key's) when a new leader asks for that first.
fn configure_term(e: &mut Election) -> Term {
    match actions(e).as_slice() {
        [Action::ConfigureMesh { term }] => *term,
        [Action::MarkConfigPending { term, fence }] => {
            let revision = fence.create_revision + 1;
            e.handle_config_marked(*term, WriteOutcome::Written { revision }, Instant::now());
            configure_term(e)
        }
        other => panic!("expected ConfigureMesh, got {other:?}"),
    }
}

fn opened(now: Instant, leader: Option<Entry>, config_ok: Option<Entry>, revision: i64) -> Opened {
    Opened {
        lease: LEASE,
        ttl: Duration::from_secs(15),
        granted_at: now,
        snapshot: Snapshot {
            leader,
            config_ok,
            revision,
        },
        resigned: None,
    }
}

/// A fresh election whose session opened on `leader` and `config_ok`; returns it with the
/// session and what it asked for after the opening.
fn open_on(
    now: Instant,
    leader: Option<Entry>,
    config_ok: Option<Entry>,
    revision: i64,
) -> (Election, SessionId, Vec<Action>) {
    open_with(config(), now, leader, config_ok, revision)
}

fn open_with(
    config: ElectionConfig,
    now: Instant,
    leader: Option<Entry>,
    config_ok: Option<Entry>,
    revision: i64,
) -> (Election, SessionId, Vec<Action>) {
    let mut e = Election::new(config, now, 42);
    let session = match actions(&mut e).as_slice() {
        [
            Action::Open {
                session,
                resign: None,
                revoke: None,
                ..
            },
        ] => *session,
        other => panic!("expected one Open, got {other:?}"),
    };
    e.handle_opened(session, opened(now, leader, config_ok, revision), now);
    let asked = actions(&mut e);
    (e, session, asked)
}

/// An election that won at revision 10 and went through its duties to serving.
fn running_leader(now: Instant) -> (Election, SessionId) {
    let (mut e, session, asked) = open_on(now, None, None, 9);
    assert_eq!(
        asked,
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
    won(&mut e, session, 10, now);
    let term = configure_term(&mut e);
    e.handle_mesh_configured(term, Ok(()), now);
    let fence = match actions(&mut e).as_slice() {
        [Action::WriteConfigOk { fence, .. }] => fence.clone(),
        other => panic!("expected WriteConfigOk, got {other:?}"),
    };
    assert_eq!(fence.create_revision, 10);
    e.handle_config_written(term, WriteOutcome::Written { revision: 12 }, now);
    assert_eq!(actions(&mut e), [Action::Serve { prefetch: None }]);
    e.handle_served(Ok(()), now);
    assert_eq!(e.state().to_string(), "leader, running, etcd connected");
    (e, session)
}

fn won(e: &mut Election, session: SessionId, revision: i64, now: Instant) {
    let result = CampaignResult {
        won: true,
        leader: Some(entry(ME, revision, revision, LEASE)),
        revision,
    };
    e.handle_campaign(session, result, now);
}

fn lost_to(e: &mut Election, session: SessionId, leader: Entry, revision: i64, now: Instant) {
    let result = CampaignResult {
        won: false,
        leader: Some(leader),
        revision,
    };
    e.handle_campaign(session, result, now);
}

#[test]
fn the_winner_configures_the_mesh_says_so_and_serves() {
    let now = Instant::now();
    let (mut e, _) = running_leader(now);
    let told = notices(&mut e);
    assert!(told.contains(&Notice::MeshConfigured));
    // The flag marked False first (for Python followers starting meanwhile), True once configured.
    assert!(told.contains(&Notice::LeaderWrite {
        what: "rmq-config-ok=False",
        outcome: WriteOutcome::Written { revision: 11 }
    }));
    assert!(told.contains(&Notice::ConfigAccepted {
        flag_revision: 12,
        leader_revision: 10
    }));
    assert!(
        matches!(told.iter().find(|n| matches!(n, Notice::Elected { .. })),
        Some(Notice::Elected { fence }) if fence.lease == LEASE && fence.leader_key == "/nuropb/orders/leader")
    );
    // The health check is due at once, then every 10 s.
    assert_eq!(e.poll_timeout(), Some(now));
    e.handle_timeout(now);
    assert!(matches!(
        actions(&mut e).as_slice(),
        [Action::CheckHealth { .. }]
    ));
}

#[test]
fn a_follower_consumes_only_once_the_flag_is_written_under_the_current_leader() {
    let now = Instant::now();
    // The flag (revision 5) predates the leader's key (created at 10): left from an earlier run.
    let leader = entry("other", 10, 10, 7);
    let (mut e, session, _) = open_on(now, Some(leader.clone()), Some(flag(5)), 12);
    lost_to(&mut e, session, leader, 13, now);
    assert_eq!(e.state().role, Role::Follower);
    assert_eq!(e.state().phase, Phase::WaitingForConfig);
    assert_eq!(actions(&mut e), []);
    // The leader writes it anew: now it counts.
    e.handle_changes(session, [flag_put(14)], now);
    assert_eq!(actions(&mut e), [Action::Serve { prefetch: None }]);
    assert!(notices(&mut e).contains(&Notice::ConfigAccepted {
        flag_revision: 14,
        leader_revision: 10
    }));
}

#[test]
fn a_flag_that_is_not_true_does_not_count() {
    let now = Instant::now();
    let leader = entry("other", 10, 10, 7);
    let (mut e, session, _) = open_on(
        now,
        Some(leader.clone()),
        Some(entry("False", 11, 11, 0)),
        12,
    );
    lost_to(&mut e, session, leader, 13, now);
    assert_eq!(actions(&mut e), []);
}

#[test]
fn a_stale_flag_with_no_leader_waits_for_the_new_leaders() {
    let now = Instant::now();
    let (mut e, session, asked) = open_on(now, None, Some(flag(5)), 6);
    assert_eq!(
        asked,
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
    assert_eq!(e.state().to_string(), "electing, starting, etcd connected");
    // Another instance won at 7: the flag of 5 is older than its key.
    lost_to(&mut e, session, entry("other", 7, 7, 8), 7, now);
    assert_eq!(e.state().phase, Phase::WaitingForConfig);
    assert_eq!(actions(&mut e), []);
    e.handle_changes(session, [flag_put(8)], now);
    assert_eq!(actions(&mut e), [Action::Serve { prefetch: None }]);
}

#[test]
fn a_deleted_leader_key_makes_a_running_follower_campaign_and_take_over_the_duties() {
    let now = Instant::now();
    let leader = entry("other", 10, 10, 7);
    let (mut e, session, asked) = open_on(now, Some(leader.clone()), Some(flag(11)), 12);
    // The snapshot shows a leader and a flag written under it: it consumes at once.
    assert_eq!(
        asked,
        [
            Action::Campaign {
                session,
                lease: LEASE
            },
            Action::Serve { prefetch: None }
        ]
    );
    lost_to(&mut e, session, leader, 12, now);
    e.handle_served(Ok(()), now);
    notices(&mut e);
    e.handle_changes(session, [leader_gone(20)], now);
    assert_eq!(
        actions(&mut e),
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
    assert_eq!(e.state().to_string(), "electing, running, etcd connected");
    won(&mut e, session, 21, now);
    // It serves on (no new Serve) and takes over the duties: the flag marked pending first,
    // then the mesh configured.
    configure_term(&mut e);
    assert_eq!(e.state().to_string(), "leader, running, etcd connected");
}

#[test]
fn a_leader_steps_down_at_its_renew_deadline_before_any_duty() {
    let start = Instant::now();
    let (mut e, session) = running_leader(start);
    let fence = e.fence().cloned().expect("leads");
    // Paused well past the lease: when it wakes, the health check is overdue too, but the
    // deadline comes first and no leader-only action goes out.
    let woke = start + Duration::from_secs(40);
    e.handle_timeout(woke);
    let asked = actions(&mut e);
    assert!(
        !asked
            .iter()
            .any(|a| matches!(a, Action::CheckHealth { .. }))
    );
    assert!(matches!(asked.as_slice(),
        [Action::Close { session: s }, Action::Open { resign: Some(f), revoke: Some(LEASE), .. }]
        if *s == session && *f == fence));
    assert_eq!(e.fence(), None);
    assert!(
        notices(&mut e)
            .iter()
            .any(|n| matches!(n, Notice::SteppedDown { .. }))
    );
    assert_eq!(e.state().to_string(), "electing, running, etcd connecting");
}

#[test]
fn the_renew_deadline_is_a_fifth_of_the_ttl_before_the_lease_could_expire() {
    let start = Instant::now();
    let (mut e, _) = running_leader(start);
    e.handle_timeout(start); // the first health check
    actions(&mut e);
    // Keep-alives are due every 5 s; none is answered.
    e.handle_timeout(start + Duration::from_secs(5));
    assert!(
        actions(&mut e)
            .iter()
            .any(|a| matches!(a, Action::KeepAlive { .. }))
    );
    e.handle_timeout(start + Duration::from_secs(10));
    assert!(
        actions(&mut e)
            .iter()
            .any(|a| matches!(a, Action::KeepAlive { .. }))
    );
    assert!(e.fence().is_some());
    e.handle_timeout(start + Duration::from_millis(11_999));
    assert!(e.fence().is_some());
    e.handle_timeout(start + Duration::from_secs(12));
    assert_eq!(e.fence(), None);
}

#[test]
fn answered_keep_alives_move_the_deadline_from_when_they_were_sent() {
    let start = Instant::now();
    let (mut e, session) = running_leader(start);
    let sent = start + Duration::from_secs(5);
    e.handle_keep_alive(session, 15, sent, sent + Duration::from_millis(3));
    e.handle_timeout(start + Duration::from_secs(16));
    assert!(e.fence().is_some(), "valid until 5 + 15 - 3 = 17 s");
    e.handle_timeout(start + Duration::from_secs(17));
    assert_eq!(e.fence(), None);
}

#[test]
fn etcd_saying_the_lease_is_gone_steps_the_leader_down_at_once() {
    let now = Instant::now();
    let (mut e, session) = running_leader(now);
    actions(&mut e);
    e.handle_keep_alive(session, 0, now, now);
    assert_eq!(e.fence(), None);
    assert!(matches!(
        actions(&mut e).as_slice(),
        [
            Action::Close { .. },
            Action::Open {
                resign: Some(_),
                ..
            }
        ]
    ));
}

#[test]
fn etcd_unreachable_is_retried_with_growing_jittered_backoff_and_serving_goes_on() {
    let mut now = Instant::now();
    let (mut e, mut session) = running_leader(now);
    actions(&mut e);
    let mut delays = Vec::new();
    for _ in 0..8 {
        e.handle_session_failed(session, "connection refused", now);
        let wake = e.poll_timeout().expect("a retry is due");
        delays.push(wake - now);
        now = wake;
        e.handle_timeout(now);
        session = actions(&mut e)
            .into_iter()
            .find_map(|a| match a {
                Action::Open { session, .. } => Some(session),
                _ => None,
            })
            .expect("opens again");
    }
    assert_eq!(e.state().phase, Phase::Running);
    assert_eq!(e.state().role, Role::Electing);
    assert_eq!(e.state().etcd, EtcdLink::Unreachable { attempts: 8 });
    // 200 ms doubling, each between half and all of it, capped at 5 s.
    for (attempt, delay) in delays.iter().enumerate() {
        let full = Duration::from_millis(200 * (1u64 << attempt)).min(Duration::from_secs(5));
        assert!(
            *delay >= full / 2 && *delay <= full,
            "attempt {attempt}: {delay:?}"
        );
    }
    assert!(
        delays.windows(2).any(|w| w[0] != w[1] / 2),
        "jitter varies the delays"
    );
    e.handle_opened(session, opened(now, None, Some(flag(11)), 30), now);
    assert_eq!(e.state().etcd, EtcdLink::Connected);
}

#[test]
fn a_refused_leader_write_steps_down_and_asks_etcd_who_leads() {
    let now = Instant::now();
    let (mut e, session, _) = open_on(now, None, None, 9);
    won(&mut e, session, 10, now);
    let term = configure_term(&mut e);
    e.handle_mesh_configured(term, Ok(()), now);
    actions(&mut e);
    e.handle_config_written(term, WriteOutcome::Refused, now);
    assert_eq!(e.fence(), None);
    assert_eq!(
        actions(&mut e),
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
    assert!(notices(&mut e).contains(&Notice::LeaderWrite {
        what: "rmq-config-ok",
        outcome: WriteOutcome::Refused
    }));
}

#[test]
fn answers_for_an_earlier_term_or_session_are_ignored() {
    let now = Instant::now();
    let (mut e, session, _) = open_on(now, None, None, 9);
    won(&mut e, session, 10, now);
    let term = configure_term(&mut e);
    // It loses the leadership before the mesh is configured…
    e.handle_changes(session, [leader_gone(11)], now);
    assert_eq!(
        actions(&mut e),
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
    lost_to(&mut e, session, entry("other", 12, 12, 5), 12, now);
    // …so the late answer does not make it write the flag.
    e.handle_mesh_configured(term, Ok(()), now);
    assert_eq!(actions(&mut e), []);
    // A campaign answer from before (revision 10) does not undo what the watch said since.
    lost_to(&mut e, session, entry(ME, 10, 10, LEASE), 10, now);
    assert_eq!(e.state().role, Role::Follower);
    // Nor does anything from another session.
    e.handle_changes(SessionId(99), [leader_gone(50)], now);
    assert_eq!(e.leader().map(|l| l.value.as_str()), Some("other"));
}

#[test]
fn our_own_key_under_a_lease_of_a_lost_session_is_not_leadership() {
    let now = Instant::now();
    let (mut e, session, _) = open_on(now, Some(entry(ME, 3, 3, 55)), None, 9);
    lost_to(&mut e, session, entry(ME, 3, 3, 55), 9, now);
    assert_eq!(e.state().role, Role::Electing);
    assert_eq!(e.fence(), None);
}

#[test]
fn a_leader_prefetch_serves_the_leader_anew_on_each_change_of_role() {
    let now = Instant::now();
    let config = config().leader_prefetch(Some(1));
    let leader = entry("other", 10, 10, 7);
    let (mut e, session, asked) = open_with(config, now, Some(leader.clone()), Some(flag(11)), 12);
    assert!(asked.contains(&Action::Serve { prefetch: None }));
    lost_to(&mut e, session, leader, 12, now);
    e.handle_served(Ok(()), now);
    e.handle_changes(session, [leader_gone(20)], now);
    actions(&mut e);
    won(&mut e, session, 21, now);
    let asked = actions(&mut e);
    assert!(
        asked.contains(&Action::Reserve { prefetch: Some(1) }),
        "{asked:?}"
    );
    e.handle_served(Ok(()), now);
    e.handle_changes(session, [leader_gone(22)], now);
    assert!(actions(&mut e).contains(&Action::Reserve { prefetch: None }));
}

#[test]
fn without_a_leader_prefetch_a_change_of_role_does_not_touch_serving() {
    let now = Instant::now();
    let (mut e, session) = running_leader(now);
    actions(&mut e);
    e.handle_changes(session, [leader_gone(30)], now);
    assert_eq!(
        actions(&mut e),
        [Action::Campaign {
            session,
            lease: LEASE
        }]
    );
}

#[test]
fn standalone_configures_the_mesh_then_serves_retrying_failures() {
    let now = Instant::now();
    let mut e = Election::standalone(config(), 1);
    assert_eq!(e.state().to_string(), "standalone, starting, no etcd");
    let term = configure_term(&mut e);
    e.handle_mesh_configured(term, Err("broker down".into()), now);
    let retry = e.poll_timeout().expect("retried");
    assert!(retry > now && retry <= now + Duration::from_millis(200));
    e.handle_timeout(retry);
    assert_eq!(actions(&mut e), [Action::ConfigureMesh { term }]);
    e.handle_mesh_configured(term, Ok(()), retry);
    assert_eq!(actions(&mut e), [Action::Serve { prefetch: None }]);
    e.handle_served(Ok(()), retry);
    assert_eq!(e.state().to_string(), "standalone, running, no etcd");
    let states: Vec<String> = notices(&mut e)
        .into_iter()
        .filter_map(|n| match n {
            Notice::State(s) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            "standalone, starting, no etcd",
            "standalone, running, no etcd"
        ]
    );
}

#[test]
fn stopping_revokes_the_lease_and_asks_nothing_more() {
    let now = Instant::now();
    let (mut e, session) = running_leader(now);
    actions(&mut e);
    e.handle_stop();
    assert_eq!(
        actions(&mut e),
        [Action::Stop {
            revoke: Some(LEASE)
        }]
    );
    assert_eq!(e.state().phase, Phase::Stopping);
    assert_eq!(e.fence(), None);
    e.handle_changes(session, [leader_gone(40)], now);
    e.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(actions(&mut e), []);
    e.handle_stopped();
    assert_eq!(e.state().phase, Phase::Stopped);
}

#[test]
fn every_state_change_is_told_once() {
    let now = Instant::now();
    let (mut e, _) = running_leader(now);
    let states: Vec<String> = notices(&mut e)
        .into_iter()
        .filter_map(|n| match n {
            Notice::State(s) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            "electing, starting, etcd connecting",
            "electing, starting, etcd connected",
            "leader, waiting-for-config, etcd connected",
            "leader, running, etcd connected",
        ]
    );
}
