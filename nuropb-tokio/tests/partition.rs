//! A silent partition on the real broker: the way back from RabbitMQ to a client goes dead
//! without a word. The client finds out by its heartbeat timer and reconnects while RabbitMQ,
//! still hearing nothing that says otherwise, holds the old connection — and with it the
//! exclusive consumer on the response queue the client consumes again under the same name. The
//! client must wait that out and come back, not stop as if a twin had taken its place.

mod support;

use nuropb_tokio::{ConnectionState, ErrorKind, Request, Service};
use serde_json::json;
use std::time::{Duration, Instant};
use support::proxy::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_silently_comes_back_once_the_broker_lets_its_old_connection_go() {
    let settings = support::mesh("partition").await;
    let service = Service::new("sleeper").method(support::nap());
    let served = support::serve(&settings, service).await;
    let proxy = Proxy::start(&settings.host, settings.port()).await;
    let mut through_proxy = proxy.in_front(&settings);
    // Two seconds: each side gives up after about two silent intervals.
    through_proxy.heartbeat = 2;
    let client = nuropb_tokio::connector(through_proxy)
        .client()
        .await
        .expect("the client connects through the proxy");
    let nap = |ms: u64| Request::new("sleeper", "nap").params(json!({"ms": ms}));
    assert_eq!(client.send(nap(0)).await.unwrap(), json!(0));

    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.send(nap(200).timeout(Duration::from_secs(60))).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.cut();
    let cut = Instant::now();

    let lost = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the call in flight resolves")
        .expect("joined")
        .expect_err("its answer went into the partition");
    assert_eq!(lost.kind, ErrorKind::Transport, "{lost}");
    // Refused while RabbitMQ holds the old connection, it is reconnecting for a while.
    assert_eq!(client.state(), ConnectionState::Reconnecting);
    // Made while the client is away: it waits for the client to be back, up to its deadline.
    let answer = client
        .send(nap(1).timeout(Duration::from_secs(60)))
        .await
        .expect("answered once the client is back");
    assert_eq!(answer, json!(1));
    assert_eq!(client.state(), ConnectionState::Ready);
    assert!(
        proxy.accepted() >= 3,
        "the first connection, at least one refused while RabbitMQ held the old one, and the \
         one that worked: {} in {:?}",
        proxy.accepted(),
        cut.elapsed()
    );
    client.shutdown(Duration::from_secs(1)).await;
    assert_eq!(client.state(), ConnectionState::Stopped);
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
