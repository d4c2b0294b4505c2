//! etcd failing under the containers: restarted under running instances, and down when they
//! start. Each test runs its own etcd, which it kills and starts again.

mod support;

use std::time::Duration;
use support::{Etcd, Instance, TestMesh, leader_of, unique, wait_for};

fn unreachable(instance: &Instance) -> bool {
    instance
        .state()
        .is_some_and(|(_, _, etcd)| etcd.contains("unreachable"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restarted_under_running_containers_they_serve_on_and_elect_again() {
    let mut etcd = Etcd::start().await;
    let mesh = TestMesh::new("restart");
    let service = unique("restart");
    let a = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    let b = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    for i in [&a, &b] {
        i.wait_state(None, Some("running"), Duration::from_secs(30))
            .await;
    }
    let leader = if a.role().as_deref() == Some("leader") {
        &a
    } else {
        &b
    };
    assert_eq!(leader.role().as_deref(), Some("leader"));

    etcd.kill();
    for i in [&a, &b] {
        wait_for(
            "etcd unreachable",
            Duration::from_secs(10),
            || unreachable(i).then_some(()),
            || i.report(),
        )
        .await;
        // Serving goes on; the state says etcd is gone.
        assert_eq!(i.phase().as_deref(), Some("running"));
    }
    // The leader stepped down at once: no leader acts while etcd cannot fence it.
    assert!(
        leader
            .notices()
            .iter()
            .any(|n| n.get("stepped_down").is_some()),
        "{}",
        leader.report()
    );
    assert_ne!(leader.role().as_deref(), Some("leader"));
    mesh.assert_answers(&service).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The retries back off: the delays grow.
    let delays: Vec<f64> = a
        .notices()
        .iter()
        .filter_map(|n| {
            let d = &n["etcd_unreachable"]["retry_in"];
            Some(d["secs"].as_f64()? + d["nanos"].as_f64()? / 1e9)
        })
        .collect();
    assert!(delays.len() >= 3, "{delays:?}");
    // Below the 5 s cap each delay is at least the longest the one before could be.
    let below_cap = &delays[..delays.len().min(4)];
    assert!(
        below_cap.windows(2).all(|w| w[1] >= w[0]),
        "growing: {delays:?}"
    );

    etcd.spawn();
    etcd.wait_healthy().await;
    let both = [&a, &b];
    let new = wait_for(
        "one leader again, both connected",
        Duration::from_secs(20),
        || {
            let connected = both
                .iter()
                .all(|i| i.state().is_some_and(|s| s.2 == "\"connected\""));
            let leaders: Vec<_> = both
                .iter()
                .filter(|i| i.role().as_deref() == Some("leader"))
                .collect();
            (connected && leaders.len() == 1).then(|| leaders[0].instance_id.clone())
        },
        || format!("{}{}", a.report(), b.report()),
    )
    .await;
    assert_eq!(leader_of(&etcd.endpoint(), &service).await, Some(new));
    for i in both {
        assert_eq!(i.phase().as_deref(), Some("running"));
    }
    mesh.assert_answers(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_at_start_is_retried_with_backoff_until_it_answers() {
    let mut etcd = Etcd::not_started();
    let mesh = TestMesh::new("down");
    let service = unique("down");
    let instance = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    wait_for(
        "three failed attempts",
        Duration::from_secs(20),
        || {
            instance
                .state()
                .is_some_and(|s| s.2.contains("\"attempts\":3"))
                .then_some(())
        },
        || instance.report(),
    )
    .await;
    // It does not serve without an election: nobody has said the mesh is configured.
    assert_eq!(
        instance.state().map(|s| (s.0, s.1)),
        Some(("electing".into(), "starting".into()))
    );
    assert_eq!(mesh.consumers(&service), 0);

    etcd.spawn();
    etcd.wait_healthy().await;
    instance
        .wait_state(Some("leader"), Some("running"), Duration::from_secs(20))
        .await;
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await,
        Some(instance.instance_id.clone())
    );
    mesh.assert_answers(&service).await;
}
