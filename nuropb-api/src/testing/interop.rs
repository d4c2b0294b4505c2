//! Driving the real Python NuroPb 0.1.8 from tests: the interpreter, the scripts in `interop/`,
//! and what a Python client must see from a Rust `service_example`.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (where `interop/` and `target/` are).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Python interpreter with `nuropb==0.1.8`: `NUROPB_PYTHON`, or a venv made in
/// `target/nuropb-venv`. Panics without one: interoperability is not optional.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("NUROPB_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = workspace().join("target/nuropb-venv");
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
            "python3 -m venv failed: Python 3 is needed"
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

/// A script of `interop/`.
pub fn script(name: &str) -> PathBuf {
    workspace().join("interop").join(name)
}

/// Runs the script `interop/{name}` with `args` under [`python`] (blocking) and reads the one
/// JSON document it prints; panics, with what it wrote to stderr, when it fails.
pub fn run_script(name: &str, args: &[&str]) -> Value {
    let output = Command::new(python())
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{name} printed no JSON document: {e}"))
}

/// Runs `interop/python_client.py` against the service `service` at `url` (blocking): every
/// ServiceExample method, describe, encrypted calls (`repeat` more at once), a command and an
/// event on `topic`. Returns what it printed.
pub fn run_python_client(url: &str, service: &str, topic: &str, repeat: usize) -> Value {
    run_script(
        "python_client.py",
        &[url, service, topic, &repeat.to_string()],
    )
}

/// Checks what the Python client saw of a Rust `service_example` named `test_service`: the same
/// results and error classes as Python's own `ServiceExample`.
pub fn assert_python_client_saw_service_example(out: &Value, repeat: usize) {
    let result = |method: &str| out[method].clone();
    let ok = |text: &str| json!({"result": text, "error": null});
    assert_eq!(
        result("test_method"),
        ok("response from test_service.test_method")
    );
    assert_eq!(
        result("do_async_task"),
        ok("response from test_service.test_method")
    );
    assert_eq!(
        result("test_async_method"),
        ok("response from test_service.test_async_method")
    );
    assert_eq!(
        result("test_success_error"),
        ok("response from test_service.test_success_error")
    );
    let again = &out["test_call_again_error"]["result"];
    assert_eq!(
        again["success"],
        json!("response from test_service.test_call_again_error")
    );
    assert_eq!(again["param1"], json!("value1"));
    assert_eq!(
        result("test_call_again_loop")["error"]["error"],
        json!("NuropbCallAgainReject")
    );
    assert_eq!(
        result("no_such_method")["error"],
        json!({"error": "NuropbHandlingError", "description": "Unknown method no_such_method"})
    );
    assert_eq!(
        result("_private")["error"]["error"],
        json!("NuropbHandlingError")
    );
    assert_eq!(
        result("test_requires_user_claims")["result"]["sub"],
        json!("test_user")
    );
    assert_eq!(
        result("claims_without_token")["error"]["error"],
        json!("NuropbAuthenticationError")
    );
    assert_eq!(
        out["describe"],
        json!({
            "service_name": "test_service",
            "encrypted_methods": true,
            "methods": ["do_async_task", "test_async_method", "test_call_again_error", "test_call_again_loop",
                        "test_method", "test_requires_encryption", "test_requires_user_claims", "test_success_error"],
            "has_public_key": true,
            "requires_encryption": true,
        })
    );
    assert_eq!(
        result("test_requires_encryption")["result"],
        json!("Result that's to be encrypted in transit")
    );
    assert_eq!(
        out["encrypted_repeats"],
        json!(vec!["Result that's to be encrypted in transit"; repeat])
    );
}
