//! The recorded Python NuroPb 0.1.8 traffic the golden and replay tests read.
#![allow(dead_code)]

use nuropb_proto::message::json;
use serde_json::Value;
use std::path::PathBuf;

/// `shared/wire/wire-captures` beside the project (`NUROPB_WIRE_CAPTURES` may point elsewhere).
pub fn dir() -> PathBuf {
    std::env::var_os("NUROPB_WIRE_CAPTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // <project>/nuropb-proto → <project>/../shared/wire/wire-captures
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire/wire-captures")
        })
}

/// Capture `name`, parsed; Python's `json` writes bare `NaN` and `Infinity` into some of them,
/// read as `null`.
pub fn read(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("wire capture {} is missing: {e}", path.display()));
    json::from_slice(&text).unwrap_or_else(|e| panic!("capture {name} is not JSON: {e}"))
}
