//! Test stubs, as Python NuroPb's `nuropb.testing.stubs`.

use crate::context::CallContext;
use crate::runtime::Runtime;
use crate::service::{Method, Service};
use nuropb_proto::crypto::keys;
use nuropb_proto::mesh::Outcome;
use nuropb_proto::{ErrorKind, NuropbError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The stub of Python's `get_claims_from_token`: any bearer token gets the same claims.
///
/// ```
/// use futures_util::FutureExt;
/// use nuropb_api::testing::stubs::claims_from_token;
/// let claims = claims_from_token("any".into()).now_or_never().unwrap().unwrap();
/// assert_eq!(claims["user_id"], "test_user");
/// ```
pub async fn claims_from_token(_token: String) -> Result<Value, NuropbError> {
    Ok(json!({
        "sub": "test_user",
        "user_id": "test_user",
        "scope": "openid, profile",
        "roles": "user, admin",
    }))
}

/// The methods of Python's `ServiceExample` — `test_method`, `do_async_task`,
/// `test_async_method`, `test_success_error`, `test_requires_user_claims`,
/// `test_requires_encryption`, `test_call_again_error`, `test_call_again_loop` — with the same
/// results and errors, as a service named `name` with a fresh 2048-bit RSA key. `runtime` serves
/// `do_async_task`'s sleep.
pub fn service_example(name: &str, runtime: Arc<dyn Runtime>) -> Service {
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
        let (n, c, runtime) = (n.clone(), c.clone(), runtime.clone());
        async move {
            if let Some(seconds) = p.get("sleep").and_then(Value::as_f64) {
                let pause = Duration::from_secs_f64(seconds.clamp(0.0, 3600.0));
                runtime.sleep_until(Instant::now() + pause).await;
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
            async move { Ok::<_, NuropbError>(r) }
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
