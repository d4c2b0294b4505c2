//! Mixed with Python: a Python NuroPb 0.1.8 `ServiceContainer` and Rust containers of the same
//! service share one election, whichever starts first, and take over from each other.

mod support;

use nuropb_container::keys::LEASE_TTL;
use serde_json::json;
use std::time::Duration;
use support::{Instance, PythonInstance, TestMesh, leader_of, shared_etcd, unique};

const START: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_first_leads_a_rust_follower_that_takes_over_when_python_dies() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("py1st");
    let service = unique("py1st");
    let mut python = PythonInstance::start(&mesh, &service, etcd.port()).await;
    python
        .wait("Python leads and consumes", START, |p| {
            p.started() && p.is_leader() && p.state().as_deref() == Some("running-leader")
        })
        .await;
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(python.instance_id.as_str())
    );

    // Rust follows, and takes Python's flag (written after Python's leader key).
    let rust = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    rust.wait_state(Some("follower"), Some("running"), START)
        .await;
    let named = rust.notices_of("leader_is");
    assert_eq!(
        named[0]["notice"]["leader_is"]["instance_id"],
        json!(python.instance_id)
    );
    assert!(
        rust.notices_of("mesh_configured").is_empty(),
        "a follower does not configure"
    );
    assert_eq!(mesh.consumers(&service), 2);
    mesh.assert_answers(&service).await;

    // Python dies without a word: its lease expires and Rust takes over.
    python.kill();
    rust.wait_state(
        Some("leader"),
        Some("running"),
        LEASE_TTL + Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(rust.instance_id.as_str())
    );
    // It takes over the duties: configures the mesh and writes the flag under its leadership.
    rust.wait_written("rmq-config-ok", Duration::from_secs(10))
        .await;
    assert_eq!(rust.notices_of("mesh_configured").len(), 1);
    mesh.assert_answers(&service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_first_leads_a_python_follower_and_they_hand_the_leadership_back_and_forth() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("rust1st");
    let service = unique("rust1st");
    let mut first = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    first
        .wait_state(Some("leader"), Some("running"), START)
        .await;

    // Python follows, on the flag Rust wrote ("True", as Python compares it).
    let mut python = PythonInstance::start(&mesh, &service, etcd.port()).await;
    python
        .wait("Python follows and consumes", START, |p| {
            p.started() && !p.is_leader() && p.state().as_deref() == Some("running-follower")
        })
        .await;
    assert_eq!(mesh.consumers(&service), 2);

    // Rust stops gracefully: its lease is revoked, the leader key goes, Python nominates itself.
    first.terminate().await;
    python
        .wait(
            "Python takes the leadership",
            Duration::from_secs(10),
            |p| p.is_leader(),
        )
        .await;
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(python.instance_id.as_str())
    );
    mesh.assert_answers(&service).await;

    // A Rust instance joins under the Python leader. Python's leaders write no flag after a
    // takeover, and the one there predates Python's key, so it waits, as the rule says.
    let second = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    second
        .wait_state(Some("follower"), Some("waiting-for-config"), START)
        .await;
    let named = second.notices_of("leader_is");
    assert_eq!(
        named[0]["notice"]["leader_is"]["instance_id"],
        json!(python.instance_id)
    );

    // Python stops (revoking its lease): Rust takes over at once, configures, writes the flag
    // and consumes.
    python.stop().await;
    second
        .wait_state(Some("leader"), Some("running"), Duration::from_secs(10))
        .await;
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(second.instance_id.as_str())
    );
    mesh.assert_answers(&service).await;
}
