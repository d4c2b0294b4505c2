//! The election on a real etcd, with Rust containers as processes on the machine's RabbitMQ:
//! one leader among three, the mesh configured once, all serving; the leader killed, paused past
//! its lease; a flag left from an earlier run.

mod support;

use nuropb_container::keys::{CONFIG_OK, Keys, LEASE_TTL};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Instance, TestMesh, call, leader_of, shared_etcd, unique, wait_for};

const START: Duration = Duration::from_secs(30);

/// Starts `n` instances of `service` on `mesh` and waits until they all serve.
async fn running(mesh: &TestMesh, service: &str, etcd: &str, n: usize) -> Vec<Instance> {
    let mut instances = Vec::new();
    for _ in 0..n {
        instances.push(Instance::start(mesh, service, Some(etcd), &[]).await);
    }
    for instance in &instances {
        instance.wait_state(None, Some("running"), START).await;
    }
    instances
}

fn leaders(instances: &[Instance]) -> Vec<&Instance> {
    instances
        .iter()
        .filter(|i| i.role().as_deref() == Some("leader"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_elect_exactly_one_leader_configure_the_mesh_once_and_all_serve() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("elect3");
    let service = unique("elect3");
    let instances = running(&mesh, &service, &etcd.endpoint(), 3).await;

    let leading = leaders(&instances);
    assert_eq!(
        leading.len(),
        1,
        "exactly one leader:\n{}",
        instances.iter().map(Instance::report).collect::<String>()
    );
    let leader = leading[0];
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(leader.instance_id.as_str())
    );
    for follower in instances
        .iter()
        .filter(|i| i.instance_id != leader.instance_id)
    {
        assert_eq!(follower.role().as_deref(), Some("follower"));
        // Each follower names the leader, and took the flag the leader wrote.
        let named = follower.notices_of("leader_is");
        assert_eq!(
            named.last().unwrap()["notice"]["leader_is"]["instance_id"],
            json!(leader.instance_id)
        );
    }
    let configured: usize = instances
        .iter()
        .map(|i| i.notices_of("mesh_configured").len())
        .sum();
    assert_eq!(configured, 1, "the mesh is configured once, by the leader");
    assert_eq!(leader.notices_of("mesh_configured").len(), 1);

    // All three consume, and calls are answered.
    assert_eq!(mesh.consumers(&service), 3);
    let client = mesh.client().await;
    for _ in 0..6 {
        assert_eq!(
            call(&client, &service).await.unwrap(),
            json!(format!("response from {service}.test_method"))
        );
    }
    // The leader keeps a health record under its lease.
    leader.wait_written("health", Duration::from_secs(5)).await;
    client.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_lease_ttl_plus_2s_and_serving_never_stops() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("kill");
    let service = unique("kill");
    let mut instances = running(&mesh, &service, &etcd.endpoint(), 3).await;
    let leader = instances
        .iter()
        .position(|i| i.role().as_deref() == Some("leader"))
        .expect("a leader");
    let old = instances[leader].instance_id.clone();

    // Calls go on, one after another, while the leader dies and another takes over.
    let client = mesh.client().await;
    let calls = {
        let (client, service) = (client.clone(), service.clone());
        tokio::spawn(async move {
            let mut answered = 0;
            let until = Instant::now() + LEASE_TTL + Duration::from_secs(5);
            while Instant::now() < until {
                call(&client, &service)
                    .await
                    .expect("every call is answered");
                answered += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    instances[leader].kill();
    let dead = instances.remove(leader);

    let ttl = LEASE_TTL + Duration::from_secs(2);
    let new = wait_for(
        "a new leader",
        ttl,
        || {
            instances
                .iter()
                .find(|i| i.role().as_deref() == Some("leader"))
        },
        || instances.iter().map(Instance::report).collect(),
    )
    .await;
    let took = killed.elapsed();
    assert!(took <= ttl, "the new leader took {took:?}");
    assert_ne!(new.instance_id, old);
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(new.instance_id.as_str())
    );
    // The new leader took over the duties: it configured the mesh and wrote the flag anew.
    new.wait_written("rmq-config-ok", Duration::from_secs(5))
        .await;
    for survivor in &instances {
        assert_eq!(
            survivor.phase().as_deref(),
            Some("running"),
            "{}",
            survivor.report()
        );
    }
    let answered = calls.await.expect("the calls ran");
    assert!(answered > 20, "calls went on throughout: {answered}");
    drop(dead);
    client.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_has_stepped_down_when_resumed_and_its_writes_are_refused() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("pause");
    let service = unique("pause");
    let instances = running(&mesh, &service, &etcd.endpoint(), 2).await;
    let (paused, other) = match leaders(&instances).first() {
        Some(l) if l.instance_id == instances[0].instance_id => (&instances[0], &instances[1]),
        Some(_) => (&instances[1], &instances[0]),
        None => panic!("no leader"),
    };
    paused.pause();
    other
        .wait_state(Some("leader"), None, LEASE_TTL + Duration::from_secs(2))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = paused.notices().len();
    paused.resume();

    // On waking it steps down before anything else, and its resignation — a leader-only write,
    // fenced by the leader key's revision — is refused: the key is the other's now.
    paused
        .wait_state(Some("follower"), Some("running"), Duration::from_secs(10))
        .await;
    let after: Vec<Value> = paused.notices().split_off(before);
    let stepped = after.iter().position(|n| n.get("stepped_down").is_some());
    assert!(stepped.is_some(), "it says it stepped down: {after:?}");
    let refused = after
        .iter()
        .find(|n| n["leader_write"]["what"] == "resign")
        .unwrap_or_else(|| panic!("it tried to resign: {after:?}"));
    assert_eq!(refused["leader_write"]["outcome"], "refused");
    // No leader-only write of its went through after the pause.
    assert!(
        !after
            .iter()
            .any(|n| n["leader_write"]["outcome"].get("written").is_some()),
        "{after:?}"
    );
    assert_eq!(
        leader_of(&etcd.endpoint(), &service).await.as_deref(),
        Some(other.instance_id.as_str())
    );
    assert_eq!(other.role().as_deref(), Some("leader"));
}

/// The revision of the `rmq-config-ok` write an instance made, if it made one.
fn flag_written(instance: &Instance) -> Option<i64> {
    instance.notices_of("leader_write").iter().find_map(|l| {
        let write = &l["notice"]["leader_write"];
        (write["what"] == "rmq-config-ok")
            .then(|| write["outcome"]["written"]["revision"].as_i64())?
    })
}

fn flag_accepted(instance: &Instance) -> i64 {
    let accepted = instance.notices_of("config_accepted");
    accepted.last().expect("a flag was accepted")["notice"]["config_accepted"]["flag_revision"]
        .as_i64()
        .expect("a revision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_flag_left_from_an_earlier_run_with_no_leader_counts_for_nobody() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("stale0");
    let service = unique("stale0");
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    let stale = client
        .put(Keys::new(&service).config_ok(), CONFIG_OK, None)
        .await
        .unwrap();
    let stale_revision = stale.header().unwrap().revision();

    let instances = running(&mesh, &service, &etcd.endpoint(), 2).await;
    let leader = leaders(&instances)[0];
    let written = flag_written(leader).expect("the new leader wrote the flag");
    assert!(written > stale_revision);
    // Everyone consumed on the flag the new leader wrote, not on the stale one.
    for instance in &instances {
        assert_eq!(flag_accepted(instance), written, "{}", instance.report());
    }
    assert_eq!(instances.iter().filter_map(flag_written).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_flag_older_than_the_leader_key_makes_followers_wait_for_the_new_leader() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("stale");
    let service = unique("stale");
    let keys = Keys::new(&service);
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    // An earlier run left its flag (Python's has no lease) and no leader.
    let stale = client.put(keys.config_ok(), CONFIG_OK, None).await.unwrap();
    let stale_revision = stale.header().unwrap().revision();
    // A leader that has not configured anything yet holds the key (say, a Python instance
    // still starting).
    let lease = client.lease_grant(5, None).await.unwrap().id();
    let (mut keeper, _answers) = client.lease_keep_alive(lease).await.unwrap();
    let options = etcd_client::PutOptions::new().with_lease(lease);
    client
        .put(keys.leader(), "an-earlier-leader", Some(options))
        .await
        .unwrap();

    let follower = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
    follower
        .wait_state(Some("follower"), Some("waiting-for-config"), START)
        .await;
    // It waits: the flag predates the leader key. (Python's follower would have started.)
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        keeper.keep_alive().await.unwrap();
        assert_eq!(
            follower.phase().as_deref(),
            Some("waiting-for-config"),
            "{}",
            follower.report()
        );
        assert_eq!(mesh.consumers(&service), 0);
    }
    // That leader goes; the follower takes over, configures the mesh, writes the flag anew, serves.
    client.lease_revoke(lease).await.unwrap();
    follower
        .wait_state(Some("leader"), Some("running"), START)
        .await;
    let flag = flag_accepted(&follower);
    assert_eq!(Some(flag), flag_written(&follower));
    assert!(
        flag > stale_revision,
        "the accepted flag ({flag}) is newer than the stale one ({stale_revision})"
    );
    assert_eq!(mesh.consumers(&service), 1);
}
