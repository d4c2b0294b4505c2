//! Container instances as processes: Rust's `service_example` and Python's `ServiceContainer`
//! (`interop/python_container.py`), each printing one JSON line per thing that happens to it.

use super::TestMesh;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A child process whose stdout JSON lines are collected as they come; killed when dropped.
struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: PathBuf,
}

impl Process {
    fn spawn(name: String, mut command: Command) -> Process {
        let stderr = std::env::temp_dir().join(format!("{name}.stderr"));
        let log = std::fs::File::create(&stderr).expect("a stderr file");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && let Ok(mut lines) = collected.lock()
                {
                    lines.push(value);
                }
            }
        });
        Process {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn report(&self) -> String {
        let lines: Vec<String> = self.lines().iter().map(Value::to_string).collect();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- {} printed:\n{}\n--- its stderr ends:\n{}",
            self.name,
            lines.join("\n"),
            tail.join("\n")
        )
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the first line, `{"container": {"instance_id": …}}`, and returns the id.
    async fn instance_id(&self, timeout: Duration) -> String {
        super::wait_for(
            &format!("{}'s first line", self.name),
            timeout,
            || {
                self.lines()
                    .iter()
                    .find_map(|l| l["container"]["instance_id"].as_str().map(str::to_owned))
            },
            || self.report(),
        )
        .await
    }

    /// Waits for the process to end by itself (at most `timeout`); true when it did.
    async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// A Rust container: `service_example --name SERVICE --etcd URL` on the test mesh.
pub struct Instance {
    process: Process,
    pub instance_id: String,
}

impl Instance {
    /// Starts an instance of `service` on `mesh`, electing through `etcd` (standalone when
    /// `None`), with `extra` arguments; returns once it has said who it is.
    pub async fn start(
        mesh: &TestMesh,
        service: &str,
        etcd: Option<&str>,
        extra: &[&str],
    ) -> Instance {
        let mut command = Command::new(env!("CARGO_BIN_EXE_service_example"));
        command.args(["--name", service]);
        if !extra.contains(&"--health-every") {
            // Health checks every second, so that tests see them soon.
            command.args(["--health-every", "1"]);
        }
        command
            .args(extra)
            .env("NUROPB_AMQP_URL", &mesh.url)
            .env("RUST_LOG", "info");
        if let Some(etcd) = etcd {
            command.args(["--etcd", etcd]);
        }
        let process = Process::spawn(super::unique(&format!("rust-{service}")), command);
        let instance_id = process.instance_id(Duration::from_secs(30)).await;
        Instance {
            process,
            instance_id,
        }
    }

    /// Every notice printed so far.
    pub fn notices(&self) -> Vec<Value> {
        self.process
            .lines()
            .into_iter()
            .filter_map(|mut l| l.get_mut("notice").map(Value::take))
            .collect()
    }

    /// The notices whose kind is `kind` (`state`, `elected`, `leader_write`, …).
    pub fn notices_of(&self, kind: &str) -> Vec<Value> {
        self.process
            .lines()
            .into_iter()
            .filter(|l| l["notice"].get(kind).is_some() || l["notice"] == kind)
            .collect()
    }

    /// The last state printed: `(role, phase, etcd)`, the etcd link as JSON text.
    pub fn state(&self) -> Option<(String, String, String)> {
        self.notices().iter().rev().find_map(|n| {
            let s = n.get("state")?;
            Some((
                s["role"].as_str()?.to_owned(),
                s["phase"].as_str()?.to_owned(),
                s["etcd"].to_string(),
            ))
        })
    }

    pub fn role(&self) -> Option<String> {
        self.state().map(|s| s.0)
    }

    pub fn phase(&self) -> Option<String> {
        self.state().map(|s| s.1)
    }

    /// Waits until the state is `role` and `phase` (`None` for any).
    pub async fn wait_state(&self, role: Option<&str>, phase: Option<&str>, timeout: Duration) {
        let what = format!("{} to be {role:?}, {phase:?}", self.instance_id);
        super::wait_for(
            &what,
            timeout,
            || {
                let (r, p, _) = self.state()?;
                (role.is_none_or(|w| w == r) && phase.is_none_or(|w| w == p)).then_some(())
            },
            || self.report(),
        )
        .await
    }

    /// Waits until a notice `check` accepts is printed; returns its whole line.
    pub async fn wait_line(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        super::wait_for(
            what,
            timeout,
            || self.process.lines().into_iter().find(|l| check(l)),
            || self.report(),
        )
        .await
    }

    pub fn report(&self) -> String {
        self.process.report()
    }

    /// Waits until this instance says its leader-only write `what` (`rmq-config-ok`, `health`)
    /// went through; returns the revision.
    pub async fn wait_written(&self, what: &str, timeout: Duration) -> i64 {
        let line = self
            .wait_line(&format!("{what} written"), timeout, |l| {
                let write = &l["notice"]["leader_write"];
                write["what"] == what && write["outcome"].get("written").is_some()
            })
            .await;
        line["notice"]["leader_write"]["outcome"]["written"]["revision"]
            .as_i64()
            .expect("a revision")
    }

    /// SIGKILL: no goodbye, the lease expires on its own.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        self.process.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.process.signal("-CONT");
    }

    /// SIGTERM, and waits for it to exit.
    pub async fn terminate(&mut self) {
        self.process.signal("-TERM");
        assert!(
            self.process.wait_exit(Duration::from_secs(30)).await,
            "the instance did not stop on SIGTERM\n{}",
            self.report()
        );
    }
}

/// `interop/python_container.py`: Python's `ServiceExample` in Python's `ServiceContainer`.
pub struct PythonInstance {
    process: Process,
    pub instance_id: String,
}

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../interop")
        .join(name)
}

impl PythonInstance {
    /// Starts a Python instance of `service` on `mesh`, electing through etcd on `etcd_port`.
    pub async fn start(mesh: &TestMesh, service: &str, etcd_port: u16) -> PythonInstance {
        let mut command = Command::new(nuropb_api::testing::interop::python());
        command.arg(interop_script("python_container.py")).args([
            &mesh.url,
            "127.0.0.1",
            &etcd_port.to_string(),
            service,
        ]);
        let process = Process::spawn(super::unique(&format!("python-{service}")), command);
        let instance_id = process.instance_id(Duration::from_secs(60)).await;
        PythonInstance {
            process,
            instance_id,
        }
    }

    /// The last running state printed (Python's `ContainerRunningState`).
    pub fn state(&self) -> Option<String> {
        self.process
            .lines()
            .iter()
            .rev()
            .find_map(|l| l["state"].as_str().map(str::to_owned))
    }

    /// Whether it last said it leads.
    pub fn is_leader(&self) -> bool {
        self.process
            .lines()
            .iter()
            .rev()
            .find_map(|l| l["leader"].as_bool())
            .unwrap_or(false)
    }

    /// Whether its `start()` returned true: it consumes.
    pub fn started(&self) -> bool {
        self.process
            .lines()
            .iter()
            .any(|l| l["started"] == Value::Bool(true))
    }

    /// Whether its `start()` returned false.
    pub fn started_failed(&self) -> bool {
        self.process
            .lines()
            .iter()
            .any(|l| l["started"] == Value::Bool(false))
    }

    /// Waits until `check` holds of it.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&PythonInstance) -> bool,
    ) {
        super::wait_for(
            what,
            timeout,
            || check(self).then_some(()),
            || self.report(),
        )
        .await
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<Value> {
        self.process.lines()
    }

    pub fn report(&self) -> String {
        self.process.report()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Closes its stdin: `ServiceContainer.stop()` (revokes its lease), then exits.
    pub async fn stop(&mut self) {
        self.process.stdin = None;
        assert!(
            self.process.wait_exit(Duration::from_secs(30)).await,
            "the Python container did not stop\n{}",
            self.report()
        );
    }
}
