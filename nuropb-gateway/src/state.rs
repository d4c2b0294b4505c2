//! What every route and socket of one gateway shares: the mesh, the catalog of services, the
//! event hub, the authorize hook, the bounds, the rate limiter and the counters.

use crate::auth::{Authorizer, Identity};
use crate::catalog::Catalog;
use crate::config::Limits;
use crate::error::Refusal;
use crate::events::{Hub, is_token_key};
use crate::mesh::Mesh;
use crate::metrics::{Metrics, Reason};
use crate::origin::Origins;
use crate::rate::RateLimiter;
use nuropb_proto::message::Object;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

/// One gateway's state.
pub(crate) struct Shared {
    pub(crate) mesh: Mesh,
    pub(crate) catalog: Catalog,
    pub(crate) hub: Arc<Hub>,
    pub(crate) limits: Limits,
    pub(crate) authorizer: Option<Authorizer>,
    pub(crate) anonymous: bool,
    pub(crate) origins: Origins,
    pub(crate) rate: RateLimiter,
    pub(crate) metrics: Metrics,
    /// The services the OpenAPI document and the console show.
    pub(crate) services: Vec<String>,
    next_client: AtomicU64,
}

/// Who is calling: the identity, the token it was proven with (passed on to services), and the
/// address it calls from.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) identity: Identity,
    /// `Bearer TOKEN`, as services get it.
    bearer: Option<String>,
    /// The key of its rate-limit bucket: the user, or the address when anonymous.
    rate_key: String,
}

impl Caller {
    fn new(identity: Identity, token: Option<&str>, address: &str) -> Caller {
        let rate_key = match &identity.user_id {
            Some(user) => format!("user:{user}"),
            None => format!("addr:{address}"),
        };
        Caller {
            bearer: token.map(|t| format!("Bearer {t}")),
            identity,
            rate_key,
        }
    }
}

/// The context keys the gateway sets, which a client's own context may not.
const RESERVED: [&str; 3] = ["Authorization", "Authorisation", "user_id"];

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mesh: Mesh,
        hub: Arc<Hub>,
        limits: Limits,
        authorizer: Option<Authorizer>,
        anonymous: bool,
        origins: Origins,
        services: Vec<String>,
    ) -> Shared {
        Shared {
            mesh,
            catalog: Catalog::new(limits.describe_ttl),
            hub,
            rate: RateLimiter::new(
                limits.rate_per_second,
                limits.rate_burst,
                limits.max_tracked_clients,
            ),
            limits,
            authorizer,
            anonymous,
            origins,
            metrics: Metrics::default(),
            services,
            next_client: AtomicU64::new(1),
        }
    }

    /// A new id for a socket or event stream.
    pub(crate) fn client_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// Who presents `token` (or none) from `address`. With an authorize hook, a token must pass
    /// it; without one (an anonymous gateway), a token is passed on to services unverified, for
    /// their own authorize hooks. No token is anonymous, where that is allowed.
    pub(crate) async fn identify(
        &self,
        token: Option<String>,
        address: &str,
    ) -> Result<Caller, Refusal> {
        let identity = match (&token, &self.authorizer) {
            (Some(token), Some(hook)) => match hook(token.clone()).await {
                Ok(identity) if identity.expired(SystemTime::now()) => {
                    Err(Refusal::unauthenticated("the token has expired"))
                }
                Ok(identity) => Ok(identity),
                Err(e) => Err(Refusal::unauthenticated(e.description)),
            },
            (None, _) if !self.anonymous => Err(Refusal::unauthenticated(
                "a token is required: an Authorization header (Bearer), an Authorization cookie, a bearer.TOKEN WebSocket protocol or an authenticate frame",
            )),
            _ => Ok(Identity::anonymous()),
        };
        match identity {
            Ok(identity) => Ok(Caller::new(identity, token.as_deref(), address)),
            Err(refusal) => {
                self.metrics.refused(Reason::Authentication);
                // Failed attempts count against the address, so guessing is slow.
                let _ = self.rate.take(&format!("addr:{address}"), Instant::now());
                Err(refusal)
            }
        }
    }

    /// Refuses a new socket or event stream when the gateway has as many as it takes (503).
    pub(crate) fn room(&self) -> Result<(), Refusal> {
        if self.metrics.open_clients() >= self.limits.max_clients {
            self.metrics.refused(Reason::Capacity);
            return Err(Refusal::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                nuropb_tokio::ErrorKind::Transport,
                format!(
                    "the gateway has {} sockets and event streams open, the most it takes",
                    self.limits.max_clients
                ),
            ));
        }
        Ok(())
    }

    /// Takes one unit of the rate of `address` (for what comes before a caller is known).
    pub(crate) fn admit_address(&self, address: &str) -> Result<(), Refusal> {
        self.rate
            .take(&format!("addr:{address}"), Instant::now())
            .map_err(|seconds| {
                self.metrics.refused(Reason::RateLimit);
                Refusal::rate_limited(seconds)
            })
    }

    /// Takes one unit of `caller`'s rate.
    pub(crate) fn admit(&self, caller: &Caller) -> Result<(), Refusal> {
        self.rate
            .take(&caller.rate_key, Instant::now())
            .map_err(|seconds| {
                self.metrics.refused(Reason::RateLimit);
                Refusal::rate_limited(seconds)
            })
    }

    /// The context a call or event goes with: the client's own, which may not set the keys the
    /// gateway sets, then `Authorization: Bearer TOKEN` and `user_id`.
    pub(crate) fn context(&self, caller: &Caller, mut own: Object) -> Result<Object, Refusal> {
        if let Some(key) = own
            .keys()
            .find(|k| RESERVED.iter().any(|r| r.eq_ignore_ascii_case(k)) || is_token_key(k))
        {
            return Err(Refusal::invalid(format!(
                "the context key {key:?} is set by the gateway, not by clients"
            )));
        }
        if let Some(bearer) = &caller.bearer {
            own.insert("Authorization".into(), Value::String(bearer.clone()));
        }
        if let Some(user) = &caller.identity.user_id {
            own.insert("user_id".into(), Value::String(user.clone()));
        }
        Ok(own)
    }
}

/// A method call from a client, over HTTP or a WebSocket.
pub(crate) use crate::frames::CallFrame;

impl Shared {
    /// The call `frame` asks of `caller`, checked: a described method, a context the client may
    /// send, a timeout within the gateway's.
    async fn call(&self, caller: &Caller, frame: CallFrame) -> Result<crate::mesh::Call, Refusal> {
        let encrypted = self
            .catalog
            .method(&self.mesh, &frame.service, &frame.method)
            .await?;
        let context = self.context(caller, frame.context)?;
        let timeout = frame.timeout.map_or(self.limits.request_timeout, |t| {
            t.min(self.limits.request_timeout)
        });
        Ok(crate::mesh::Call {
            service: frame.service,
            method: frame.method,
            params: frame.params,
            context,
            trace_id: Some(frame.trace_id),
            timeout,
            encrypted,
        })
    }

    /// Calls a method for `caller` and waits for its result; counts it.
    pub(crate) async fn request(
        &self,
        caller: &Caller,
        frame: CallFrame,
    ) -> Result<Value, Refusal> {
        let started = Instant::now();
        let (service, method) = (frame.service.clone(), frame.method.clone());
        let outcome = match self.call(caller, frame).await {
            Ok(call) => self.mesh.request(call).await.map_err(Refusal::from),
            Err(refusal) => Err(refusal),
        };
        let status = outcome.as_ref().map_or_else(|r| r.status.as_u16(), |_| 200);
        self.metrics
            .request(&service, &method, status, started.elapsed());
        outcome
    }

    /// Sends a command for `caller`; its correlation id. Counts it.
    pub(crate) async fn command(
        &self,
        caller: &Caller,
        frame: CallFrame,
    ) -> Result<String, Refusal> {
        let started = Instant::now();
        let (service, method) = (frame.service.clone(), frame.method.clone());
        let outcome = match self.call(caller, frame).await {
            Ok(call) => self.mesh.command(call).map_err(Refusal::from),
            Err(refusal) => Err(refusal),
        };
        let status = outcome.as_ref().map_or_else(|r| r.status.as_u16(), |_| 202);
        self.metrics
            .request(&service, &method, status, started.elapsed());
        outcome
    }

    /// Publishes an event for `caller`; its correlation id. Its context names the user but
    /// carries no token: an event goes to every subscriber.
    pub(crate) fn publish(
        &self,
        caller: &Caller,
        topic: &str,
        event: Value,
        context: Object,
        trace_id: String,
    ) -> Result<String, Refusal> {
        crate::topic::check(topic, false).map_err(Refusal::invalid)?;
        let mut context = self.context(caller, context)?;
        context.retain(|k, _| !is_token_key(k));
        self.mesh
            .publish(topic, event, context, Some(trace_id))
            .map_err(Refusal::from)
    }
}
