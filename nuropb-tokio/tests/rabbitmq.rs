//! End to end on the machine's RabbitMQ (NUROPB_TEST_AMQP_URL, default 127.0.0.1:5672).

use nuropb_tokio::{
    CallContext, ConnectionSettings, ErrorKind, Method, NuropbError, Request, Service,
};
use serde_json::json;
use std::time::Duration;

fn settings(vhost: &str) -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .unwrap()
        .with_vhost(vhost)
}

async fn mesh(name: &str) -> ConnectionSettings {
    let settings = settings(&format!(
        "nuropb-test-{name}-{}",
        nuropb_tokio::random_hex()
    ));
    nuropb_tokio::create_vhost(&settings)
        .await
        .expect("RabbitMQ's management API must answer");
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .unwrap();
    client.configure_mesh().await.unwrap();
    client.shutdown(Duration::from_secs(1)).await;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_round_trip() {
    let settings = mesh("rr").await;
    let service = Service::new("echo")
        .method(Method::new(
            "echo",
            |ctx: CallContext, p: serde_json::Value| async move {
                Ok::<_, NuropbError>(json!({"params": p, "trace": ctx.trace_id()}))
            },
        ))
        .method(Method::new(
            "slow",
            |_ctx: CallContext, _p: ()| async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok::<_, NuropbError>("late")
            },
        ))
        .prefetch(4)
        .method(Method::new(
            "fail",
            |_ctx: CallContext, _p: ()| async move {
                Err::<(), _>(NuropbError::new(ErrorKind::Validation, "no"))
            },
        ));
    let served = nuropb_tokio::connector(settings.clone())
        .serve(service)
        .await
        .unwrap();
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .unwrap();
    let reply = client
        .send(
            Request::new("echo", "echo")
                .params(json!({"a": 1}))
                .trace_id("t-1"),
        )
        .await
        .unwrap();
    assert_eq!(reply, json!({"params": {"a": 1}, "trace": "t-1"}));
    let err = client.request("echo", "fail", json!({})).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Validation);
    let err = client.request("echo", "nope", json!({})).await.unwrap_err();
    assert_eq!(
        (err.kind, err.description.as_str()),
        (ErrorKind::Handling, "Unknown method nope")
    );
    let err = client.request("nobody", "x", json!({})).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotDelivered);
    let err = client
        .send(Request::new("echo", "slow").timeout(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    nuropb_tokio::delete_vhost(&settings).await.unwrap();
}
