//! What the integration tests share: the broker, a fresh mesh per test, the Python interpreter.
#![allow(dead_code)]

use nuropb_tokio::ConnectionSettings;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The machine's RabbitMQ (`NUROPB_TEST_AMQP_URL`, default 127.0.0.1:5672), with `vhost`.
pub fn settings(vhost: &str) -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .expect("NUROPB_TEST_AMQP_URL must be an AMQP URL")
        .with_vhost(vhost)
}

/// A fresh vhost with the mesh configured. A broker that does not answer fails the test.
pub async fn mesh(name: &str) -> ConnectionSettings {
    let settings = settings(&format!(
        "nuropb-test-{name}-{}",
        &nuropb_tokio::random_hex()[..12]
    ));
    nuropb_tokio::create_vhost(&settings)
        .await
        .expect("RabbitMQ's management API must answer (scripts/test.sh enables it)");
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .expect("RabbitMQ must answer on NUROPB_TEST_AMQP_URL");
    client.configure_mesh().await.expect("mesh configured");
    client.shutdown(Duration::from_secs(1)).await;
    settings
}

/// Removes a test vhost.
pub async fn drop_mesh(settings: &ConnectionSettings) {
    let _ = nuropb_tokio::delete_vhost(settings).await;
}

/// The AMQP URL of `settings`, password included, for Python.
pub fn url(settings: &ConnectionSettings) -> String {
    let vhost = if settings.vhost == "/" {
        "%2f".to_owned()
    } else {
        settings.vhost.clone()
    };
    format!(
        "amqp://{}:{}@{}:{}/{}",
        settings.username,
        settings.password,
        settings.host,
        settings.port(),
        vhost
    )
}

fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A Python interpreter with `nuropb==0.1.8`: `NUROPB_PYTHON`, or a venv made in `target/`.
/// Without one the test fails: interoperability is not optional.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("NUROPB_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = workspace_target().join("nuropb-venv");
    let python = venv.join("bin/python");
    let has_nuropb = |python: &Path| {
        Command::new(python)
            .args(["-c", "import nuropb"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_nuropb(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv failed: Python 3 is needed for the interop tests"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "nuropb==0.1.8",
            ])
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "pip install nuropb==0.1.8 failed"
        );
    }
    assert!(
        has_nuropb(&python),
        "{} cannot import nuropb",
        python.display()
    );
    python
}

/// A script of `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}
pub mod broker;
