//! The HTTP API: `POST /api/{service}/{method}` (200 and the result), `.../command` (202),
//! `POST /api/events/{topic}` (202), `GET /api/{service}` (describe), `GET /api/events?topic=`
//! (Server-Sent Events), `/healthz`, `/readyz`, `/metrics`. Errors are NuroPb error dicts with
//! the status that fits.

use crate::auth;
use crate::error::Refusal;
use crate::events::{Closer, Outbound, Subscriber};
use crate::frames::CallFrame;
use crate::metrics::Reason;
use crate::state::{Caller, Shared};
use crate::topic;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use nuropb_proto::message::Object;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The address a request comes from (`unknown` when the server was not started with connect
/// info, as [`Gateway::serve`](crate::Gateway::serve) does).
pub(crate) struct Peer(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// A refusal as an HTTP response: the error dict, its status, `Retry-After` for 429 and
/// `WWW-Authenticate` for 401.
pub(crate) fn refusal_response(refusal: Refusal) -> Response {
    let mut response = (refusal.status, axum::Json(refusal.error.to_dict())).into_response();
    if let Some(seconds) = refusal.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if refusal.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The trace id header: read from requests, set on responses.
const TRACE_ID: &str = "x-trace-id";

/// Who calls, from the request's headers: origin allowed, token verified, rate admitted.
async fn caller(gw: &Shared, headers: &HeaderMap, address: &str) -> Result<Caller, Refusal> {
    if let Err(why) = gw.origins.check(headers) {
        gw.metrics.refused(Reason::Origin);
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            nuropb_tokio::ErrorKind::Authorization,
            why,
        ));
    }
    let token = auth::token_of(headers)?.map(|(t, _)| t);
    let caller = gw.identify(token, address).await?;
    gw.admit(&caller)?;
    Ok(caller)
}

/// Reads a JSON body of at most the frame limit; an empty body is `null`. A body must say it is
/// JSON, which a cross-site form cannot.
async fn json_body(gw: &Shared, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
    let max = gw.limits.max_frame_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        gw.metrics.refused(Reason::Oversize);
        Refusal::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes"),
        )
    })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            nuropb_tokio::ErrorKind::Message,
            "the body must be JSON, sent with Content-Type: application/json",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        gw.metrics.refused(Reason::BadFrame);
        Refusal::message(StatusCode::BAD_REQUEST, format!("Error decoding JSON: {e}"))
    })
}

fn trace_id(headers: &HeaderMap) -> Result<String, Refusal> {
    match headers.get(TRACE_ID).map(|v| v.to_str()) {
        None => Ok(nuropb_tokio::random_hex()),
        Some(Ok(t)) if !t.is_empty() && t.len() <= 128 => Ok(t.to_owned()),
        Some(_) => Err(Refusal::invalid(
            "the X-Trace-Id header must be 1 to 128 bytes of text",
        )),
    }
}

/// The params of a call: a JSON object, or nothing.
fn params(body: Value) -> Result<Object, Refusal> {
    match body {
        Value::Object(o) => Ok(o),
        Value::Null => Ok(Object::new()),
        _ => Err(Refusal::invalid(
            "the body must be a JSON object of keyword parameters",
        )),
    }
}

async fn call_frame(
    gw: &Shared,
    headers: &HeaderMap,
    body: Body,
    service: String,
    method: String,
) -> Result<CallFrame, Refusal> {
    let params = params(json_body(gw, headers, body).await?)?;
    Ok(CallFrame {
        service,
        method,
        params,
        context: Object::new(),
        trace_id: trace_id(headers)?,
        timeout: None,
    })
}

fn with_trace(mut response: Response, trace_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(trace_id) {
        response.headers_mut().insert(TRACE_ID, value);
    }
    response
}

/// 202, with the correlation id and trace id of a command or an event.
fn accepted(correlation_id: &str, trace_id: &str) -> Response {
    let body = json!({"correlation_id": correlation_id, "trace_id": trace_id});
    with_trace(
        (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
        trace_id,
    )
}

/// `POST /api/{service}/{method}` (`COMMAND` false): 200 and the result; and
/// `POST /api/{service}/{method}/command` (`COMMAND` true): sent as a command, 202 and its
/// correlation id.
pub(crate) async fn method_call<const COMMAND: bool>(
    State(gw): State<Arc<Shared>>,
    Peer(address): Peer,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        let caller = caller(&gw, &headers, &address).await?;
        let frame = call_frame(&gw, &headers, body, service, method).await?;
        let trace_id = frame.trace_id.clone();
        if COMMAND {
            let correlation_id = gw.command(&caller, frame).await?;
            return Ok(accepted(&correlation_id, &trace_id));
        }
        let result = gw.request(&caller, frame).await?;
        Ok::<_, Refusal>(with_trace(axum::Json(result).into_response(), &trace_id))
    };
    outcome.await.unwrap_or_else(refusal_response)
}

/// `POST /api/events/{topic}`: publishes the body as the event; 202.
pub(crate) async fn publish(
    State(gw): State<Arc<Shared>>,
    Peer(address): Peer,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        let caller = caller(&gw, &headers, &address).await?;
        let event = json_body(&gw, &headers, body).await?;
        let trace_id = trace_id(&headers)?;
        let correlation_id = gw.publish(&caller, &topic, event, Object::new(), trace_id.clone())?;
        Ok::<_, Refusal>(accepted(&correlation_id, &trace_id))
    };
    outcome.await.unwrap_or_else(refusal_response)
}

/// `GET /api/{service}`: the service's description.
pub(crate) async fn describe(
    State(gw): State<Arc<Shared>>,
    Peer(address): Peer,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        caller(&gw, &headers, &address).await?;
        let description = gw.catalog.describe(&gw.mesh, &service, false).await?;
        Ok::<_, Refusal>(axum::Json(&*description).into_response())
    };
    outcome.await.unwrap_or_else(refusal_response)
}

/// The query of `GET /api/events`.
#[derive(Deserialize)]
pub(crate) struct Topic {
    topic: Option<String>,
}

/// Takes a stream's subscription off the hub when the stream is dropped.
struct Unsubscribe {
    gw: Arc<Shared>,
    pattern: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.gw.hub.unsubscribe(&self.pattern, self.id);
        self.gw.metrics.streams(-1);
    }
}

/// `GET /api/events?topic=PATTERN`: the matching mesh events as Server-Sent Events, each an
/// `event` whose data is `{topic, event, context, trace_id}`. A client that does not read is
/// dropped.
pub(crate) async fn events(
    State(gw): State<Arc<Shared>>,
    Peer(address): Peer,
    Query(query): Query<Topic>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = gw.room() {
        return refusal_response(refusal);
    }
    let caller = match caller(&gw, &headers, &address).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal_response(refusal),
    };
    let Some(pattern) = query.topic else {
        return refusal_response(Refusal::invalid(
            "the topic query parameter is missing: /api/events?topic=PATTERN",
        ));
    };
    if let Err(e) = topic::check(&pattern, true) {
        return refusal_response(Refusal::invalid(e));
    }
    let (outbox, rx) = mpsc::channel(gw.limits.outbound_queue.max(1));
    let closer = Arc::new(Closer::default());
    let id = gw.client_id();
    gw.hub.subscribe(
        &pattern,
        id,
        Subscriber {
            outbox,
            user_id: caller.identity.user_id.clone(),
            closer: closer.clone(),
        },
    );
    gw.metrics.streams(1);
    let guard = Unsubscribe {
        gw: gw.clone(),
        pattern,
        id,
    };
    // The stream ends when its token expires, as a socket is closed then.
    let expiry = Box::pin(tokio::time::sleep_until(
        caller
            .identity
            .expires_at
            .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
            .map_or_else(
                || tokio::time::Instant::now() + std::time::Duration::from_secs(86400 * 365),
                |left| tokio::time::Instant::now() + left,
            ),
    ));
    let stream = futures_util::stream::unfold(
        (rx, closer, guard, expiry),
        |(mut rx, closer, guard, mut expiry)| async move {
            let event = tokio::select! {
                biased;
                _ = closer.closed() => None,
                () = &mut expiry => None,
                out = rx.recv() => match out? {
                    Outbound::Event(event) => Some(Event::default().event("event").data(event.payload.as_str())),
                    Outbound::Frame(frame) => Some(Event::default().event("message").data(frame.as_str())),
                },
            }?;
            Some((Ok::<_, Infallible>(event), (rx, closer, guard, expiry)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /healthz`: the gateway runs.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 while the mesh connection is up, else 503.
pub(crate) async fn readyz(State(gw): State<Arc<Shared>>) -> Response {
    if gw.mesh.ready() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "reason": "the mesh connection is down"})),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus' text format.
pub(crate) async fn metrics(State(gw): State<Arc<Shared>>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        gw.metrics.render(),
    )
        .into_response()
}
