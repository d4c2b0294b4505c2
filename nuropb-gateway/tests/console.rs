//! The web console in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from npm), against the `gateway` example as a user starts it — on the embedded testkit broker
//! with the all-in-one services: sign in, list methods, call one, see the result, subscribe,
//! publish, see the event, send a command. Fails when Chromium or Node is missing.

// The tokio adapter's test support: where `cargo test` leaves the example binaries.
#[path = "../../nuropb-tokio/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `playwright-core` in `target/browser-test` (installed there with npm when missing).
fn playwright_core() -> PathBuf {
    let prefix = workspace().join("target/browser-test");
    let module = prefix.join("node_modules/playwright-core");
    if !module.join("package.json").exists() {
        let installed = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg("playwright-core@1.65.2")
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "npm install playwright-core failed: Node and npm are needed"
        );
    }
    module
}

/// Stops the example when the test ends, whatever happens.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_console_works_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: scripts/test.sh installs Debian's chromium"
    );
    let module = playwright_core();
    let mut child = Command::new(support::example("gateway"))
        .env_remove("NUROPB_AMQP_URL")
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway example runs");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let listening: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not {{\"listening\"}}: {line:?}"));
    let url = format!("http://{}/", listening["listening"].as_str().unwrap());
    let screenshot = workspace().join("target/console.png");
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console.cjs"))
        .arg(&module)
        .arg(&url)
        .arg(&screenshot)
        .output()
        .expect("node runs");
    drop(running);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "the console test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(screenshot.exists());
}
