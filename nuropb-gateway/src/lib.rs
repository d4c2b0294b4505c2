//! The NuroPb mesh for browsers and REST consumers: a WebSocket at `/websocket` (compatible
//! with Python's `nuropb-gw` 0.1.4 frames, and beyond them commands, event subscriptions and
//! describe), an HTTP API under `/api`, Server-Sent Events, an OpenAPI document made from the
//! services' own descriptions, Prometheus metrics and a web console — an axum [`Router`] to
//! serve alone or to mount in an application.
//!
//! ```no_run
//! use nuropb_gateway::{Gateway, Identity};
//! use nuropb_tokio::{ConnectionSettings, NuropbError};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = ConnectionSettings::from_url("amqp://guest:guest@127.0.0.1:5672/nuropb")?;
//! let gateway = Gateway::builder(nuropb_tokio::connector(settings))
//!     // Any identity provider: a token in, who it is out.
//!     .authorize(|token: String| async move {
//!         if token == "let-me-in" {
//!             Ok(Identity::new("user-1"))
//!         } else {
//!             Err(NuropbError::new(nuropb_tokio::ErrorKind::Authentication, "unknown token"))
//!         }
//!     })
//!     .allow_origin("https://app.example.com")
//!     .service("orders")
//!     .start()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener).await?;
//! # Ok(()) }
//! ```
//!
//! # The WebSocket at `/websocket`
//!
//! Frames are JSON objects `{"type", "payload"}` with an optional client-chosen `id` that every
//! reply echoes. On open (once authenticated) the gateway sends nuropb-gw's hello:
//! `{"type": "event", "payload": {"topic": "hello", "event": {"session_id", "user_id", "username"}}}`.
//!
//! | client sends | payload | the gateway answers |
//! |---|---|---|
//! | `request` | `service`, `method`, `params`, `trace_id`, `context`, `timeout` (s) | `response` `{trace_id, result, error}` |
//! | `command` | `service`, `method`, `params`, `trace_id`, `context` | `accepted` `{correlation_id, trace_id}` |
//! | `publish` | `topic`, `event`, `trace_id`, `context` | `accepted` `{correlation_id, trace_id}` |
//! | `subscribe` / `unsubscribe` | `topic`: a pattern, `*` one word, `#` any | `subscribed` / `unsubscribed` `{topic}` |
//! | `describe` | `service` | `description` `{service, description}` |
//! | `authenticate` | `token` | `authenticated` `{user_id, username, expires_at}`, then the hello |
//!
//! Mesh events on a subscribed pattern arrive as `{"type": "event", "payload": {"topic",
//! "event", "context", "trace_id"}}` — once per socket however many of its patterns match, with
//! token keys taken out of the publisher's context, and only to the users named when the
//! event's target is a list of user ids. Requests of one socket run concurrently. A frame
//! that cannot be taken (not JSON, an unknown type, a field of the wrong type, too large, over
//! the rate) is answered with `{"type": "error", "payload": {"error", "description"}}`, the
//! error dict also at the top level as nuropb-gw sends it — or, for a request, with a
//! `response` carrying the error — and the socket lives on.
//!
//! The token comes from the `Authorization` header (`Bearer TOKEN`, or nuropb-gw's
//! `Bearer :TOKEN`), an `Authorization` cookie, a `Sec-WebSocket-Protocol` of `bearer.TOKEN`
//! offered next to `nuropb` (browsers cannot set headers on a WebSocket), or an `authenticate`
//! frame within [`Limits::authenticate_within`]. Services get it as
//! `context["Authorization"] = "Bearer TOKEN"` — the key NuroPb's authorize hooks read — with
//! `context["user_id"]`; a client's own context may set neither. A socket is closed with code
//! [`CLOSE_EXPIRED`] (4001) when its token expires; an `authenticate` frame with a fresh token
//! for the same user moves that on.
//!
//! # HTTP
//!
//! `POST /api/{service}/{method}` with the params as the JSON body answers 200 and the result;
//! an error answers the NuroPb error dict with the status that fits (validation and message 400,
//! authentication 401, authorization 403, not delivered or an unknown method 404, rate 429 with
//! `Retry-After`, timeout 504, anything else 500). `POST /api/{service}/{method}/command` and
//! `POST /api/events/{topic}` answer 202; `GET /api/{service}` the description; `GET
//! /api/events?topic=PATTERN` streams events as Server-Sent Events; `GET /openapi.json` is an
//! OpenAPI 3.1 document made from the named services' describe; `/healthz`, `/readyz` (ready
//! while the mesh connection is) and `/metrics` (Prometheus). `/` is the web console.
//!
//! Only methods a service describes can be called: hidden ones are refused at the gateway,
//! whether the service would refuse them or not. `/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json` and the console's files need no token: keep them from the public at the
//! network where that matters.
//!
//! Layout: `mesh` (every call on the mesh), `catalog` (descriptions, so which methods
//! may be called), `state` (what routes share: identify, admit, context), `socket` and
//! `frames` (the WebSocket), `http` (the REST routes and event streams), `events` (the hub
//! fanning mesh events out), `openapi`, `metrics`, `console`, and the bounds in [`Limits`].
#![forbid(unsafe_code)]

mod auth;
mod catalog;
mod config;
mod console;
mod error;
mod events;
mod frames;
mod http;
mod jwt;
mod mesh;
mod metrics;
mod openapi;
mod origin;
mod rate;
mod socket;
mod state;
mod topic;

pub use auth::{Authorizer, Identity, strip_bearer};
pub use config::Limits;
pub use jwt::JwtVerifier;
pub use socket::CLOSE_EXPIRED;

use axum::Router;
use axum::routing::{get, post};
use events::Hub;
use nuropb_tokio::{Connector, ErrorKind, NuropbError};
use state::Shared;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Sets a gateway up; [`GatewayBuilder::start`] connects it to the mesh.
#[must_use]
pub struct GatewayBuilder {
    connector: Connector,
    authorizer: Option<Authorizer>,
    anonymous: bool,
    origins: Vec<String>,
    limits: Limits,
    services: Vec<String>,
    events: Vec<String>,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("anonymous", &self.anonymous)
            .field("origins", &self.origins)
            .field("services", &self.services)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Verifies tokens with `hook`: a token (without `Bearer `) in, its [`Identity`] out.
    pub fn authorize<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Identity, NuropbError>> + Send + 'static,
    {
        self.authorizer = Some(auth::authorizer(hook));
        self
    }

    /// Verifies tokens with `authorizer` (e.g. [`JwtVerifier::authorizer`]).
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Lets clients without a token in, as anonymous. Without an authorize hook too, tokens
    /// that clients do send are passed on to services unverified, for services' own authorize
    /// hooks to check.
    pub fn allow_anonymous(mut self, yes: bool) -> Self {
        self.anonymous = yes;
        self
    }

    /// Lets pages of `origin` (`scheme://host[:port]`, matched exactly) use the gateway from a
    /// browser; the gateway's own origin always may.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Sets the bounds.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Names a service that the OpenAPI document and the console show.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.services.push(name.into());
        self
    }

    /// The topic patterns of mesh events clients may receive (`#`, all, by default); none to
    /// receive no events.
    pub fn events(mut self, patterns: Vec<String>) -> Self {
        self.events = patterns;
        self
    }

    /// Connects to the mesh. Refused without an authorize hook unless anonymous clients are
    /// allowed, and for an event pattern that is not one.
    pub async fn start(self) -> Result<Gateway, NuropbError> {
        if self.authorizer.is_none() && !self.anonymous {
            return Err(NuropbError::new(
                ErrorKind::Validation,
                "the gateway needs an authorize hook, or anonymous clients allowed",
            ));
        }
        for pattern in &self.events {
            topic::check(pattern, true).map_err(|e| NuropbError::new(ErrorKind::Validation, e))?;
        }
        let hub = Arc::new(Hub::default());
        let fan_out = hub.clone();
        let mesh = mesh::Mesh::connect(&self.connector, self.events, move |event| {
            fan_out.publish(event)
        })
        .await?;
        let shared = Shared::new(
            mesh,
            hub,
            self.limits,
            self.authorizer,
            self.anonymous,
            origin::Origins {
                allowed: self.origins,
            },
            self.services,
        );
        Ok(Gateway {
            shared: Arc::new(shared),
        })
    }
}

/// A gateway connected to the mesh: its [`Router`] serves the routes.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("services", &self.shared.services)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway on the mesh `connector` reaches.
    pub fn builder(connector: Connector) -> GatewayBuilder {
        GatewayBuilder {
            connector,
            authorizer: None,
            anonymous: false,
            origins: Vec::new(),
            limits: Limits::default(),
            services: Vec::new(),
            events: vec!["#".to_owned()],
        }
    }

    /// The routes, with CORS for the allowed origins: mount them in an application
    /// (`app.merge(gateway.router())`), or serve them with [`Gateway::serve`]. Serve them with
    /// connect info (`into_make_service_with_connect_info::<SocketAddr>()`) so that anonymous
    /// clients are rate-limited by address.
    pub fn router(&self) -> Router {
        let origins: Vec<_> = self
            .shared
            .origins
            .allowed
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderName::from_static("x-trace-id"),
            ])
            .expose_headers([axum::http::HeaderName::from_static("x-trace-id")])
            .allow_credentials(true);
        Router::new()
            .route("/", get(console::index))
            .route("/console.js", get(console::script))
            .route("/console.css", get(console::style))
            .route("/favicon.ico", get(console::favicon))
            .route("/services", get(console::services))
            .route("/websocket", get(socket::upgrade))
            .route("/healthz", get(http::healthz))
            .route("/readyz", get(http::readyz))
            .route("/metrics", get(http::metrics))
            .route("/openapi.json", get(openapi::openapi))
            .route("/api/events", get(http::events))
            .route("/api/events/{topic}", post(http::publish))
            .route("/api/{service}", get(http::describe))
            .route("/api/{service}/{method}", post(http::method_call::<false>))
            .route(
                "/api/{service}/{method}/command",
                post(http::method_call::<true>),
            )
            .layer(cors)
            .with_state(self.shared.clone())
    }

    /// Serves the routes on `listener` until the process ends, with `TCP_NODELAY` on every
    /// connection (a reply goes out at once, not held back for more).
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }

    /// WebSockets open now.
    pub fn open_sockets(&self) -> i64 {
        self.shared.metrics.open_sockets()
    }

    /// Closes the mesh connection.
    pub async fn shutdown(&self) {
        self.shared.mesh.shutdown().await;
    }
}
