//! The WebSocket: nuropb-gw's frames as its tests send them, then every frame type beyond.

use crate::support::{Fixture, GW_TOKENS, Ws, jwt};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nuropb_gw_client_frames_work_unchanged() {
    let fx = Fixture::start("gw-frames", |b| b).await;
    // Its tests' headers: `Bearer :` then the token.
    let mut ws = fx
        .ws(&[("Authorization", "Bearer :accesstokentest1")])
        .await
        .expect("the socket opens");
    let hello = ws.next().await;
    assert_eq!(hello["type"], "event");
    assert_eq!(hello["payload"]["topic"], "hello");
    let event = &hello["payload"]["event"];
    assert_eq!(event["user_id"], GW_TOKENS[0].1);
    assert_eq!(event["username"], GW_TOKENS[0].1);
    assert_eq!(event["session_id"].as_str().map(str::len), Some(32));
    // The frame of its swarm test, byte for byte (the service named as on this mesh).
    let frame = r#"{"type": "request", "payload": {"service": "test_service", "method": "test_method", "params": {"param1": "value1"}, "trace_id": "test_trace_id"}}"#;
    ws.send_text(frame.to_owned()).await;
    assert_eq!(
        ws.next().await,
        json!({"type": "response", "payload": {"trace_id": "test_trace_id",
               "result": "response from test_service.test_method", "error": null}})
    );
    // Its other header spelling, and a second user's socket.
    let mut second = fx
        .ws(&[("Authorization", "Bearer accesstokentest2")])
        .await
        .unwrap();
    assert_eq!(
        second.next().await["payload"]["event"]["user_id"],
        GW_TOKENS[1].1
    );
    // A frame that is not JSON: an error frame, with nuropb-gw's top-level error dict; the
    // socket lives on.
    let reply = ws.ask_text("surely not JSON".into()).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"], "NuropbMessageError");
    assert!(
        reply["description"]
            .as_str()
            .unwrap()
            .starts_with("Error decoding JSON"),
        "{reply}"
    );
    assert_eq!(reply["payload"]["error"], "NuropbMessageError");
    // Without a trace id, one is made, as nuropb-gw does.
    let reply = ws
        .ask(json!({"type": "request", "payload": {"service": "test_service", "method": "test_method", "params": {}}}))
        .await;
    assert_eq!(
        reply["payload"]["trace_id"].as_str().map(str::len),
        Some(32)
    );
    assert_eq!(
        reply["payload"]["result"],
        "response from test_service.test_method"
    );
    // An unknown token is refused at the upgrade (nuropb-gw opens, then closes).
    assert_eq!(
        fx.ws(&[("Authorization", "Bearer :accesstokentest44")])
            .await
            .err(),
        Some(401)
    );
    fx.stop().await;
}

impl Ws {
    async fn ask_text(&mut self, text: String) -> Value {
        self.send_text(text).await;
        self.next().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_type_with_ids_echoed() {
    let fx = Fixture::start("ws-frames", |b| b).await;
    let mut ws = fx.ws_as("alice").await;
    let mut watcher = fx.ws_as("bob").await;

    // request, with an id and a context of the client's own: the service sees the token and the
    // user the gateway sets, under the key NuroPb's authorize hooks read.
    let reply = ws
        .ask(
            json!({"type": "request", "id": 1, "payload": {"service": "probe", "method": "echo",
             "params": {"text": "hi"}, "context": {"lang": "en"}, "trace_id": "t-1"}}),
        )
        .await;
    assert_eq!(reply["type"], "response");
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["payload"]["trace_id"], "t-1");
    let seen = &reply["payload"]["result"];
    assert_eq!(seen["params"], json!({"text": "hi"}));
    assert_eq!(seen["context"]["lang"], "en");
    assert_eq!(seen["context"]["user_id"], "alice");
    assert!(
        seen["context"]["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer ey")
    );
    assert!(seen["context"].get("Authorisation").is_none());

    // The service's authorize hook sees the token: claims come back.
    let reply = ws
        .ask(json!({"type": "request", "id": "c", "payload": {"service": "test_service", "method": "test_requires_user_claims", "params": {}}}))
        .await;
    assert_eq!(reply["payload"]["result"]["sub"], "test_user", "{reply}");

    // subscribe (a pattern), then a command whose handler emits an event: it arrives, once,
    // with AMQP topic semantics.
    let reply = watcher
        .ask(json!({"type": "subscribe", "id": "s1", "payload": {"topic": "probe.#"}}))
        .await;
    assert_eq!(
        reply,
        json!({"type": "subscribed", "id": "s1", "payload": {"topic": "probe.#"}})
    );
    watcher
        .ask(json!({"type": "subscribe", "id": "s2", "payload": {"topic": "*.recorded"}}))
        .await;
    let reply = ws
        .ask(json!({"type": "command", "id": 2, "payload": {"service": "probe", "method": "record", "params": {"x": 7}, "trace_id": "t-2"}}))
        .await;
    assert_eq!(reply["type"], "accepted", "{reply}");
    assert_eq!(reply["id"], 2);
    assert_eq!(reply["payload"]["trace_id"], "t-2");
    assert_eq!(
        reply["payload"]["correlation_id"].as_str().map(str::len),
        Some(32)
    );
    let event = watcher.next_of("event").await;
    assert_eq!(event["payload"]["topic"], "probe.recorded");
    assert_eq!(event["payload"]["event"], json!({"x": 7}));
    // The publisher's token never reaches other clients.
    assert!(
        event["payload"]["context"].get("Authorization").is_none(),
        "{event}"
    );
    assert_eq!(event["payload"]["context"]["user_id"], "alice");

    // publish, seen by the subscriber; a topic outside its patterns is not.
    let reply = ws
        .ask(json!({"type": "publish", "id": 3, "payload": {"topic": "elsewhere.x", "event": 1}}))
        .await;
    assert_eq!(reply["type"], "accepted");
    let reply = ws
        .ask(json!({"type": "publish", "id": 4, "payload": {"topic": "probe.published", "event": {"n": 4}}}))
        .await;
    assert_eq!(reply["id"], 4);
    let event = watcher.next_of("event").await;
    assert_eq!(
        event["payload"]["topic"], "probe.published",
        "elsewhere.x is not delivered"
    );
    assert_eq!(event["payload"]["event"], json!({"n": 4}));

    // unsubscribe: nothing more on that pattern; unsubscribing twice is an error.
    let reply = watcher
        .ask(json!({"type": "unsubscribe", "id": 5, "payload": {"topic": "probe.#"}}))
        .await;
    assert_eq!(reply["type"], "unsubscribed");
    let reply = watcher
        .ask(json!({"type": "unsubscribe", "id": 6, "payload": {"topic": "probe.#"}}))
        .await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["id"], 6);

    // describe: the probe's methods, the hidden one left out.
    let reply = ws
        .ask(json!({"type": "describe", "id": 7, "payload": {"service": "probe"}}))
        .await;
    assert_eq!(reply["type"], "description");
    let methods = reply["payload"]["description"]["methods"]
        .as_object()
        .unwrap();
    assert!(methods.contains_key("echo") && !methods.contains_key("secret"));

    // Requests of one socket run at once: a quick one sent after a slow one answers first.
    ws.send(json!({"type": "request", "id": "slow", "payload": {"service": "probe", "method": "slow", "params": {"ms": 1500}}})).await;
    ws.send(json!({"type": "request", "id": "quick", "payload": {"service": "probe", "method": "echo", "params": {}}})).await;
    assert_eq!(ws.next().await["id"], "quick");
    assert_eq!(ws.next().await["id"], "slow");

    // An error from the service comes in the response.
    let reply = ws
        .ask(json!({"type": "request", "id": 8, "payload": {"service": "probe", "method": "fail", "params": {}}}))
        .await;
    assert_eq!(
        reply["payload"]["error"],
        json!({"error": "NuropbHandlingError", "description": "it broke"})
    );
    assert_eq!(reply["payload"]["result"], Value::Null);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_methods_and_context_overrides_are_refused() {
    let fx = Fixture::start("ws-refusals", |b| b).await;
    let mut ws = fx.ws_as("alice").await;
    let reply = ws
        .ask(json!({"type": "request", "id": 1, "payload": {"service": "probe", "method": "secret", "params": {}}}))
        .await;
    assert_eq!(
        reply["payload"]["error"],
        json!({"error": "NuropbHandlingError", "description": "Unknown method secret"})
    );
    for key in ["Authorization", "authorization", "Authorisation", "user_id"] {
        let reply = ws
            .ask(
                json!({"type": "request", "id": 2, "payload": {"service": "probe", "method": "echo",
                 "params": {}, "context": {key: "Bearer forged"}}}),
            )
            .await;
        assert_eq!(
            reply["payload"]["error"]["error"], "NuropbValidationError",
            "{key}: {reply}"
        );
        assert!(
            reply["payload"]["error"]["description"]
                .as_str()
                .unwrap()
                .contains("set by the gateway")
        );
    }
    // Over HTTP, the same hidden method is not found.
    let auth = format!("Bearer {}", jwt("alice", 600));
    let reply = fx
        .http(
            "POST",
            "/api/probe/secret",
            &[("Authorization", &auth)],
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"], "NuropbHandlingError");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_header_cookie_protocol_and_first_frame() {
    let fx = Fixture::start("ws-auth", |b| b).await;
    let token = jwt("carol", 600);
    let user_of = |hello: Value| hello["payload"]["event"]["user_id"].clone();

    let mut ws = fx
        .ws(&[("Authorization", &format!("Bearer {token}"))])
        .await
        .unwrap();
    assert_eq!(user_of(ws.next().await), "carol");

    let mut ws = fx
        .ws(&[("Cookie", &format!("theme=dark; Authorization={token}"))])
        .await
        .unwrap();
    assert_eq!(user_of(ws.next().await), "carol");

    // Browsers cannot set headers: the token as a subprotocol, next to the gateway's own.
    let mut ws = fx
        .ws(&[("Sec-WebSocket-Protocol", &format!("nuropb, bearer.{token}"))])
        .await
        .unwrap();
    assert_eq!(
        ws.protocol.as_deref(),
        Some("nuropb"),
        "the token is not echoed"
    );
    assert_eq!(user_of(ws.next().await), "carol");

    // Or the first frame: until then, frames are refused; then the hello comes.
    let mut ws = fx.ws(&[]).await.expect("a socket may open to authenticate");
    let reply = ws
        .ask(json!({"type": "request", "id": 1, "payload": {"service": "probe", "method": "echo"}}))
        .await;
    assert_eq!(
        reply["payload"]["error"]["error"],
        "NuropbAuthenticationError"
    );
    let reply = ws
        .ask(json!({"type": "authenticate", "id": 2, "payload": {"token": "not-a-token"}}))
        .await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"], "NuropbAuthenticationError");
    let reply = ws
        .ask(json!({"type": "authenticate", "id": 3, "payload": {"token": token}}))
        .await;
    assert_eq!(reply["type"], "authenticated");
    assert_eq!(reply["payload"]["user_id"], "carol");
    assert_eq!(user_of(ws.next().await), "carol");
    let reply = ws
        .ask(json!({"type": "request", "id": 4, "payload": {"service": "probe", "method": "echo"}}))
        .await;
    assert_eq!(reply["payload"]["result"]["context"]["user_id"], "carol");
    // Renewing for another user is refused.
    let reply = ws
        .ask(json!({"type": "authenticate", "id": 5, "payload": {"token": jwt("mallory", 600)}}))
        .await;
    assert_eq!(reply["type"], "error");

    // A socket that never authenticates is closed with 4001.
    let mut ws = fx.ws(&[]).await.unwrap();
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), nuropb_gateway::CLOSE_EXPIRED);

    // A bad or expired token is refused at the upgrade.
    assert_eq!(
        fx.ws(&[("Authorization", "Bearer nope")]).await.err(),
        Some(401)
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_when_its_token_expires() {
    let fx = Fixture::start("ws-expiry", |b| b).await;
    let mut ws = fx
        .ws(&[("Authorization", &format!("Bearer {}", jwt("dave", 2)))])
        .await
        .unwrap();
    assert_eq!(ws.next().await["payload"]["topic"], "hello");
    let reply = ws
        .ask(json!({"type": "request", "id": 1, "payload": {"service": "probe", "method": "echo"}}))
        .await;
    assert_eq!(reply["payload"]["result"]["context"]["user_id"], "dave");
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "the token has expired");
    fx.stop().await;
}
