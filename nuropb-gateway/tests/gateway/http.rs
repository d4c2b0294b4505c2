//! The HTTP API: every route, and the status of each kind of error.

use crate::support::{EventStream, Fixture, jwt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_status() {
    let fx = Fixture::start("http", |b| {
        b.limits(nuropb_gateway::Limits {
            request_timeout: std::time::Duration::from_secs(1),
            ..crate::support::limits()
        })
    })
    .await;
    let auth = format!("Bearer {}", jwt("erin", 600));
    let h = [("Authorization", auth.as_str())];

    // 200 and the result; the trace id comes back.
    let reply = fx
        .http(
            "POST",
            "/api/probe/echo",
            &[h[0], ("X-Trace-Id", "trace-h")],
            Some(json!({"text": "a"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["params"], json!({"text": "a"}));
    assert_eq!(reply.body["context"]["user_id"], "erin");
    assert_eq!(reply.headers["x-trace-id"], "trace-h");
    // An empty body is no parameters.
    let reply = fx
        .http("POST", "/api/test_service/test_method", &h, None)
        .await;
    assert_eq!(reply.body, json!("response from test_service.test_method"));

    // Each kind of error, with the status that fits it and the error dict as the body.
    let cases = [
        (
            "/api/probe/typed",
            json!({"n": "two"}),
            400,
            "NuropbValidationError",
        ),
        (
            "/api/probe/forbidden",
            json!({}),
            403,
            "NuropbAuthorizationError",
        ),
        (
            "/api/no_such_service/m",
            json!({}),
            404,
            "NuropbNotDeliveredError",
        ),
        (
            "/api/probe/no_such_method",
            json!({}),
            404,
            "NuropbHandlingError",
        ),
        (
            "/api/probe/slow",
            json!({"ms": 3000}),
            504,
            "NuropbTimeoutError",
        ),
        ("/api/probe/fail", json!({}), 500, "NuropbHandlingError"),
        (
            "/api/test_service/test_call_again_loop",
            json!({}),
            500,
            "NuropbCallAgainReject",
        ),
    ];
    for (path, body, status, error) in cases {
        let reply = fx.http("POST", path, &h, Some(body)).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (status, Some(error)),
            "{path}: {reply:?}"
        );
        assert!(reply.body["description"].is_string());
    }
    let reply = fx
        .http("POST", "/api/probe/typed", &h, Some(json!({"n": 21})))
        .await;
    assert_eq!(reply.body, json!(42));
    // No token: 401 from the gateway, with WWW-Authenticate.
    let reply = fx
        .http("POST", "/api/probe/echo", &[], Some(json!({})))
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "NuropbAuthenticationError");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    // Bodies: not JSON 400, not declared JSON 415, not an object 400.
    let reply = crate::support::http(
        fx.addr,
        "POST",
        "/api/probe/echo",
        &[h[0], ("content-type", "application/json")],
        Some("{nope".into()),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (400, Some("NuropbMessageError"))
    );
    let reply = crate::support::http(
        fx.addr,
        "POST",
        "/api/probe/echo",
        &[h[0], ("content-type", "text/plain")],
        Some("{}".into()),
    )
    .await;
    assert_eq!(reply.status, 415);
    let reply = fx
        .http("POST", "/api/probe/echo", &h, Some(json!([1, 2])))
        .await;
    assert_eq!(reply.status, 400);

    // A command: 202, and the handler's event arrives on an event stream.
    let mut stream = EventStream::open(fx.addr, "/api/events?topic=probe.*", &h).await;
    assert_eq!(stream.status, 200);
    let reply = fx
        .http(
            "POST",
            "/api/probe/record/command",
            &h,
            Some(json!({"y": 1})),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(
        reply.body["correlation_id"].as_str().map(str::len),
        Some(32)
    );
    let event = stream.next().await;
    assert_eq!(
        (event["topic"].as_str(), &event["event"]),
        (Some("probe.recorded"), &json!({"y": 1}))
    );
    // A published event: 202, and on the stream.
    let reply = fx
        .http(
            "POST",
            "/api/events/probe.posted",
            &h,
            Some(json!({"z": 2})),
        )
        .await;
    assert_eq!(reply.status, 202);
    let event = stream.next().await;
    assert_eq!(
        (event["topic"].as_str(), &event["event"]),
        (Some("probe.posted"), &json!({"z": 2}))
    );
    assert_eq!(event["context"]["user_id"], "erin");
    let reply = fx
        .http("POST", "/api/events/bad.to*pic", &h, Some(json!({})))
        .await;
    assert_eq!(reply.status, 400);
    let reply = EventStream::open(fx.addr, "/api/events", &h).await;
    assert_eq!(reply.status, 400);

    // describe.
    let reply = fx.http("GET", "/api/test_service", &h, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["service_name"], "test_service");
    assert!(reply.body["methods"]["test_method"].is_object());

    // OpenAPI 3.1, from the named services' describe, Python types as JSON Schema.
    let doc = fx.http("GET", "/openapi.json", &[], None).await.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let echo = &doc["paths"]["/api/probe/echo"]["post"];
    let schema = &echo["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(schema["properties"]["text"]["type"], "string");
    assert_eq!(schema["properties"]["n"]["type"], "integer");
    assert_eq!(schema["properties"]["n"]["default"], 1);
    assert_eq!(schema["required"], json!(["text"]));
    assert!(echo["responses"]["504"].is_object());
    assert!(
        doc["paths"]["/api/probe/secret"].is_null(),
        "hidden methods are left out"
    );
    assert!(doc["paths"]["/api/test_service/test_method/command"]["post"].is_object());

    // Health, readiness, metrics.
    assert_eq!(fx.http("GET", "/healthz", &[], None).await.status, 200);
    let ready = fx.http("GET", "/readyz", &[], None).await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
    let metrics = fx.http("GET", "/metrics", &[], None).await.body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(
            r#"nuropb_gateway_requests_total{service="probe",method="echo",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"nuropb_gateway_requests_total{service="probe",method="slow",status="504"} 1"#
    ));
    assert!(metrics.contains("nuropb_gateway_request_seconds_bucket{le=\"+Inf\"}"));
    assert!(metrics.contains("nuropb_gateway_open_event_streams 1"));
    assert!(metrics.contains(r#"nuropb_gateway_refusals_total{reason="authentication"} 1"#));

    // The console and its files.
    let page = fx.http("GET", "/", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.as_str().unwrap().contains("NuroPb console"));
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert_eq!(
        fx.http("GET", "/services", &[], None).await.body,
        json!(["test_service", "probe"])
    );

    // Without its mesh connection the gateway is not ready, and calls fail with 503.
    fx.gateway.shutdown().await;
    let ready = fx.http("GET", "/readyz", &[], None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(fx.http("GET", "/healthz", &[], None).await.status, 200);
    let reply = fx
        .http("POST", "/api/probe/echo", &h, Some(json!({})))
        .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (503, Some("NuropbTransportError"))
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_gateway_passes_tokens_on_for_services_to_check() {
    let fx = Fixture::start("http-anon", |b| b.allow_anonymous(true)).await;
    // No token: anonymous; the service's own authorize hook refuses the call (401).
    let reply = fx
        .http(
            "POST",
            "/api/test_service/test_requires_user_claims",
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (401, Some("NuropbAuthenticationError")),
        "{reply:?}"
    );
    let reply = fx
        .http("POST", "/api/probe/echo", &[], Some(json!({})))
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body["context"].get("user_id").is_none());
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_are_matched_exactly() {
    let fx = Fixture::start("origins", |b| b.allow_origin("https://app.example.com")).await;
    let token = format!("Bearer {}", jwt("frank", 600));
    let ok = fx
        .ws(&[
            ("Authorization", &token),
            ("Origin", "https://app.example.com"),
        ])
        .await;
    assert!(ok.is_ok());
    let own = format!("http://{}", fx.addr);
    assert!(
        fx.ws(&[("Authorization", &token), ("Origin", &own)])
            .await
            .is_ok()
    );
    for evil in [
        "https://evilapp.example.com",
        "https://app.example.com.evil.net",
        "http://app.example.com",
    ] {
        assert_eq!(
            fx.ws(&[("Authorization", &token), ("Origin", evil)])
                .await
                .err(),
            Some(403),
            "{evil}"
        );
        let reply = fx
            .http(
                "POST",
                "/api/probe/echo",
                &[("Authorization", &token), ("Origin", evil)],
                Some(json!({})),
            )
            .await;
        assert_eq!(reply.status, 403, "{evil}");
    }
    // CORS: the preflight of an allowed origin is answered for it, and only it.
    let reply = fx
        .http(
            "OPTIONS",
            "/api/probe/echo",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let reply = fx
        .http(
            "OPTIONS",
            "/api/probe/echo",
            &[
                ("Origin", "https://evil.example.com"),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    let metrics = fx.http("GET", "/metrics", &[], None).await.body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains(r#"nuropb_gateway_refusals_total{reason="origin"} 6"#)
    );
    fx.stop().await;
}
