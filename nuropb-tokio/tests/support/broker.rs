//! Operating the machine's RabbitMQ from tests, with `rabbitmqctl`.

use std::process::Command;

/// Runs `rabbitmqctl` with `args`; panics when it fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be on the PATH");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Closes (server side) every connection whose name contains `needle`; returns how many.
pub fn close_connections(needle: &str) -> usize {
    let list = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let mut closed = 0;
    for line in list.lines() {
        let Some((pid, name)) = line.split_once('\t') else {
            continue;
        };
        if name.contains(needle) {
            rabbitmqctl(&["close_connection", pid.trim(), "closed by the test"]);
            closed += 1;
        }
    }
    closed
}
