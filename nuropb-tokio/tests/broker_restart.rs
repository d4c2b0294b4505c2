//! The broker application stops and starts again (`rabbitmqctl stop_app` / `start_app`) while calls
//! are in flight: every call resolves, calls made while it is down wait for it, and both the
//! service and the client reconnect. Alone in its file: it takes the broker away from every test.

mod support;

use nuropb_tokio::{Request, Service};
use serde_json::json;
use std::time::Duration;
use support::broker::rabbitmqctl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_resolves_across_a_broker_restart() {
    let settings = support::mesh("restart").await;
    let service = Service::new("sleeper").prefetch(32).method(support::nap());
    let (served, client) = support::serve_and_connect(&settings, service).await;
    let call = |ms: u64| {
        let client = client.clone();
        tokio::spawn(async move {
            let request = Request::new("sleeper", "nap")
                .params(json!({"ms": ms}))
                .timeout(Duration::from_secs(40));
            client.send(request).await
        })
    };
    let in_flight: Vec<_> = (0..30).map(|i| call(i * 50)).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    // Calls made while the broker is away wait for it.
    let while_down: Vec<_> = (0..5).map(|_| call(1)).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(|| rabbitmqctl(&["start_app"]))
        .await
        .unwrap();

    support::all_resolve(in_flight, Duration::from_secs(60)).await;
    for call in while_down {
        let result = tokio::time::timeout(Duration::from_secs(60), call).await;
        assert_eq!(
            result
                .expect("resolved")
                .expect("joined")
                .expect("answered after the restart"),
            json!(1)
        );
    }
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
