//! The interop cases against this adapter's `service_example`: the real Python NuroPb client
//! calls every method of a ServiceExample served on async-std.

use nuropb_async_std::testing::{interop, service_example};
use nuropb_async_std::{AsyncStdRuntime, ConnectionSettings, Request};
use serde_json::json;
use std::time::Duration;

#[test]
fn python_client_calls_the_async_std_service_example() {
    async_std::task::block_on(async {
        let base = std::env::var("NUROPB_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let settings = ConnectionSettings::from_url(&base)
            .unwrap()
            .with_vhost(format!(
                "nuropb-test-asyncstd-{}",
                &nuropb_async_std::random_hex()[..12]
            ));
        nuropb_async_std::create_vhost(&settings)
            .await
            .expect("RabbitMQ's management API");
        let connector = nuropb_async_std::connector(settings.clone());
        let setup = connector.client().await.expect("RabbitMQ");
        setup.configure_mesh().await.unwrap();
        setup.shutdown(Duration::from_secs(1)).await;

        let served = connector
            .serve(service_example("test_service", AsyncStdRuntime::shared()).prefetch(8))
            .await
            .unwrap();
        // A Rust client on async-std calls the encrypted method while Python does.
        let rust = connector.client().await.unwrap();
        let rust_calls = async_std::task::spawn(async move {
            let mut results = Vec::new();
            for i in 0..10 {
                let request = Request::new("test_service", "test_requires_encryption")
                    .params(json!({"i": i}))
                    .context(json!({"Authorization": "Bearer r"}))
                    .encrypted();
                results.push(rust.send(request).await);
            }
            rust.shutdown(Duration::from_secs(1)).await;
            results
        });
        let url = format!(
            "amqp://{}:{}@{}:{}/{}",
            settings.username,
            settings.password,
            settings.host,
            settings.port(),
            settings.vhost
        );
        let out = async_std::task::spawn_blocking(move || {
            interop::run_python_client(&url, "test_service", "python.hello", 10)
        })
        .await;
        interop::assert_python_client_saw_service_example(&out, 10);
        for result in rust_calls.await {
            assert_eq!(
                result.unwrap(),
                json!("Result that's to be encrypted in transit")
            );
        }
        served.shutdown(Duration::from_secs(2)).await;
        let _ = nuropb_async_std::delete_vhost(&settings).await;
    });
}
