//! The WebSocket's frames: JSON objects `{"type", "payload"}`, with an optional client-chosen
//! `id` that every reply echoes. nuropb-gw's `request` frame and its `hello` event and
//! `response` frame are kept as they are.
//!
//! | client sends | payload | the gateway answers |
//! |---|---|---|
//! | `request` | `service`, `method`, `params`, `trace_id`, `context`, `timeout` (s) | `response` `{trace_id, result, error}` |
//! | `command` | `service`, `method`, `params`, `trace_id`, `context` | `accepted` `{correlation_id, trace_id}` |
//! | `publish` | `topic`, `event`, `trace_id`, `context` | `accepted` `{correlation_id, trace_id}` |
//! | `subscribe` / `unsubscribe` | `topic` (a pattern: `*` one word, `#` any) | `subscribed` / `unsubscribed` `{topic}` |
//! | `describe` | `service` | `description` `{service, description}` |
//! | `authenticate` | `token` | `authenticated` `{user_id, username, expires_at}` |
//!
//! Mesh events arrive as `event` `{topic, event, context, trace_id}`. A frame that cannot be
//! taken (not JSON, unknown type, wrong field types, too large, over the rate) is answered with
//! an `error` frame, `{"type": "error", "payload": {"error", "description"}}`, which also
//! carries the error dict at its top level, as nuropb-gw sends it.

use crate::error::Refusal;
use axum::extract::ws::Utf8Bytes;
use nuropb_proto::message::Object;
use nuropb_tokio::NuropbError;
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// A method call asked for by a `request` or `command` frame.
#[derive(Debug)]
pub(crate) struct CallFrame {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) params: Object,
    pub(crate) context: Object,
    pub(crate) trace_id: String,
    pub(crate) timeout: Option<Duration>,
}

/// What a client's frame asks for.
#[derive(Debug)]
pub(crate) enum Inbound {
    Request(CallFrame),
    Command(CallFrame),
    Publish {
        topic: String,
        event: Value,
        context: Object,
        trace_id: String,
    },
    Subscribe(String),
    Unsubscribe(String),
    Describe(String),
    Authenticate(String),
}

/// A parsed frame: what it asks for, and the id to echo.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) id: Option<Value>,
    pub(crate) inbound: Inbound,
}

/// A frame that cannot be taken: the id and trace id it had (when they could be read), and why.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) id: Option<Value>,
    pub(crate) trace_id: Option<String>,
    pub(crate) refusal: Refusal,
    /// Whether it was a request, to be answered with a `response` frame.
    pub(crate) request: bool,
}

/// The longest trace id or client id the gateway takes.
const MAX_ID_BYTES: usize = 128;

fn text(payload: &mut Map<String, Value>, name: &str) -> Result<String, String> {
    match payload.remove(name).filter(|v| !v.is_null()) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "payload.{name} must be a string, not {}",
            kind(&other)
        )),
        None => Err(format!("payload.{name} is missing")),
    }
}

fn object(payload: &mut Map<String, Value>, name: &str) -> Result<Object, String> {
    match payload.remove(name).filter(|v| !v.is_null()) {
        Some(Value::Object(o)) => Ok(o),
        None => Ok(Object::new()),
        Some(other) => Err(format!(
            "payload.{name} must be an object, not {}",
            kind(&other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The trace id of a payload, or a new one (as nuropb-gw makes one).
fn trace_id(payload: &mut Map<String, Value>) -> Result<String, String> {
    match payload.remove("trace_id").filter(|v| !v.is_null()) {
        None => Ok(nuropb_tokio::random_hex()),
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control) => {
            Ok(s)
        }
        Some(Value::String(_)) => Err(format!(
            "payload.trace_id must be at most {MAX_ID_BYTES} bytes of text"
        )),
        Some(other) => Err(format!(
            "payload.trace_id must be a string, not {}",
            kind(&other)
        )),
    }
}

fn call(payload: &mut Map<String, Value>, trace_id: String) -> Result<CallFrame, String> {
    let timeout = match payload.get("timeout").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s.min(3600.0))),
            _ => return Err("payload.timeout must be a positive number of seconds".into()),
        },
        Some(other) => {
            return Err(format!(
                "payload.timeout must be a number of seconds, not {}",
                kind(other)
            ));
        }
    };
    Ok(CallFrame {
        service: text(payload, "service")?,
        method: text(payload, "method")?,
        params: object(payload, "params")?,
        context: object(payload, "context")?,
        trace_id,
        timeout,
    })
}

/// A `request` or `command` frame as it usually comes, read straight into its parts (no
/// intermediate maps); anything unusual goes to [`parse`]'s general path, which says what is
/// wrong.
#[derive(serde::Deserialize)]
struct Fast<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    id: Option<Value>,
    payload: FastPayload,
}

#[derive(serde::Deserialize)]
struct FastPayload {
    service: String,
    method: String,
    #[serde(default)]
    params: Option<Object>,
    #[serde(default)]
    context: Option<Object>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    timeout: Option<f64>,
}

fn fast(text_frame: &str) -> Option<Frame> {
    let frame: Fast<'_> = serde_json::from_str(text_frame).ok()?;
    let id_ok = match &frame.id {
        None | Some(Value::Number(_)) => true,
        Some(Value::String(s)) => s.len() <= MAX_ID_BYTES,
        Some(_) => false,
    };
    let p = frame.payload;
    let trace_ok = p
        .trace_id
        .as_ref()
        .is_none_or(|t| t.len() <= MAX_ID_BYTES && !t.chars().any(char::is_control));
    let timeout = match p.timeout {
        None => None,
        Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s.min(3600.0))),
        Some(_) => return None,
    };
    if !id_ok || !trace_ok {
        return None;
    }
    let call = CallFrame {
        service: p.service,
        method: p.method,
        params: p.params.unwrap_or_default(),
        context: p.context.unwrap_or_default(),
        trace_id: p.trace_id.unwrap_or_else(nuropb_tokio::random_hex),
        timeout,
    };
    let inbound = match frame.kind.as_ref() {
        "request" => Inbound::Request(call),
        "command" => Inbound::Command(call),
        _ => return None,
    };
    Some(Frame {
        id: frame.id.filter(|v| !v.is_null()),
        inbound,
    })
}

/// Reads a client's frame.
pub(crate) fn parse(text_frame: &str) -> Result<Frame, Box<Bad>> {
    if let Some(frame) = fast(text_frame) {
        return Ok(frame);
    }
    let bad = |id, trace_id, refusal, request| {
        Box::new(Bad {
            id,
            trace_id,
            refusal,
            request,
        })
    };
    let value: Value = serde_json::from_str(text_frame).map_err(|e| {
        bad(
            None,
            None,
            Refusal::message(
                axum::http::StatusCode::BAD_REQUEST,
                format!("Error decoding JSON: {e}"),
            ),
            false,
        )
    })?;
    let Value::Object(mut frame) = value else {
        return Err(bad(
            None,
            None,
            Refusal::invalid(format!(
                "a frame must be a JSON object, not {}",
                kind(&value)
            )),
            false,
        ));
    };
    let id = match frame.remove("id") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Number(_)) => Some(v),
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Some(Value::String(s)),
        Some(_) => {
            return Err(bad(
                None,
                None,
                Refusal::invalid(format!(
                    "id must be a number or a string of at most {MAX_ID_BYTES} bytes"
                )),
                false,
            ));
        }
    };
    let kind_name = match frame.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(bad(
                id,
                None,
                Refusal::invalid(format!("type must be a string, not {}", kind(other))),
                false,
            ));
        }
        None => return Err(bad(id, None, Refusal::invalid("type is missing"), false)),
    };
    let request = kind_name == "request";
    let mut payload = match frame.remove("payload") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            return Err(bad(
                id,
                None,
                Refusal::invalid(format!("payload must be an object, not {}", kind(&other))),
                request,
            ));
        }
    };
    let trace = if matches!(kind_name.as_str(), "request" | "command" | "publish") {
        match trace_id(&mut payload) {
            Ok(t) => Some(t),
            Err(e) => return Err(bad(id, None, Refusal::invalid(e), request)),
        }
    } else {
        None
    };
    let inbound = match kind_name.as_str() {
        "request" => call(&mut payload, trace.clone().unwrap_or_default()).map(Inbound::Request),
        "command" => call(&mut payload, trace.clone().unwrap_or_default()).map(Inbound::Command),
        "publish" => text(&mut payload, "topic").and_then(|topic| {
            Ok(Inbound::Publish {
                topic,
                event: payload.remove("event").unwrap_or(Value::Null),
                context: object(&mut payload, "context")?,
                trace_id: trace.clone().unwrap_or_default(),
            })
        }),
        "subscribe" => text(&mut payload, "topic").map(Inbound::Subscribe),
        "unsubscribe" => text(&mut payload, "topic").map(Inbound::Unsubscribe),
        "describe" => text(&mut payload, "service").map(Inbound::Describe),
        "authenticate" => text(&mut payload, "token").map(Inbound::Authenticate),
        other => Err(format!(
            "unknown frame type {other:?}; the gateway takes request, command, publish, subscribe, unsubscribe, describe and authenticate"
        )),
    };
    match inbound {
        Ok(inbound) => Ok(Frame { id, inbound }),
        Err(e) => Err(bad(id, trace, Refusal::invalid(e), request)),
    }
}

#[derive(Serialize)]
struct Out<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    payload: P,
}

fn frame<P: Serialize>(kind: &str, id: Option<&Value>, payload: P) -> Utf8Bytes {
    serde_json::to_string(&Out { kind, id, payload })
        .unwrap_or_else(|_| r#"{"type":"error","payload":{"error":"NuropbMessageError","description":"a reply could not be serialized"}}"#.to_owned())
        .into()
}

#[derive(Serialize)]
struct ResponsePayload<'a> {
    trace_id: &'a str,
    result: &'a Value,
    error: Option<&'a NuropbError>,
}

/// The `response` to a request: nuropb-gw's `{trace_id, result, error}`.
pub(crate) fn response(
    id: Option<&Value>,
    trace_id: &str,
    outcome: &Result<Value, NuropbError>,
) -> Utf8Bytes {
    let payload = match outcome {
        Ok(result) => ResponsePayload {
            trace_id,
            result,
            error: None,
        },
        Err(error) => ResponsePayload {
            trace_id,
            result: &Value::Null,
            error: Some(error),
        },
    };
    frame("response", id, payload)
}

/// An `error` frame: the error dict in the payload and, as nuropb-gw sends it, at the top level.
pub(crate) fn error(id: Option<&Value>, trace_id: Option<&str>, error: &NuropbError) -> Utf8Bytes {
    #[derive(Serialize)]
    struct ErrorFrame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        payload: ErrorPayload<'a>,
        error: &'a str,
        description: &'a str,
    }
    #[derive(Serialize)]
    struct ErrorPayload<'a> {
        error: &'a str,
        description: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        trace_id: Option<&'a str>,
    }
    let (class, description) = (error.kind.class_name(), error.description.as_str());
    serde_json::to_string(&ErrorFrame {
        kind: "error",
        id,
        payload: ErrorPayload {
            error: class,
            description,
            trace_id,
        },
        error: class,
        description,
    })
    .unwrap_or_default()
    .into()
}

/// The `accepted` reply to a command or an event: its correlation id and trace id.
pub(crate) fn accepted(id: Option<&Value>, correlation_id: &str, trace_id: &str) -> Utf8Bytes {
    frame(
        "accepted",
        id,
        serde_json::json!({"correlation_id": correlation_id, "trace_id": trace_id}),
    )
}

/// Any other reply: `subscribed`, `unsubscribed`, `description`, `authenticated`,
/// and the `hello` event.
pub(crate) fn reply(kind: &str, id: Option<&Value>, payload: Value) -> Utf8Bytes {
    frame(kind, id, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nuropb_gw_request_frames_read_as_they_are() {
        let f = parse(r#"{"type": "request", "payload": {"service": "mesh-test", "method": "test_method", "params": {"param1": "value1"}, "trace_id": "test_trace_id"}}"#).unwrap();
        let Inbound::Request(call) = f.inbound else {
            panic!("a request")
        };
        assert_eq!(
            (
                call.service.as_str(),
                call.method.as_str(),
                call.trace_id.as_str()
            ),
            ("mesh-test", "test_method", "test_trace_id")
        );
        assert_eq!(call.params["param1"], json!("value1"));
    }

    #[test]
    fn every_bad_frame_says_what_is_wrong() {
        let cases = [
            ("not json", "Error decoding JSON"),
            ("[1]", "a frame must be a JSON object, not an array"),
            (r#"{"payload": {}}"#, "type is missing"),
            (r#"{"type": 7}"#, "type must be a string, not a number"),
            (r#"{"type": "dance"}"#, "unknown frame type \"dance\""),
            (
                r#"{"type": "request", "payload": []}"#,
                "payload must be an object",
            ),
            (
                r#"{"type": "request", "payload": {"method": "m"}}"#,
                "payload.service is missing",
            ),
            (
                r#"{"type": "request", "payload": {"service": 1, "method": "m"}}"#,
                "payload.service must be a string, not a number",
            ),
            (
                r#"{"type": "request", "payload": {"service": "s", "method": "m", "params": 3}}"#,
                "payload.params must be an object",
            ),
            (
                r#"{"type": "request", "payload": {"service": "s", "method": "m", "timeout": -1}}"#,
                "positive number",
            ),
            (
                r#"{"type": "subscribe", "payload": {}}"#,
                "payload.topic is missing",
            ),
            (
                r#"{"type": "subscribe", "id": [1]}"#,
                "id must be a number or a string",
            ),
        ];
        for (text, expected) in cases {
            let bad = parse(text).unwrap_err();
            assert!(
                bad.refusal.error.description.contains(expected),
                "{text}: {}",
                bad.refusal.error.description
            );
        }
        let bad =
            parse(r#"{"type": "request", "id": 4, "payload": {"service": "s", "trace_id": "t"}}"#)
                .unwrap_err();
        assert!(bad.request);
        assert_eq!(
            (bad.id, bad.trace_id.as_deref()),
            (Some(json!(4)), Some("t"))
        );
    }

    #[test]
    fn replies_keep_nuropb_gw_key_order_and_echo_the_id() {
        let ok = response(Some(&json!("a")), "t1", &Ok(json!(5)));
        assert_eq!(
            ok.as_str(),
            r#"{"type":"response","id":"a","payload":{"trace_id":"t1","result":5,"error":null}}"#
        );
        let e = NuropbError::new(nuropb_tokio::ErrorKind::Timeout, "late");
        let err = response(None, "t2", &Err(e.clone()));
        assert_eq!(
            err.as_str(),
            r#"{"type":"response","payload":{"trace_id":"t2","result":null,"error":{"error":"NuropbTimeoutError","description":"late"}}}"#
        );
        assert_eq!(
            error(Some(&json!(1)), None, &e).as_str(),
            r#"{"type":"error","id":1,"payload":{"error":"NuropbTimeoutError","description":"late"},"error":"NuropbTimeoutError","description":"late"}"#
        );
    }
}
