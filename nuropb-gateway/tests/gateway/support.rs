//! What the gateway's tests share: a fresh mesh on the machine's RabbitMQ with the Rust
//! `service_example` and a probe service, a gateway in front of it on a loopback port, tokens,
//! and small WebSocket and HTTP clients.
#![allow(dead_code)]

#[path = "../../../nuropb-tokio/tests/support/mod.rs"]
pub mod rabbitmq;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use nuropb_gateway::{Gateway, GatewayBuilder, Identity, JwtVerifier, Limits};
use nuropb_tokio::testing::service_example;
use nuropb_tokio::{
    CallContext, Client, ConnectionSettings, ErrorKind, Method, NuropbError, Service, TokioRuntime,
};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret of the tests' JWTs.
pub const SECRET: &[u8] = b"the gateway tests' secret, 32 bytes or more";

/// A JWT for `user` that expires in `seconds`.
pub fn jwt(user: &str, seconds: u64) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + seconds;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "username": format!("{user}@example.com"), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// nuropb-gw's test tokens, and who they are.
pub const GW_TOKENS: [(&str, &str); 3] = [
    ("accesstokentest1", "user1@example.com"),
    ("accesstokentest2", "user2@example.com"),
    ("accesstokentest3", "user3@example.com"),
];

/// The tests' authorize hook: JWTs signed with [`SECRET`], and nuropb-gw's test tokens.
pub fn authorize(builder: GatewayBuilder) -> GatewayBuilder {
    let verifier = JwtVerifier::hs256(SECRET).unwrap();
    builder.authorize(move |token: String| {
        let result = match GW_TOKENS.iter().find(|(t, _)| *t == token) {
            Some((_, user)) => Ok(Identity::new(*user).username(*user)),
            None => verifier.verify(&token),
        };
        async move { result }
    })
}

/// The probe service: what a call saw, events from a command, a slow method, a hidden one, one
/// its authorize hook refuses, typed parameters, a failure.
pub fn probe() -> Service {
    #[derive(serde::Deserialize)]
    struct Typed {
        n: i64,
    }
    Service::new("probe")
        .description("Tells the tests what it saw")
        .prefetch(32)
        .method(
            Method::new("echo", |ctx: CallContext, p: Value| async move {
                Ok::<_, NuropbError>(json!({"params": p, "context": ctx.context()}))
            })
            .description("returns its parameters and its context")
            .param("text", "str")
            .param_with_default("n", "int", 1),
        )
        .method(Method::new(
            "record",
            |ctx: CallContext, p: Value| async move {
                ctx.add_event("probe.recorded", &p);
                Ok::<_, NuropbError>(true)
            },
        ))
        .method(Method::new(
            "slow",
            |_ctx: CallContext, p: Value| async move {
                let ms = p["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, NuropbError>(ms)
            },
        ))
        .method(
            Method::new("secret", |_ctx: CallContext, _p: Value| async move {
                Ok::<_, NuropbError>("a secret")
            })
            .hidden(),
        )
        .method(
            Method::new("forbidden", |_ctx: CallContext, _p: Value| async move {
                Ok::<_, NuropbError>("never")
            })
            .authorize(|_token: String| async move {
                Err::<Value, _>(NuropbError::new(ErrorKind::Authorization, "not for you"))
            }),
        )
        .method(
            Method::new("typed", |_ctx: CallContext, p: Typed| async move {
                Ok::<_, NuropbError>(p.n * 2)
            })
            .param("n", "int"),
        )
        .method(Method::new(
            "fail",
            |_ctx: CallContext, _p: Value| async move {
                Err::<Value, _>(NuropbError::new(ErrorKind::Handling, "it broke"))
            },
        ))
}

/// A mesh with services, and a gateway in front of it.
pub struct Fixture {
    pub settings: ConnectionSettings,
    pub services: Vec<Client>,
    pub client: Client,
    pub gateway: Gateway,
    pub addr: SocketAddr,
}

/// Test limits: small enough to reach, large enough for the tests' traffic.
pub fn limits() -> Limits {
    Limits {
        rate_per_second: 1000.0,
        rate_burst: 1000.0,
        authenticate_within: Duration::from_secs(2),
        ..Limits::default()
    }
}

impl Fixture {
    /// A fresh mesh named after `name`, with `service_example` as `test_service` and the probe,
    /// and a gateway set up by `setup` (given the builder with the tests' authorize hook).
    pub async fn start(
        name: &str,
        setup: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Fixture {
        let settings = rabbitmq::mesh(name).await;
        let connector = nuropb_tokio::connector(settings.clone());
        let example = connector
            .serve(service_example("test_service", TokioRuntime::shared()).prefetch(8))
            .await
            .expect("service_example serves");
        let probe = connector.serve(probe()).await.expect("the probe serves");
        let client = connector.client().await.expect("a client connects");
        let builder = Gateway::builder(connector)
            .limits(limits())
            .service("test_service")
            .service("probe");
        let gateway = setup(authorize(builder))
            .start()
            .await
            .expect("the gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = gateway.clone();
        tokio::spawn(async move { served.serve(listener).await });
        Fixture {
            settings,
            services: vec![example, probe],
            client,
            gateway,
            addr,
        }
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/websocket", self.addr)
    }

    /// Opens a WebSocket with `headers`.
    pub async fn ws(&self, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        Ws::connect(&self.ws_url(), headers).await
    }

    /// Opens a WebSocket with a JWT for `user` and reads its hello.
    pub async fn ws_as(&self, user: &str) -> Ws {
        let auth = format!("Bearer {}", jwt(user, 3600));
        let mut ws = self
            .ws(&[("Authorization", &auth)])
            .await
            .expect("the socket opens");
        let hello = ws.next().await;
        assert_eq!(hello["payload"]["topic"], "hello", "{hello}");
        ws
    }

    /// An HTTP request.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        http(
            self.addr,
            method,
            path,
            headers,
            body.map(|b| b.to_string()),
        )
        .await
    }

    /// Stops everything and drops the mesh.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
        self.client.shutdown(Duration::from_secs(1)).await;
        for service in &self.services {
            service.shutdown(Duration::from_secs(1)).await;
        }
        rabbitmq::drop_mesh(&self.settings).await;
    }
}

/// A WebSocket client that reads JSON frames.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
}

/// How long a test waits for a frame.
const PATIENCE: Duration = Duration::from_secs(20);

impl Ws {
    /// Connects to `url` with `headers`; the HTTP status when the upgrade is refused.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        let mut request = url.into_client_request().unwrap();
        for (k, v) in headers {
            request.headers_mut().append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, response)) => Ok(Ws {
                stream,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_owned()),
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("the upgrade failed: {e}"),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends text as it is.
    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next JSON frame; panics on a close or after 20 s.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame within 20 s")
                .expect("the socket is open")
                .expect("a frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frames"),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Sends `frame` and reads the next frame.
    pub async fn ask(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.next().await
    }

    /// Waits for the server to close the socket; its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(PATIENCE, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("the socket was not closed within 20 s"),
            }
        }
    }
}

/// An HTTP response: status, headers, body (JSON when it is JSON, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
}

/// One HTTP/1.1 request on a new connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

/// A Server-Sent Events stream: reads `data:` lines.
pub struct EventStream {
    body: hyper::body::Incoming,
    buffer: String,
    pub status: u16,
}

impl EventStream {
    /// Opens `GET path` with `headers`.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut request = hyper::Request::builder()
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        EventStream {
            status: response.status().as_u16(),
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// Whether the server ends the stream within 20 s (events before the end are skipped).
    pub async fn ended(&mut self) -> bool {
        loop {
            match tokio::time::timeout(PATIENCE, self.body.frame()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    /// The data of the next event.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(&data.join("\n")).expect("JSON data");
                }
                continue;
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("an event within 20 s")
                .expect("the stream is open")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}
