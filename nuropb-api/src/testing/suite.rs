//! The end-to-end suite every runtime adapter runs, on RabbitMQ and on the testkit broker.
//!
//! Each scenario takes a [`SuiteEnv`] — a runtime and a broker — makes its own mesh on a fresh
//! vhost, and panics with a message saying what went wrong. The adapters' test files call every
//! scenario under their executors, so that both adapters are held to the same behaviour by the
//! same code.

use crate::helpers;
use crate::runtime::Runtime;
use crate::service::{Method, Service};
use crate::settings::ConnectionSettings;
use crate::{CallContext, Client, Connector, EventSpec, IncomingEvent, Outcome, Request};
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use nuropb_proto::{ErrorKind, NuropbError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the suite runs: a runtime, and a broker.
#[derive(Clone)]
pub struct SuiteEnv {
    /// The runtime under test.
    pub runtime: Arc<dyn Runtime>,
    /// How to reach the broker; each scenario replaces the vhost with its own.
    pub broker: ConnectionSettings,
    /// Whether vhosts must be created through RabbitMQ's management API (on the testkit broker
    /// every vhost a client opens exists).
    pub management: bool,
}

impl SuiteEnv {
    /// A connector to the scenario's mesh.
    fn connector(&self, settings: &ConnectionSettings) -> Connector {
        Connector::new(self.runtime.clone(), settings.clone())
    }

    /// A fresh vhost with the mesh configured.
    async fn mesh(&self, scenario: &str) -> ConnectionSettings {
        let settings = self.broker.clone().with_vhost(format!(
            "nuropb-suite-{scenario}-{}",
            &crate::random_hex()[..12]
        ));
        if self.management {
            helpers::create_vhost(&settings)
                .await
                .expect("the management API must answer");
        }
        helpers::declare_mesh(self.runtime.clone(), &settings)
            .await
            .expect("the broker must answer and configure the mesh");
        settings
    }

    async fn drop_mesh(&self, settings: &ConnectionSettings) {
        if self.management {
            let _ = helpers::delete_vhost(settings).await;
        }
    }

    async fn sleep(&self, duration: Duration) {
        self.runtime.sleep_until(Instant::now() + duration).await;
    }

    /// `future`, or a panic naming `what` after 30 s.
    async fn within<T>(&self, what: &str, future: impl Future<Output = T>) -> T {
        let timeout = self
            .runtime
            .sleep_until(Instant::now() + Duration::from_secs(30));
        futures_util::pin_mut!(future);
        match futures_util::future::select(future, timeout).await {
            futures_util::future::Either::Left((value, _)) => value,
            futures_util::future::Either::Right(_) => panic!("{what}: nothing after 30 s"),
        }
    }
}

fn kind_of(result: Result<Value, NuropbError>) -> ErrorKind {
    match result {
        Ok(value) => panic!("expected an error, got {value}"),
        Err(e) => e.kind,
    }
}

/// Requests, results and errors: typed errors keep their kind, unknown and private methods are
/// handling errors, an unbound service is not delivered, a late response is a timeout.
pub async fn requests_and_errors(env: &SuiteEnv) {
    let settings = env.mesh("requests").await;
    let runtime = env.runtime.clone();
    let service = Service::new("svc")
        .prefetch(8)
        .method(Method::new(
            "echo",
            |ctx: CallContext, p: Value| async move {
                Ok::<_, NuropbError>(
                    json!({"params": p, "context": ctx.context(), "trace_id": ctx.trace_id()}),
                )
            },
        ))
        .method(Method::new(
            "invalid",
            |_ctx: CallContext, _p: ()| async move {
                Err::<(), _>(NuropbError::new(ErrorKind::Validation, "bad input"))
            },
        ))
        .method(Method::new("slow", move |_ctx: CallContext, _p: ()| {
            let runtime = runtime.clone();
            async move {
                runtime
                    .sleep_until(Instant::now() + Duration::from_secs(3))
                    .await;
                Ok::<_, NuropbError>("late")
            }
        }))
        .method(Method::new(
            "_private",
            |_ctx: CallContext, _p: ()| async move { Ok::<_, NuropbError>(1) },
        ));
    let served = env.connector(&settings).serve(service).await.unwrap();
    let client = env.connector(&settings).client().await.unwrap();

    let reply = client
        .send(
            Request::new("svc", "echo")
                .params(json!({"a": [1, "é"]}))
                .context(json!({"k": "v"}))
                .trace_id("t1"),
        )
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"params": {"a": [1, "é"]}, "context": {"k": "v"}, "trace_id": "t1"})
    );
    let err = client
        .request("svc", "invalid", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.description.as_str()),
        (ErrorKind::Validation, "bad input")
    );
    let err = client.request("svc", "nope", json!({})).await.unwrap_err();
    assert_eq!(
        (err.kind, err.description.as_str()),
        (ErrorKind::Handling, "Unknown method nope")
    );
    assert_eq!(
        kind_of(client.request("svc", "_private", json!({})).await),
        ErrorKind::Handling
    );
    assert_eq!(
        kind_of(client.request("nobody", "x", json!({})).await),
        ErrorKind::NotDelivered
    );
    let late = client
        .send(Request::new("svc", "slow").timeout(Duration::from_millis(300)))
        .await;
    assert_eq!(kind_of(late), ErrorKind::Timeout);
    // Typed results.
    let typed: HashMap<String, Value> = client
        .call(Request::new("svc", "echo").params(json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(typed["params"], json!({"x": 1}));

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// State the command and event scenario observes.
#[derive(Default)]
struct Seen {
    commands: Vec<Value>,
    events: Vec<(String, Value)>,
}

/// Commands are handled without an answer; events reach the services whose patterns match.
pub async fn commands_and_events(env: &SuiteEnv) {
    let settings = env.mesh("events").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let service = Service::new("sink")
        .method(Method::new("record", move |_ctx: CallContext, p: Value| {
            s1.lock().unwrap().commands.push(p);
            async { Ok::<_, NuropbError>(()) }
        }))
        .method(Method::new("seen", move |_ctx: CallContext, _p: ()| {
            let seen = s2.lock().unwrap();
            let reply = json!({"commands": seen.commands, "events": seen.events});
            async move { Ok::<_, NuropbError>(reply) }
        }))
        .subscribe("orders.*.placed")
        .subscribe("audit.#")
        .on_event(move |event: IncomingEvent, _ctx| {
            s3.lock().unwrap().events.push((event.topic, event.event));
            async { Ok(()) }
        });
    let served = env.connector(&settings).serve(service).await.unwrap();
    let client = env.connector(&settings).client().await.unwrap();
    client
        .command(Request::new("sink", "record").params(json!({"n": 1})))
        .unwrap();
    for topic in [
        "orders.eu.placed",
        "orders.eu.shipped",
        "audit.a.b.c",
        "other",
    ] {
        client
            .publish_event(topic, json!({"topic": topic}), json!({}), None)
            .unwrap();
    }
    // Wait until the command and the two matching events arrived.
    let mut last = Value::Null;
    for _ in 0..200 {
        last = client.request("sink", "seen", json!({})).await.unwrap();
        if last["commands"].as_array().unwrap().len() == 1
            && last["events"].as_array().unwrap().len() == 2
        {
            break;
        }
        env.sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["commands"], json!([{"n": 1}]));
    let mut topics: Vec<&str> = last["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap())
        .collect();
    topics.sort();
    assert_eq!(topics, ["audit.a.b.c", "orders.eu.placed"]);
    // An unroutable command: the broker returns it; the command call itself succeeded.
    client.command(Request::new("nobody", "x")).unwrap();

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// Encryption (described on demand, refused in plaintext) and authorization (claims to the
/// handler; a missing token, a refused token).
pub async fn encryption_and_authorization(env: &SuiteEnv) {
    let settings = env.mesh("secure").await;
    let key = nuropb_proto::crypto::keys::generate(2048).unwrap();
    let service = Service::new("vault")
        .private_key(key)
        .method(
            Method::new("secret", |ctx: CallContext, p: Value| async move {
                Ok::<_, NuropbError>(json!({"echo": p, "encrypted": ctx.encrypted()}))
            })
            .requires_encryption(),
        )
        .method(
            Method::new("whoami", |ctx: CallContext, _p: Value| async move {
                Ok::<_, NuropbError>(ctx.claims().cloned().unwrap_or(Value::Null))
            })
            .authorize(|token: String| async move {
                match token.strip_prefix("Bearer ") {
                    Some("good") => Ok(json!({"user": "alice"})),
                    _ => Err(NuropbError::new(ErrorKind::Authorization, "token rejected")),
                }
            }),
        );
    let served = env.connector(&settings).serve(service).await.unwrap();
    let client = env.connector(&settings).client().await.unwrap();

    let plain = client.request("vault", "secret", json!({"s": 1})).await;
    assert_eq!(
        kind_of(plain),
        ErrorKind::Handling,
        "a plaintext call of an encrypted method"
    );
    let reply = client
        .send(
            Request::new("vault", "secret")
                .params(json!({"s": 1}))
                .encrypted(),
        )
        .await
        .unwrap();
    assert_eq!(reply, json!({"echo": {"s": 1}, "encrypted": true}));
    assert!(client.has_public_key("vault").await.unwrap());
    assert!(client.requires_encryption("vault", "secret").await.unwrap());

    let whoami = |token: Option<&str>| {
        let mut request = Request::new("vault", "whoami");
        if let Some(token) = token {
            request = request.context(json!({"Authorization": token}));
        }
        client.send(request)
    };
    assert_eq!(
        whoami(Some("Bearer good")).await.unwrap(),
        json!({"user": "alice"})
    );
    assert_eq!(
        kind_of(whoami(Some("Bearer bad")).await),
        ErrorKind::Authorization
    );
    assert_eq!(kind_of(whoami(None).await), ErrorKind::Authentication);

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// Call-again once succeeds (the redelivery is handled); in a loop it ends in
/// `NuropbCallAgainReject`. A success outcome publishes its events and the handler's; a failure
/// drops the handler's.
pub async fn call_again_and_events_of_outcomes(env: &SuiteEnv) {
    let settings = env.mesh("again").await;
    let attempts = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let service = Service::new("retry")
        .method(Method::raw("once", move |ctx: CallContext, _p| {
            let mut attempts = attempts.lock().unwrap();
            let n = attempts.entry(ctx.correlation_id().to_owned()).or_default();
            *n += 1;
            let outcome = if *n == 1 {
                Outcome::CallAgain("again".into())
            } else {
                Outcome::Ok(json!(*n))
            };
            async move { outcome }
        }))
        .method(Method::raw("always", |_ctx: CallContext, _p| async {
            Outcome::CallAgain("again".into())
        }))
        .method(Method::raw("succeed", |ctx: CallContext, _p| {
            ctx.add_event("outcome.ctx", &json!("from ctx"));
            async {
                Outcome::Success {
                    result: json!("early"),
                    events: vec![EventSpec::new("outcome.success", json!("from success"))],
                }
            }
        }))
        .method(Method::new("fail", |ctx: CallContext, _p: ()| {
            ctx.add_event("outcome.dropped", &json!("never"));
            async { Err::<(), _>(NuropbError::new(ErrorKind::Exception, "failed")) }
        }));
    let served = env.connector(&settings).serve(service).await.unwrap();
    let (events_tx, mut events) = mpsc::unbounded::<(String, Value)>();
    let listener = env
        .connector(&settings)
        .listener(
            vec!["outcome.#".into()],
            move |event: IncomingEvent, _ctx| {
                let _ = events_tx.unbounded_send((event.topic, event.event));
                async { Ok(()) }
            },
        )
        .await
        .unwrap();
    let client = env.connector(&settings).client().await.unwrap();

    assert_eq!(
        client.request("retry", "once", json!({})).await.unwrap(),
        json!(2)
    );
    let err = client
        .request("retry", "always", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::CallAgainReject);
    assert_eq!(
        kind_of(client.request("retry", "fail", json!({})).await),
        ErrorKind::Exception
    );
    assert_eq!(
        client.request("retry", "succeed", json!({})).await.unwrap(),
        json!("early")
    );
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            env.within("events of a success", events.next())
                .await
                .unwrap(),
        );
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("outcome.ctx".to_owned(), json!("from ctx")),
            ("outcome.success".to_owned(), json!("from success")),
        ]
    );

    client.shutdown(Duration::from_secs(1)).await;
    listener.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// Describe: the declared methods, parameters and versions; hidden methods are neither described
/// nor callable.
pub async fn describe(env: &SuiteEnv) {
    let settings = env.mesh("describe").await;
    let service = Service::new("catalog")
        .version("2.1.0")
        .description("Things for sale")
        .method(
            Method::new("find", |_ctx: CallContext, p: Value| async move {
                Ok::<_, NuropbError>(p)
            })
            .description("finds things")
            .param("query", "str")
            .param_with_default("limit", "int", 10),
        )
        .method(
            Method::new("audit", |_ctx: CallContext, _p: ()| async {
                Ok::<_, NuropbError>(1)
            })
            .hidden(),
        );
    let served = env.connector(&settings).serve(service).await.unwrap();
    let client = env.connector(&settings).client().await.unwrap();
    let description = client.describe("catalog", true).await.unwrap();
    assert_eq!(description.service_name.as_deref(), Some("catalog"));
    assert_eq!(description.service_version.as_deref(), Some("2.1.0"));
    assert_eq!(description.description.as_deref(), Some("Things for sale"));
    assert!(!description.encrypted_methods);
    assert_eq!(description.public_key, None);
    assert_eq!(description.methods.keys().collect::<Vec<_>>(), ["find"]);
    let find = serde_json::to_value(&description.methods["find"]).unwrap();
    assert_eq!(
        find,
        json!({"description": "finds things", "requires_encryption": false, "parameters": {"type": "object",
            "properties": [["query", {"type": "str", "description": "", "default": ""}],
                           ["limit", {"type": "int", "description": "", "default": 10}]],
            "required": ["query"]}})
    );
    assert_eq!(
        kind_of(client.request("catalog", "audit", json!({})).await),
        ErrorKind::Handling
    );

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// Handlers run concurrently up to the prefetch; while they wait, the same endpoint's client side
/// keeps working; a graceful shutdown lets running handlers finish.
pub async fn concurrency_and_shutdown(env: &SuiteEnv) {
    let settings = env.mesh("concurrency").await;
    let runtime = env.runtime.clone();
    let running = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let (gate_tx, gate_rx) = futures_channel::oneshot::channel::<()>();
    let gate = Arc::new(Mutex::new(Some(gate_rx)));
    let service = Service::new("busy")
        .prefetch(4)
        .method(Method::new("hold", move |_ctx: CallContext, _p: ()| {
            let (running, peak, gate, runtime) =
                (r.clone(), p.clone(), gate.clone(), runtime.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Hold until the test opens the gate (only the first holder waits on it).
                let wait = gate.lock().unwrap().take();
                match wait {
                    Some(gate) => {
                        let _ = gate.await;
                    }
                    None => {
                        runtime
                            .sleep_until(Instant::now() + Duration::from_millis(200))
                            .await
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, NuropbError>("done")
            }
        }))
        .method(Method::new("ping", |_ctx: CallContext, _p: ()| async {
            Ok::<_, NuropbError>("pong")
        }));
    let served: Client = env.connector(&settings).serve(service).await.unwrap();
    let other = Service::new("other")
        .method(Method::new("ping", |_ctx: CallContext, _p: ()| async {
            Ok::<_, NuropbError>("pong")
        }));
    let other = env.connector(&settings).serve(other).await.unwrap();
    let client = env.connector(&settings).client().await.unwrap();
    let holds: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let (tx, rx) = oneshot::channel();
            env.runtime.spawn(Box::pin(async move {
                let _ = tx.send(client.request("busy", "hold", json!({})).await);
            }));
            rx
        })
        .collect();
    // While its handlers are all busy, the service's own handle calls out and gets its answer.
    for _ in 0..100 {
        if running.load(Ordering::SeqCst) >= 4 {
            break;
        }
        env.sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "four handlers at once with prefetch 4"
    );
    assert_eq!(
        served.request("other", "ping", json!({})).await.unwrap(),
        json!("pong")
    );
    let _ = gate_tx.send(());
    for hold in holds {
        assert_eq!(
            env.within("a held call", hold).await.unwrap().unwrap(),
            json!("done")
        );
    }
    // Graceful shutdown: a handler in flight finishes; then the service is gone.
    let late = {
        let client = client.clone();
        let (tx, rx) = oneshot::channel();
        env.runtime.spawn(Box::pin(async move {
            let _ = tx.send(client.request("busy", "hold", json!({})).await);
        }));
        rx
    };
    for _ in 0..100 {
        if running.load(Ordering::SeqCst) >= 1 {
            break;
        }
        env.sleep(Duration::from_millis(10)).await;
    }
    served.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        env.within("the call in flight at shutdown", late)
            .await
            .unwrap()
            .unwrap(),
        json!("done")
    );
    // The service queue outlives its consumers: a call now waits there, and times out.
    let after = client
        .send(Request::new("busy", "ping").timeout(Duration::from_millis(300)))
        .await;
    assert_eq!(kind_of(after), ErrorKind::Timeout);

    client.shutdown(Duration::from_secs(1)).await;
    other.shutdown(Duration::from_secs(1)).await;
    env.drop_mesh(&settings).await;
}

/// Every scenario, one after the other.
pub async fn all(env: &SuiteEnv) {
    requests_and_errors(env).await;
    commands_and_events(env).await;
    encryption_and_authorization(env).await;
    call_again_and_events_of_outcomes(env).await;
    describe(env).await;
    concurrency_and_shutdown(env).await;
}
