//! Reconnecting and being refused on the machine's RabbitMQ (NUROPB_TEST_AMQP_URL, default
//! 127.0.0.1:5672). The scenarios every adapter runs are in `suite.rs`.

mod support;

use nuropb_tokio::{Request, Service};
use serde_json::json;
use std::time::Duration;
use support::mesh;

/// A service whose connection the broker closes (`rabbitmqctl close_connection`) while calls are in
/// flight: every call resolves — with its result, or with a transport error — and after the
/// reconnect the service answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_resolves_when_the_broker_closes_the_service_connection() {
    let settings = mesh("closeconn").await;
    let instance = nuropb_tokio::random_hex();
    let service = Service::new("slowpoke")
        .instance_id(instance.clone())
        .prefetch(16)
        .method(support::nap());
    let (served, client) = support::serve_and_connect(&settings, service).await;
    let calls: Vec<_> = (0..40u64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = Request::new("slowpoke", "nap")
                    .params(json!({"ms": i * 10}))
                    .timeout(Duration::from_secs(20));
                client.send(request).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let closed = tokio::task::spawn_blocking(move || support::broker::close_connections(&instance))
        .await
        .unwrap();
    assert_eq!(closed, 1, "the service's connection");
    let answered = support::all_resolve(calls, Duration::from_secs(25)).await;
    assert!(
        answered > 0,
        "some calls finished before the close or after the reconnect"
    );
    // The service reconnects and serves again; the client still works.
    let mut served_again = false;
    for _ in 0..50 {
        let request = Request::new("slowpoke", "nap")
            .params(json!({"ms": 1}))
            .timeout(Duration::from_secs(2));
        if client.send(request).await.is_ok() {
            served_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served_again, "the service did not come back");
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test]
async fn a_service_whose_queue_was_declared_otherwise_is_refused_with_the_reason_at_once() {
    let settings = mesh("declared-otherwise").await;
    // Another participant declared the service queue without NuroPb's dead-letter argument.
    let declare = "import pika, sys\n\
        c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n\
        c.channel().queue_declare('nuropb-otherwise-sq', durable=True)\n\
        c.close()";
    let status = std::process::Command::new(nuropb_tokio::testing::interop::python())
        .args(["-c", declare, &support::url(&settings)])
        .status()
        .expect("run Python with pika (nuropb's own dependency)");
    assert!(status.success(), "pika declared the queue");
    let started = std::time::Instant::now();
    let error = nuropb_tokio::connector(settings.clone())
        .serve(Service::new("otherwise"))
        .await
        .expect_err("RabbitMQ refuses the declaration");
    assert!(
        error.description.contains("406") && error.description.contains("declared otherwise"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "at once");
    support::drop_mesh(&settings).await;
}
