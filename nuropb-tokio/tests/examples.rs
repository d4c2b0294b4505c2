//! The README's main job: the `all_in_one` example, run as a user runs it — on the embedded
//! testkit broker when no RabbitMQ URL is given, and on the machine's RabbitMQ when one is.

use std::path::PathBuf;
use std::process::Command;

/// The example binary `cargo test` built beside this test: the newest of `examples/NAME` and, as
/// `cargo test` leaves it, `examples/NAME-<hash>`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples");
    let prefix = format!("{name}-");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file == name
                || file.strip_prefix(&prefix).is_some_and(|hash| {
                    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
                })
        })
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path())
        .unwrap_or_else(|| panic!("the example {name} is not built in {}", dir.display()))
}

fn run_all_in_one(url: Option<&str>) -> String {
    let mut command = Command::new(example("all_in_one"));
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
