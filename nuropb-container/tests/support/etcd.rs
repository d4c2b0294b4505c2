//! A real etcd for the tests: Debian's `etcd-server`, on loopback ports of its own with a
//! temporary data directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An etcd process; killed, and its data removed, when dropped.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    /// Starts an etcd of its own and waits until it answers.
    pub async fn start() -> Etcd {
        let dir = std::env::temp_dir().join(super::unique("nuropb-etcd"));
        let mut etcd = Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.spawn();
        etcd.wait_healthy().await;
        etcd
    }

    /// A configuration for an etcd on free ports that is not started (for "etcd down at start").
    pub fn not_started() -> Etcd {
        Etcd {
            child: None,
            dir: std::env::temp_dir().join(super::unique("nuropb-etcd")),
            client_port: free_port(),
            peer_port: free_port(),
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// Starts the process (again, on the same ports and data).
    pub fn spawn(&mut self) {
        let name = "nuropb-test";
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        std::fs::create_dir_all(&self.dir).expect("a temporary directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .expect("the etcd log");
        let child = Command::new("etcd")
            .args(["--name", name, "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run etcd ({e}): scripts/test.sh installs Debian's etcd-server")
            });
        self.child = Some(child);
    }

    /// Waits until etcd answers (at most 20 s).
    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut client) = etcd_client::Client::connect([self.endpoint()], None).await
                && client.status().await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd at {} did not answer within 20 s; its log: {}",
                self.endpoint(),
                std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (SIGKILL: no goodbye to its clients); the data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The etcd a test runs on: the one the test command started (`NUROPB_TEST_ETCD`), or else one
/// of the test's own, stopped with it.
pub enum TestEtcd {
    /// Started by the test command.
    Shared(String),
    /// The test's own.
    Own(Etcd),
}

impl TestEtcd {
    /// Its endpoint.
    pub fn endpoint(&self) -> String {
        match self {
            TestEtcd::Shared(url) => url.clone(),
            TestEtcd::Own(etcd) => etcd.endpoint(),
        }
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        match self {
            TestEtcd::Shared(url) => url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
                .expect("NUROPB_TEST_ETCD ends with a port"),
            TestEtcd::Own(etcd) => etcd.port(),
        }
    }
}

/// The etcd for a test that does not stop or restart it.
pub async fn shared_etcd() -> TestEtcd {
    match std::env::var("NUROPB_TEST_ETCD") {
        Ok(url) => TestEtcd::Shared(url),
        Err(_) => TestEtcd::Own(Etcd::start().await),
    }
}
