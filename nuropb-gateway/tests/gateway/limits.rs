//! The bounds: rate, requests in flight, slow readers, sizes, bad input — each refused with a
//! clear error, the socket living on where it can.

use crate::support::{EventStream, Fixture, jwt, limits};
use nuropb_gateway::Limits;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_and_an_error_frame() {
    let fx = Fixture::start("rate", |b| {
        b.limits(Limits {
            rate_per_second: 0.2,
            rate_burst: 3.0,
            ..limits()
        })
    })
    .await;
    let auth = format!("Bearer {}", jwt("gina", 600));
    for _ in 0..3 {
        let reply = fx
            .http(
                "POST",
                "/api/probe/echo",
                &[("Authorization", &auth)],
                Some(json!({})),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let reply = fx
        .http(
            "POST",
            "/api/probe/echo",
            &[("Authorization", &auth)],
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.body["error"], "NuropbRateLimitError");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    // The same user over a WebSocket: an error frame, and the socket lives on.
    let mut ws = fx.ws_as("gina").await;
    let reply = ws
        .ask(json!({"type": "request", "id": 1, "payload": {"service": "probe", "method": "echo"}}))
        .await;
    assert_eq!(reply["type"], "response");
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["payload"]["error"]["error"], "NuropbRateLimitError");
    let reply = ws
        .ask(json!({"type": "subscribe", "id": 2, "payload": {"topic": "a"}}))
        .await;
    assert_eq!(
        (reply["type"].as_str(), reply["error"].as_str()),
        (Some("error"), Some("NuropbRateLimitError"))
    );
    // Authenticate frames count against the address: the fourth is refused.
    let mut fresh = fx.ws(&[]).await.unwrap();
    let token = jwt("gina2", 600);
    for i in 0..4 {
        let reply = fresh
            .ask(json!({"type": "authenticate", "id": i, "payload": {"token": token}}))
            .await;
        let expected = if i < 3 { "authenticated" } else { "error" };
        assert_eq!(reply["type"], expected, "{reply}");
        if i == 0 {
            assert_eq!(fresh.next().await["payload"]["topic"], "hello");
        }
    }
    // Another user has a bucket of their own.
    let other = format!("Bearer {}", jwt("hank", 600));
    let reply = fx
        .http(
            "POST",
            "/api/probe/echo",
            &[("Authorization", &other)],
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, 200);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_the_socket_lives_on() {
    let fx = Fixture::start("bad-frames", |b| {
        b.limits(Limits {
            max_frame_bytes: 16 * 1024,
            max_in_flight: 2,
            max_subscriptions: 2,
            ..limits()
        })
    })
    .await;
    let mut ws = fx.ws_as("ivan").await;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "Error decoding JSON"),
        ("[]".into(), "must be a JSON object"),
        (json!({"type": "dance", "id": 1}).to_string(), "unknown frame type"),
        (json!({"type": "request", "payload": {"service": 5, "method": "m"}}).to_string(), "payload.service must be a string"),
        (json!({"type": "request", "payload": {"service": "probe", "method": "echo", "params": "x"}}).to_string(), "payload.params must be an object"),
        (json!({"type": "subscribe", "payload": {"topic": "a.b*"}}).to_string(), "inside a word"),
        (json!({"type": "publish", "payload": {"topic": "a.#", "event": 1}}).to_string(), "only in patterns"),
        ("x".repeat(20 * 1024), "the gateway takes at most 16384"),
    ];
    for (text, expected) in cases {
        ws.send_text(text.clone()).await;
        let reply = ws.next().await;
        let description = reply["payload"]["error"]["description"]
            .as_str()
            .or(reply["payload"]["description"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            description.contains(expected),
            "{}: {reply}",
            &text[..text.len().min(60)]
        );
    }
    // A binary frame that is not UTF-8.
    use futures_util::SinkExt;
    ws.stream
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            0xff, 0xfe,
        ]))
        .await
        .unwrap();
    assert_eq!(ws.next().await["type"], "error");
    // Subscriptions are bounded.
    for (i, topic) in ["a", "b", "c"].iter().enumerate() {
        let reply = ws
            .ask(json!({"type": "subscribe", "id": i, "payload": {"topic": topic}}))
            .await;
        assert_eq!(
            reply["type"],
            if i < 2 { "subscribed" } else { "error" },
            "{reply}"
        );
    }
    // Requests in flight are bounded: the third of three slow ones is refused at once.
    for id in 0..3 {
        ws.send(json!({"type": "request", "id": id, "payload": {"service": "probe", "method": "slow", "params": {"ms": 800}}})).await;
    }
    let refused = ws.next().await;
    assert_eq!(refused["id"], 2);
    assert!(
        refused["payload"]["error"]["description"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{refused}"
    );
    let mut done: Vec<Value> = vec![ws.next().await["id"].clone(), ws.next().await["id"].clone()];
    done.sort_by_key(|v| v.as_i64());
    assert_eq!(done, vec![json!(0), json!(1)]);
    // After all of it the socket still serves.
    let reply = ws
        .ask(json!({"type": "request", "id": "ok", "payload": {"service": "probe", "method": "echo", "params": {"text": "still here"}}}))
        .await;
    assert_eq!(reply["payload"]["result"]["params"]["text"], "still here");
    // A body over the limit: 413.
    let auth = format!("Bearer {}", jwt("ivan", 600));
    let big = json!({"text": "y".repeat(20 * 1024)});
    let reply = fx
        .http(
            "POST",
            "/api/probe/echo",
            &[("Authorization", &auth)],
            Some(big),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (413, Some("NuropbMessageError"))
    );
    // A message too large to read past closes the socket with 1009.
    ws.send_text("z".repeat(200 * 1024)).await;
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    let metrics = fx.http("GET", "/metrics", &[], None).await.body;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(r#"nuropb_gateway_refusals_total{reason="oversize"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"nuropb_gateway_refusals_total{reason="in_flight"} 1"#));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed() {
    let fx = Fixture::start("slow-reader", |b| {
        b.limits(Limits {
            outbound_queue: 8,
            write_timeout: Duration::from_secs(2),
            ..limits()
        })
    })
    .await;
    let mut ws = fx.ws_as("judy").await;
    let reply = ws
        .ask(json!({"type": "subscribe", "payload": {"topic": "flood.#"}}))
        .await;
    assert_eq!(reply["type"], "subscribed");
    let open = || async {
        let m = fx.http("GET", "/metrics", &[], None).await.body;
        m.as_str().unwrap().to_owned()
    };
    assert!(open().await.contains("nuropb_gateway_open_sockets 1"));
    // The client stops reading; the mesh publishes far more than socket buffers hold.
    let payload = "p".repeat(64 * 1024);
    for i in 0..400 {
        fx.client
            .publish_event("flood.x", json!({"i": i, "p": payload}), json!({}), None)
            .expect("publish");
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The gateway closes it rather than queue without end.
    let mut closed = false;
    for _ in 0..200 {
        let m = open().await;
        if m.contains(r#"nuropb_gateway_refusals_total{reason="slow_reader"} 1"#)
            && m.contains("nuropb_gateway_open_sockets 0")
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the slow reader was not closed: {}", open().await);
    drop(ws);
    // Others are served as before.
    let mut other = fx.ws_as("ken").await;
    let reply = other
        .ask(json!({"type": "request", "payload": {"service": "probe", "method": "echo"}}))
        .await;
    assert_eq!(reply["payload"]["error"], Value::Null);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_bounded_and_event_streams_end_with_their_token() {
    let fx = Fixture::start("clients", |b| {
        b.limits(Limits {
            max_clients: 2,
            ..limits()
        })
    })
    .await;
    let short = format!("Bearer {}", jwt("liz", 2));
    let mut stream = EventStream::open(
        fx.addr,
        "/api/events?topic=%23",
        &[("Authorization", &short)],
    )
    .await;
    assert_eq!(stream.status, 200);
    let _ws = fx.ws_as("max").await;
    // Two open: a third client is refused.
    let long = format!("Bearer {}", jwt("ned", 600));
    assert_eq!(fx.ws(&[("Authorization", &long)]).await.err(), Some(503));
    let third =
        EventStream::open(fx.addr, "/api/events?topic=a", &[("Authorization", &long)]).await;
    assert_eq!(third.status, 503);
    // The stream's token expires: the stream ends, and makes room.
    assert!(
        stream.ended().await,
        "the event stream did not end at its token's expiry"
    );
    drop(stream);
    let mut admitted = false;
    for _ in 0..50 {
        if fx.ws(&[("Authorization", &long)]).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted);
    fx.stop().await;
}
