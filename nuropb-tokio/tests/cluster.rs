//! A RabbitMQ cluster's nodes, as the client sees them: an address list. Two proxies in front of
//! the machine's one RabbitMQ stand for two nodes, a port nobody listens on for a node that is
//! down. The client starts on the first node that answers, and when its node dies it carries on
//! on another. And a service on a quorum queue, the queue type that outlives a node.

mod support;

use nuropb_tokio::{ConnectionSettings, ErrorKind, Request, Service};
use serde_json::json;
use std::time::Duration;
use support::proxy::Proxy;

/// A port on 127.0.0.1 that refuses connections.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// A node that takes the socket and drops it at once, before the handshake.
async fn broken_node() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let port = listener.local_addr().expect("bound").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    port
}

/// `settings` with these nodes instead of its own.
fn on_nodes(settings: &ConnectionSettings, ports: &[u16]) -> ConnectionSettings {
    let mut settings = settings.clone();
    settings.host = "127.0.0.1".into();
    settings.port = Some(ports[0]);
    settings.other_nodes = ports[1..]
        .iter()
        .map(|p| ("127.0.0.1".to_owned(), Some(*p)))
        .collect();
    settings
}

#[tokio::test]
async fn a_client_starts_on_the_first_node_that_answers() {
    let settings = support::mesh("cluster-start").await;
    let a = Proxy::start(&settings.host, settings.port()).await;
    let client = nuropb_tokio::connector(on_nodes(&settings, &[dead_port(), a.port]))
        .client()
        .await
        .expect("the second node answers");
    assert_eq!(a.accepted(), 1);
    client.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_node_dies_carries_on_on_the_other() {
    let settings = support::mesh("cluster-failover").await;
    let service = Service::new("sleeper").method(support::nap());
    let served = support::serve(&settings, service).await;
    let (a, b) = (
        Proxy::start(&settings.host, settings.port()).await,
        Proxy::start(&settings.host, settings.port()).await,
    );
    let client = nuropb_tokio::connector(on_nodes(&settings, &[a.port, b.port]))
        .client()
        .await
        .expect("node a answers");
    let nap = |ms: u64| Request::new("sleeper", "nap").params(json!({"ms": ms}));
    assert_eq!(client.send(nap(0)).await.unwrap(), json!(0));
    assert_eq!((a.accepted(), b.accepted()), (1, 0), "on node a");

    a.kill();
    // Refused by a, the client reaches b. A request made before it noticed the loss fails as
    // lost with the connection; one made after waits for b.
    let mut lost = 0;
    let answer = loop {
        match client.send(nap(1).timeout(Duration::from_secs(30))).await {
            Ok(answer) => break answer,
            Err(e) if e.kind == ErrorKind::Transport && lost == 0 => lost += 1,
            Err(e) => panic!("not answered through node b: {e}"),
        }
    };
    assert_eq!(answer, json!(1));
    assert_eq!(b.accepted(), 1, "on node b");

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test]
async fn a_client_that_reaches_no_node_says_which_it_tried() {
    let (one, two) = (dead_port(), dead_port());
    let nodes = on_nodes(&support::settings("nuropb-test-nowhere"), &[one, two]);
    let error = nuropb_tokio::connector(nodes)
        .client()
        .await
        .expect_err("no node answers");
    assert_eq!(error.kind, ErrorKind::Transport);
    assert!(
        error
            .description
            .contains(&format!("127.0.0.1:{one}, 127.0.0.1:{two}")),
        "{error}"
    );
}

#[tokio::test]
async fn the_management_api_is_asked_on_the_first_node_that_answers() {
    // A node whose management port (its AMQP port + 10000) refuses, then the real one.
    let refusing = dead_port();
    assert!(refusing > 10_000, "an ephemeral port");
    let mut settings = support::settings(&format!(
        "nuropb-test-mgmt-{}",
        &nuropb_tokio::random_hex()[..12]
    ));
    let real = (settings.host.clone(), Some(settings.port()));
    settings.host = "127.0.0.1".into();
    settings.port = Some(refusing - 10_000);
    settings.other_nodes = vec![real];
    assert!(
        nuropb_tokio::create_vhost(&settings)
            .await
            .expect("created through the second node"),
        "it did not exist"
    );
    assert!(
        nuropb_tokio::delete_vhost(&settings)
            .await
            .expect("deleted through the second node"),
        "it existed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_on_a_quorum_queue_serves_calls_again_and_all() {
    let settings = support::mesh("quorum").await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    // Asks to be called again the first time: a quorum queue requeues as a classic one does.
    let once_more = nuropb_tokio::Method::new(
        "once_more",
        move |_ctx: nuropb_tokio::CallContext, _p: serde_json::Value| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(nuropb_tokio::NuropbError::new(
                        ErrorKind::CallAgain,
                        "again",
                    ))
                } else {
                    Ok(n)
                }
            }
        },
    );
    let service = Service::new("replicated")
        .quorum_queue()
        .method(support::nap())
        .method(once_more);
    let (served, client) = support::serve_and_connect(&settings, service).await;
    let nap = Request::new("replicated", "nap").params(json!({"ms": 1}));
    assert_eq!(client.send(nap).await.unwrap(), json!(1));
    assert_eq!(
        client
            .send(Request::new("replicated", "once_more"))
            .await
            .unwrap(),
        json!(1)
    );
    let queues = support::broker::rabbitmqctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "-p",
        &settings.vhost,
        "name",
        "type",
    ]);
    assert!(
        queues
            .lines()
            .any(|l| l.split_whitespace().eq(["nuropb-replicated-sq", "quorum"])),
        "{queues}"
    );
    // An instance that declares the queue classic is refused, with the reason.
    let classic = nuropb_tokio::connector(settings.clone())
        .serve(Service::new("replicated").method(support::nap()))
        .await
        .expect_err("RabbitMQ refuses the other declaration");
    assert!(
        classic.description.contains("406") && classic.description.contains("x-queue-type"),
        "{classic}"
    );
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test]
async fn a_node_that_drops_the_handshake_is_passed_over() {
    let settings = support::mesh("broken-node").await;
    let nodes = on_nodes(&settings, &[broken_node().await, settings.port()]);
    let client = nuropb_tokio::connector(nodes)
        .client()
        .await
        .expect("the second node answers");
    assert_eq!(client.state(), nuropb_tokio::ConnectionState::Ready);
    client.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
