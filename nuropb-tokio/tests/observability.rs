//! Tracing: spans carry service, method, correlation id and trace id; passwords and tokens are
//! never logged. Alone in its file: it owns the process's tracing subscriber.

mod support;

use nuropb_tokio::{
    CallContext, ConnectionSettings, ErrorKind, Method, NuropbError, Request, Service,
};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::broker::rabbitmqctl;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PASSWORD: &str = "pw-9f3a-never-logged";
const TOKEN: &str = "Bearer tok-77c1-never-logged";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_the_call_and_never_a_secret() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mesh = support::mesh("logs").await;
    // A user of our own, with a password to look for in the logs.
    let user = format!("nuropb-log-{}", &nuropb_tokio::random_hex()[..8]);
    let vhost = mesh.vhost.clone();
    let u = user.clone();
    tokio::task::spawn_blocking(move || {
        rabbitmqctl(&["add_user", &u, PASSWORD]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, &u, ".*", ".*", ".*"]);
    })
    .await
    .unwrap();
    let settings = ConnectionSettings {
        username: user.clone(),
        password: PASSWORD.to_owned(),
        ..mesh.clone()
    };
    assert!(
        !format!("{settings} {settings:?}").contains(PASSWORD),
        "settings print without the password"
    );

    let service = Service::new("secretive").method(
        Method::new("who", |ctx: CallContext, _p: Value| async move {
            Ok::<_, NuropbError>(ctx.claims().cloned().unwrap_or(Value::Null))
        })
        .authorize(|token: String| async move {
            if token == TOKEN {
                Ok(json!({"user": "u"}))
            } else {
                Err(NuropbError::new(ErrorKind::Authorization, "no"))
            }
        }),
    );
    let (served, client) = support::serve_and_connect(&settings, service).await;
    let reply = client
        .send(
            Request::new("secretive", "who")
                .context(json!({"Authorization": TOKEN}))
                .trace_id("trace-obs-1"),
        )
        .await
        .unwrap();
    assert_eq!(reply, json!({"user": "u"}));
    // A wrong password fails, and is not logged either.
    let wrong = ConnectionSettings {
        password: format!("{PASSWORD}-wrong"),
        ..settings.clone()
    };
    assert!(nuropb_tokio::connector(wrong).client().await.is_err());

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    let u = user.clone();
    tokio::task::spawn_blocking(move || rabbitmqctl(&["delete_user", &u]))
        .await
        .unwrap();
    support::drop_mesh(&mesh).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(PASSWORD), "a password was logged");
    assert!(!text.contains("tok-77c1"), "a token was logged");
    // The handler's span names the call.
    let call_line = text
        .lines()
        .find(|l| l.contains("nuropb.call"))
        .unwrap_or_else(|| panic!("no nuropb.call span in the logs:\n{text}"));
    for field in [
        "service=secretive",
        "method=who",
        "trace_id=trace-obs-1",
        "correlation_id=",
    ] {
        assert!(
            call_line.contains(field),
            "{field} missing from {call_line}"
        );
    }
}
