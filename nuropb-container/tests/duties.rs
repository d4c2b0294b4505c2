//! The container as a library, in-process: its handle, its fence, its health duty; standalone.

mod support;

use nuropb_container::election::WriteOutcome;
use nuropb_container::keys::Keys;
use nuropb_container::{Container, ContainerHandle, EtcdSettings, HealthConfig, Phase, Role, etcd};
use nuropb_tokio::TokioRuntime;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{TestMesh, shared_etcd, unique, wait_for};

const START: Duration = Duration::from_secs(30);

fn container(mesh: &TestMesh, service: &str) -> Container {
    let name = service.to_owned();
    Container::new(nuropb_tokio::connector(mesh.settings.clone()), move || {
        nuropb_api::testing::service_example(&name, TokioRuntime::shared())
    })
}

async fn running(handle: &ContainerHandle) {
    let state = tokio::time::timeout(START, handle.wait_until(|s| s.phase == Phase::Running))
        .await
        .unwrap_or_else(|_| panic!("not running: {}", handle.state()));
    assert_eq!(state.phase, Phase::Running, "{state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_whose_key_has_gone_cannot_write() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("fence");
    let service = unique("fence");
    let settings = EtcdSettings::new([etcd.endpoint()]);
    let first = container(&mesh, &service).etcd(settings.clone()).start();
    running(&first).await;
    let second = container(&mesh, &service).etcd(settings).start();
    running(&second).await;
    assert_eq!(first.state().role, Role::Leader);
    assert_eq!(second.state().role, Role::Follower);
    let old = first.fence().expect("the leader's fence");
    assert_eq!(second.fence(), None);

    // The lease goes as if it had expired while its holder was paused.
    let mut client = etcd::EtcdSettings::new([etcd.endpoint()])
        .connect()
        .await
        .unwrap();
    client.lease_revoke(old.lease).await.unwrap();
    tokio::time::timeout(START, second.wait_until(|s| s.role == Role::Leader))
        .await
        .expect("the follower takes over");
    let new = second.fence().expect("the new leader's fence");
    assert!(new.create_revision > old.create_revision);

    // A write under the old leadership is refused by etcd; under the new one it goes through.
    let key = Keys::new(&service).health();
    let stale = etcd::fenced_put(&mut client, &old, &key, "stale", None).await;
    assert_eq!(stale, WriteOutcome::Refused);
    assert_eq!(
        etcd::fenced_delete(&mut client, &old).await,
        WriteOutcome::Refused
    );
    let fresh = etcd::fenced_put(&mut client, &new, &key, "fresh", None).await;
    assert!(matches!(fresh, WriteOutcome::Written { .. }), "{fresh:?}");
    // The old leader noticed (etcd said its lease is gone) and follows.
    tokio::time::timeout(START, first.wait_until(|s| s.role == Role::Follower))
        .await
        .expect("the old leader follows");
    assert_eq!(first.fence(), None);
    assert_eq!(first.state().phase, Phase::Running);
    first.stop().await;
    second.stop().await;
    assert_eq!(second.state().phase, Phase::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_advises_on_the_mesh_when_the_dead_letter_queue_grows() {
    let etcd = shared_etcd().await;
    let mesh = TestMesh::new("advice");
    let service = unique("advice");
    let topic = format!("{service}.advice");
    let health = HealthConfig {
        every: Duration::from_secs(1),
        advice_topic: topic.clone(),
        ..HealthConfig::default()
    };
    let leader = container(&mesh, &service)
        .etcd(EtcdSettings::new([etcd.endpoint()]))
        .health(health)
        .start();
    running(&leader).await;

    let heard: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = {
        let heard = heard.clone();
        nuropb_tokio::connector(mesh.settings.clone())
            .listener(vec![topic.clone()], move |event, _ctx| {
                let heard = heard.clone();
                async move {
                    heard.lock().unwrap().push(event.event);
                    Ok(())
                }
            })
            .await
            .expect("a listener")
    };
    // A message dead-lettered: published to the dead-letter exchange through the management API.
    let url = format!(
        "{}/exchanges/{}/nuropb-dl-exchange/publish",
        mesh.settings.management_api(),
        nuropb_proto::mesh::management::percent_encode(&mesh.settings.vhost)
    );
    let body = json!({"properties": {}, "routing_key": "x", "payload": "dead", "payload_encoding": "string"});
    let status = std::process::Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-u",
            "guest:guest",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(&url)
        .status()
        .expect("curl runs");
    assert!(status.success(), "publish through the management API");

    // The management API counts it within its statistics interval (5 s); then the advice comes.
    let advice = wait_for(
        "the dead-letters advice",
        Duration::from_secs(20),
        || heard.lock().unwrap().first().cloned(),
        || format!("{}", leader.state()),
    )
    .await;
    assert_eq!(advice["advice"], "dead-letters-growing");
    assert_eq!(advice["service"], json!(service));
    assert_eq!(advice["leader"], json!(leader.instance_id()));
    // The health record, under the leader's lease, says so too.
    let mut client = EtcdSettings::new([etcd.endpoint()])
        .connect()
        .await
        .unwrap();
    let record = client
        .get(Keys::new(&service).health(), None)
        .await
        .unwrap();
    let kv = &record.kvs()[0];
    assert_eq!(kv.lease(), leader.fence().unwrap().lease);
    let record: Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(record["leader"], json!(leader.instance_id()));
    assert!(
        record["dead_letters"]["messages"].as_u64() >= Some(1),
        "{record}"
    );
    listener.shutdown(Duration::from_secs(1)).await;
    leader.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_it_configures_the_mesh_and_serves() {
    let mesh = TestMesh::new("alone");
    let service = unique("alone");
    let handle = container(&mesh, &service).start();
    running(&handle).await;
    assert_eq!(handle.state().to_string(), "standalone, running, no etcd");
    let client = mesh.client().await;
    let reply = client
        .send(
            nuropb_api::Request::new(&service, "test_method")
                .params(json!({"param1": 1, "param2": {}}))
                .timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(reply, json!(format!("response from {service}.test_method")));
    client.shutdown(Duration::from_secs(1)).await;
    handle.stop().await;
    assert_eq!(mesh.consumers(&service), 0);
}
