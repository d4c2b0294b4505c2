//! A service and a client on one mesh, as Python NuroPb's `examples/all_in_one.py`: the service
//! `quick-example` offers `test_method` and `test_requires_user_claims` (behind an authorize
//! hook); the client calls both, then the service shuts down.
//!
//! ```sh
//! cargo run -p nuropb-tokio --example all_in_one          # on an embedded testkit broker
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-tokio --example all_in_one      # on RabbitMQ
//! ```

mod common;

use nuropb_tokio::{CallContext, Method, NuropbError, Request, Service};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The stub of a token check: any bearer token gets these claims.
async fn claims_from_token(_token: String) -> Result<Value, NuropbError> {
    Ok(
        json!({"sub": "test_user", "user_id": "test_user", "scope": "openid, profile", "roles": "user, admin"}),
    )
}

#[derive(Deserialize)]
struct TestMethod {
    param1: Value,
    param2: Value,
}

fn quick_example() -> Service {
    Service::new("quick-example")
        .method(
            Method::new(
                "test_requires_user_claims",
                |ctx: CallContext, _p: Value| async move {
                    let user = ctx
                        .claims()
                        .and_then(|c| c["user_id"].as_str())
                        .unwrap_or("nobody")
                        .to_owned();
                    Ok::<_, NuropbError>(format!("hello {user}"))
                },
            )
            .param("kwargs", "Any")
            .authorize(claims_from_token),
        )
        .method(
            Method::new(
                "test_method",
                |_ctx: CallContext, p: TestMethod| async move {
                    Ok::<_, NuropbError>(json!({
                        "param1": p.param1,
                        "param2": p.param2,
                        "reply": "response from test_method",
                    }))
                },
            )
            .param("param1", "")
            .param("param2", "Dict"),
        )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    tracing::info!("All in one example starting");
    let mesh = common::Mesh::start().await?;
    let connector = nuropb_tokio::connector(mesh.settings.clone());

    let service = connector.serve(quick_example()).await?;
    tracing::info!("Service Ready");
    let client = connector.client().await?;
    tracing::info!("Client connected");

    let response = client
        .send(
            Request::new("quick-example", "test_requires_user_claims")
                .context(json!({"Authorization": "Bearer 1234567890"})),
        )
        .await?;
    tracing::info!(%response, "Response");
    println!("{response}");
    assert_eq!(response, json!("hello test_user"));

    let response = client
        .request(
            "quick-example",
            "test_method",
            json!({"param1": "value1", "param2": {"param2a": "value2a"}}),
        )
        .await?;
    tracing::info!(%response, "Response");
    println!("{response}");
    assert_eq!(response["reply"], json!("response from test_method"));

    client.shutdown(Duration::from_secs(5)).await;
    service.shutdown(Duration::from_secs(5)).await;
    tracing::info!("All in one example done");
    Ok(())
}
