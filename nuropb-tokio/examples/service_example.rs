//! The methods of Python NuroPb's `nuropb.testing.stubs.ServiceExample`, with the same results and
//! errors, served under `--name` (default `test_service`).
//!
//! ```sh
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-tokio --example service_example -- --name test_service --event-binding 'test-event'
//! ```
//! Without `NUROPB_AMQP_URL` it runs on an embedded testkit broker and prints its URL.

mod common;

use nuropb_proto::crypto::keys;
use nuropb_tokio::{CallContext, ErrorKind, Method, NuropbError, Outcome, Service};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The stub of Python's `get_claims_from_token`: any token gets the same claims.
async fn claims_from_token(_token: String) -> Result<Value, NuropbError> {
    Ok(json!({
        "sub": "test_user",
        "user_id": "test_user",
        "scope": "openid, profile",
        "roles": "user, admin",
    }))
}

/// Builds the service; `calls` counts method calls as Python's `_method_call_count`.
pub fn service_example(name: &str) -> Service {
    let calls = Arc::new(AtomicU64::new(0));
    let raise_call_again = Arc::new(AtomicBool::new(true));
    let name = name.to_owned();
    let kwargs = |m: Method| m.param("kwargs", "Any");
    let reply = |name: &str, method: &str| format!("response from {name}.{method}");

    let (n, c) = (name.clone(), calls.clone());
    let test_method = Method::new("test_method", move |_ctx: CallContext, _p: Value| {
        c.fetch_add(1, Ordering::SeqCst);
        let r = reply(&n, "test_method");
        async move { Ok::<_, NuropbError>(r) }
    });
    let (n, c) = (name.clone(), calls.clone());
    let do_async_task = Method::new("do_async_task", move |_ctx: CallContext, p: Value| {
        let (n, c) = (n.clone(), c.clone());
        async move {
            if let Some(seconds) = p.get("sleep").and_then(Value::as_f64) {
                tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
                return Ok::<_, NuropbError>("performed task: sleep".to_owned());
            }
            c.fetch_add(1, Ordering::SeqCst);
            Ok(reply(&n, "test_method"))
        }
    });
    let (n, c) = (name.clone(), calls.clone());
    let test_async_method =
        Method::new("test_async_method", move |_ctx: CallContext, _p: Value| {
            c.fetch_add(1, Ordering::SeqCst);
            let r = reply(&n, "test_async_method");
            async move {
                tokio::task::yield_now().await;
                Ok::<_, NuropbError>(r)
            }
        });
    let (n, c) = (name.clone(), calls.clone());
    let test_success_error = Method::raw("test_success_error", move |_ctx: CallContext, _p| {
        c.fetch_add(1, Ordering::SeqCst);
        let result = Value::String(reply(&n, "test_success_error"));
        async move {
            Outcome::Success {
                result,
                events: Vec::new(),
            }
        }
    });
    let c = calls.clone();
    let test_requires_user_claims = Method::new(
        "test_requires_user_claims",
        move |ctx: CallContext, _p: Value| {
            c.fetch_add(1, Ordering::SeqCst);
            let claims = ctx.claims().cloned().unwrap_or(Value::Null);
            async move { Ok::<_, NuropbError>(claims) }
        },
    )
    .authorize(claims_from_token);
    let c = calls.clone();
    let test_requires_encryption = Method::new(
        "test_requires_encryption",
        move |_ctx: CallContext, _p: Value| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, NuropbError>("Result that's to be encrypted in transit") }
        },
    )
    .authorize(claims_from_token)
    .requires_encryption();
    let (n, c, again) = (name.clone(), calls.clone(), raise_call_again.clone());
    let test_call_again_error = Method::new(
        "test_call_again_error",
        move |_ctx: CallContext, p: Value| {
            let count = c.fetch_add(1, Ordering::SeqCst) + 1;
            // Once per service instance, as in Python: the flag prevents a loop.
            let first = again.swap(false, Ordering::SeqCst);
            let success = reply(&n, "test_call_again_error");
            async move {
                if first {
                    return Err(NuropbError::new(ErrorKind::CallAgain, "Test Call Again"));
                }
                let mut result = p.as_object().cloned().unwrap_or_default();
                result.insert("success".into(), json!(success));
                result.insert("count".into(), json!(count));
                Ok(Value::Object(result))
            }
        },
    );
    let c = calls.clone();
    let test_call_again_loop = Method::new(
        "test_call_again_loop",
        move |_ctx: CallContext, _p: Value| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(NuropbError::new(ErrorKind::CallAgain, "Test Call Again")) }
        },
    );

    Service::new(name)
        .method(kwargs(test_method))
        .method(kwargs(do_async_task))
        .method(kwargs(test_async_method))
        .method(kwargs(test_success_error))
        .method(kwargs(test_requires_user_claims))
        .method(kwargs(test_requires_encryption))
        .method(kwargs(test_call_again_error))
        .method(kwargs(test_call_again_loop))
        .private_key(keys::generate(2048).expect("an RSA key"))
}

#[derive(clap::Parser)]
#[command(about = "Serves the methods of Python NuroPb's ServiceExample")]
struct Args {
    /// The service name.
    #[arg(long, default_value = "test_service")]
    name: String,
    /// Topic patterns of events to subscribe to (repeatable).
    #[arg(long = "event-binding")]
    event_bindings: Vec<String>,
    /// A fixed instance id (single-instance mode).
    #[arg(long)]
    instance_id: Option<String>,
    /// How many calls to handle at once.
    #[arg(long, default_value_t = 1)]
    prefetch: u16,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let args = <Args as clap::Parser>::parse();
    let mesh = common::Mesh::start().await?;
    let mut service = service_example(&args.name).prefetch(args.prefetch);
    for pattern in &args.event_bindings {
        service = service.subscribe(pattern.clone());
    }
    if let Some(id) = args.instance_id {
        service = service.instance_id(id);
    }
    let service = service.on_event(|event, _ctx| async move {
        // One JSON line per event, for scripts and tests to read.
        println!(
            "{}",
            json!({"topic": event.topic, "event": event.event, "target": event.target,
                   "context": event.context, "trace_id": event.trace_id})
        );
        Ok(())
    });
    let served = nuropb_tokio::connector(mesh.settings.clone())
        .serve(service)
        .await?;
    println!("{} ready on {}", served.name(), mesh.settings);
    tokio::signal::ctrl_c().await?;
    served.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
