//! Declaring a service: its methods with typed handlers, authorize hooks, and an event handler.

use crate::context::CallContext;
use crate::runtime::BoxFuture;
use nuropb_proto::crypto::PrivateKey;
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::{IncomingEvent, Outcome};
use nuropb_proto::message::Object;
use nuropb_proto::message::json;
use nuropb_proto::{ErrorKind, NuropbError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

pub(crate) type HandlerFn = Arc<dyn Fn(CallContext, Object) -> BoxFuture<Outcome> + Send + Sync>;
pub(crate) type AuthorizeFn =
    Arc<dyn Fn(String) -> BoxFuture<Result<Value, NuropbError>> + Send + Sync>;
pub(crate) type EventFn =
    Arc<dyn Fn(IncomingEvent, CallContext) -> BoxFuture<Result<(), NuropbError>> + Send + Sync>;

/// An async event callback, type-erased.
pub(crate) fn event_fn<F, Fut>(callback: F) -> EventFn
where
    F: Fn(IncomingEvent, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), NuropbError>> + Send + 'static,
{
    Arc::new(move |event, ctx| Box::pin(callback(event, ctx)) as BoxFuture<Result<(), NuropbError>>)
}

/// What a typed handler's error means for the delivery: most errors are answered; an error of
/// kind `CallAgain` asks for the call once more, one of kind `Success` succeeds with its
/// description as the result (Python's `NuropbCallAgain` and `NuropbSuccess`).
pub fn outcome_of<R: Serialize>(result: Result<R, NuropbError>) -> Outcome {
    match result {
        Ok(value) => match serde_json::to_value(value) {
            Ok(value) => Outcome::Ok(value),
            Err(e) => Outcome::Err(NuropbError::new(
                ErrorKind::Exception,
                format!("the result could not be serialized: {e}"),
            )),
        },
        Err(e) if e.kind == ErrorKind::CallAgain => Outcome::CallAgain(e.description),
        Err(e) if e.kind == ErrorKind::Success => Outcome::Success {
            result: Value::String(e.description),
            events: Vec::new(),
        },
        Err(e) => Outcome::Err(e),
    }
}

/// Reads keyword parameters as `P`; an empty object also reads as `()`.
fn params<P: DeserializeOwned>(method: &str, params: Object) -> Result<P, NuropbError> {
    let empty = params.is_empty();
    // A value read off the wire may nest 1024 levels: read it on a stack that grows.
    json::from_value(Value::Object(params))
        .or_else(|e| {
            if empty {
                json::from_value(Value::Null).map_err(|_| e)
            } else {
                Err(e)
            }
        })
        .map_err(|e| {
            NuropbError::new(
                ErrorKind::Validation,
                format!("invalid parameters for {method}: {e}"),
            )
        })
}

/// A method of a service: its declaration (for describe and the endpoint's checks), its handler
/// and, if it requires authorization, its authorize hook.
///
/// ```
/// use nuropb_api::{CallContext, Method};
/// use nuropb_proto::NuropbError;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Greet { name: String }
///
/// let method = Method::new("greet", |_ctx: CallContext, p: Greet| async move {
///     Ok::<_, NuropbError>(format!("hello {}", p.name))
/// })
/// .description("says hello")
/// .param("name", "str");
/// assert_eq!(method.spec().name, "greet");
/// ```
pub struct Method {
    spec: MethodSpec,
    handler: HandlerFn,
    authorize: Option<AuthorizeFn>,
}

impl Method {
    /// A method whose handler takes typed parameters and returns a typed result.
    pub fn new<P, R, F, Fut>(name: impl Into<String>, handler: F) -> Method
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, NuropbError>> + Send + 'static,
    {
        let name = name.into();
        let handler = Arc::new(handler);
        let erased: HandlerFn = Arc::new(move |ctx: CallContext, raw: Object| {
            let handler = handler.clone();
            Box::pin(async move {
                match params::<P>(ctx.method(), raw) {
                    Ok(p) => outcome_of(handler(ctx, p).await),
                    Err(e) => Outcome::Err(e),
                }
            }) as BoxFuture<Outcome>
        });
        Method {
            spec: MethodSpec::new(name),
            handler: erased,
            authorize: None,
        }
    }

    /// A method whose handler sees the raw parameters and decides the [`Outcome`] itself
    /// (call-again, success with events).
    pub fn raw<F, Fut>(name: impl Into<String>, handler: F) -> Method
    where
        F: Fn(CallContext, Object) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Method {
            spec: MethodSpec::new(name),
            handler: Arc::new(move |ctx, raw| Box::pin(handler(ctx, raw)) as BoxFuture<Outcome>),
            authorize: None,
        }
    }

    /// The declaration.
    pub fn spec(&self) -> &MethodSpec {
        &self.spec
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.spec = self.spec.description(text);
        self
    }

    /// Declares a required parameter (for describe).
    pub fn param(mut self, name: impl Into<String>, type_name: impl Into<String>) -> Self {
        self.spec = self.spec.param(name, type_name);
        self
    }

    /// Declares a parameter with a default (for describe).
    pub fn param_with_default(
        mut self,
        name: impl Into<String>,
        type_name: impl Into<String>,
        default: impl Into<Value>,
    ) -> Self {
        self.spec = self.spec.param_with_default(name, type_name, default);
        self
    }

    /// Requires calls to be encrypted.
    pub fn requires_encryption(mut self) -> Self {
        self.spec = self.spec.requires_encryption();
        self
    }

    /// Leaves the method out of describe (and refuses calls to it).
    pub fn hidden(mut self) -> Self {
        self.spec = self.spec.hidden();
        self
    }

    /// Requires the token under the context key `Authorization` to pass `hook`, whose claims the
    /// handler then finds in [`CallContext::claims`]. A hook error refuses the call.
    pub fn authorize<F, Fut, C>(self, hook: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C, NuropbError>> + Send + 'static,
        C: Serialize,
    {
        self.authorize_by(nuropb_proto::describe::spec::DEFAULT_TOKEN_KEY, hook)
    }

    /// As [`Method::authorize`], with the token under another context key.
    pub fn authorize_by<F, Fut, C>(mut self, key: impl Into<String>, hook: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C, NuropbError>> + Send + 'static,
        C: Serialize,
    {
        self.spec = self.spec.authorized_by(key);
        let hook = Arc::new(hook);
        self.authorize = Some(Arc::new(move |token| {
            let hook = hook.clone();
            Box::pin(async move {
                let claims = hook(token).await?;
                serde_json::to_value(claims).map_err(|e| {
                    NuropbError::new(ErrorKind::Authorization, format!("bad claims: {e}"))
                })
            }) as BoxFuture<Result<Value, NuropbError>>
        }));
        self
    }
}

/// A service: name, version, description, methods, event subscriptions and handler, and how it
/// consumes.
///
/// ```
/// use nuropb_api::{CallContext, Method, Service};
/// use nuropb_proto::NuropbError;
///
/// let service = Service::new("echo")
///     .version("1.0.0")
///     .method(Method::new("echo", |_ctx: CallContext, p: serde_json::Value| async move {
///         Ok::<_, NuropbError>(p)
///     }))
///     .prefetch(16);
/// assert_eq!(service.spec().methods.len(), 1);
/// ```
pub struct Service {
    pub(crate) spec: ServiceSpec,
    pub(crate) handlers: HashMap<String, (HandlerFn, Option<AuthorizeFn>)>,
    pub(crate) event_handler: Option<EventFn>,
    pub(crate) rpc_bindings: Vec<String>,
    pub(crate) event_bindings: Vec<String>,
    pub(crate) prefetch: u16,
    pub(crate) private_key: Option<PrivateKey>,
    pub(crate) instance_id: Option<String>,
    pub(crate) quorum_queue: bool,
}

impl Service {
    /// A service named `name`, with no methods, prefetch 1.
    pub fn new(name: impl Into<String>) -> Service {
        Service {
            spec: ServiceSpec::new(name),
            handlers: HashMap::new(),
            event_handler: None,
            rpc_bindings: Vec::new(),
            event_bindings: Vec::new(),
            prefetch: 1,
            private_key: None,
            instance_id: None,
            quorum_queue: false,
        }
    }

    /// The declaration.
    pub fn spec(&self) -> &ServiceSpec {
        &self.spec
    }

    /// Sets the version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.spec = self.spec.version(version);
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.spec = self.spec.description(text);
        self
    }

    /// Adds a method.
    pub fn method(mut self, method: Method) -> Self {
        self.handlers
            .insert(method.spec.name.clone(), (method.handler, method.authorize));
        self.spec = self.spec.method(method.spec);
        self
    }

    /// Subscribes to events on `pattern` (AMQP topic syntax: `*` one word, `#` any).
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.event_bindings.push(pattern.into());
        self
    }

    /// Handles the events of the subscriptions.
    pub fn on_event<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(IncomingEvent, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), NuropbError>> + Send + 'static,
    {
        self.event_handler = Some(event_fn(handler));
        self
    }

    /// Also receives calls routed with `key` on the rpc exchange.
    pub fn rpc_binding(mut self, key: impl Into<String>) -> Self {
        self.rpc_bindings.push(key.into());
        self
    }

    /// How many calls may be handled at once (0 = no limit).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// The RSA key for encrypted methods.
    pub fn private_key(mut self, key: PrivateKey) -> Self {
        self.private_key = Some(key);
        self
    }

    /// Declares the service queue as a quorum queue, replicated over a RabbitMQ cluster's nodes;
    /// every instance of the service must then do the same (Python instances cannot), see
    /// [`ServiceConfig::quorum_queue`](nuropb_proto::mesh::ServiceConfig::quorum_queue).
    pub fn quorum_queue(mut self) -> Self {
        self.quorum_queue = true;
        self
    }

    /// A fixed instance id: a second instance with the same id is refused (single-instance mode).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }
}
