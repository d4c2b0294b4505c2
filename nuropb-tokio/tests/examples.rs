//! The README's main job: the `all_in_one` example, run as a user runs it — on the embedded
//! testkit broker when no RabbitMQ URL is given, and on the machine's RabbitMQ when one is.

mod support;

use std::process::Command;

fn run_all_in_one(url: Option<&str>) -> String {
    let mut command = Command::new(support::example("all_in_one"));
    command.env_remove("NUROPB_AMQP_URL");
    if let Some(url) = url {
        command.env("NUROPB_AMQP_URL", url);
    }
    let output = command.output().expect("run all_in_one");
    assert!(
        output.status.success(),
        "all_in_one failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const EXPECTED: &str = "\"hello test_user\"\n{\"param1\":\"value1\",\"param2\":{\"param2a\":\"value2a\"},\"reply\":\"response from test_method\"}\n";

#[test]
fn all_in_one_runs_on_the_embedded_broker() {
    assert_eq!(run_all_in_one(None), EXPECTED);
}

#[test]
fn all_in_one_runs_on_rabbitmq() {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let (server, _) = base.rsplit_once('/').unwrap();
    assert_eq!(
        run_all_in_one(Some(&format!("{server}/nuropb-example"))),
        EXPECTED
    );
}

/// `nuropb-proto`'s `blocking` example — an endpoint driven by hand over blocking `std::net`, no
/// async runtime — serving and calling a method, with `url` as its broker.
fn run_blocking(url: &str) {
    let output = Command::new(support::example("blocking"))
        .env("NUROPB_AMQP_URL", url)
        .output()
        .expect("run blocking");
    assert!(
        output.status.success(),
        "blocking failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "\"hello std::net\"\n"
    );
}

#[test]
fn the_core_runs_without_an_async_runtime_on_the_testkit_broker() {
    let server = nuropb_testkit::server::spawn("127.0.0.1:0").expect("the testkit server");
    run_blocking(&format!("amqp://guest:guest@{}/%2f", server.addr));
}

#[tokio::test]
async fn the_core_runs_without_an_async_runtime_on_rabbitmq() {
    let settings = support::settings("nuropb-example-blocking");
    nuropb_tokio::create_vhost(&settings)
        .await
        .expect("RabbitMQ's management API must answer");
    let url = support::url(&settings);
    tokio::task::spawn_blocking(move || run_blocking(&url))
        .await
        .unwrap();
    support::drop_mesh(&settings).await;
}
