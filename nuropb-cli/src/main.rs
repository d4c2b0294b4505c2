//! `nuropb`: poke at a NuroPb mesh from the command line, or run the gateway in front of it.
//!
//! Exit status: 0 success; 1 the service answered with an error (the error dict on stderr);
//! 2 bad arguments; 3 not delivered (no service bound); 4 timeout; 5 the broker could not be
//! reached or the connection failed.

mod gateway;

use clap::{Parser, Subcommand};
use nuropb_tokio::{ConnectionSettings, ErrorKind, NuropbError, Request};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "nuropb",
    version,
    about = "Call, command, publish, listen and describe on a NuroPb mesh, or serve the gateway",
    long_about = "Call, command, publish, listen and describe on a NuroPb mesh (RabbitMQ), \
        wire-compatible with Python NuroPb 0.1.8.\n\n\
        Exit status: 0 success; 1 the service answered with an error (its error dict on stderr); \
        2 bad arguments; 3 not delivered; 4 timeout; 5 broker unreachable or connection failed."
)]
struct Cli {
    /// The broker and virtual host: `amqp[s]://user:password@host:port/vhost`
    #[arg(
        long,
        env = "NUROPB_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/nuropb"
    )]
    url: String,
    /// Log progress to stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Verb,
}

/// What to call, with what: shared by `call` and `command`.
#[derive(clap::Args)]
struct MethodCall {
    /// The service.
    service: String,
    /// The method.
    method: String,
    /// Keyword parameters, a JSON object.
    #[arg(default_value = "{}")]
    params: String,
    /// The context, a JSON object (e.g. '{"Authorization": "Bearer …"}').
    #[arg(long, default_value = "{}")]
    context: String,
    /// How long the message may wait in the service's queue, in milliseconds.
    #[arg(long)]
    ttl: Option<u64>,
}

#[derive(Subcommand)]
enum Verb {
    /// Call a method and print its result as JSON.
    Call {
        #[command(flatten)]
        call: MethodCall,
        /// How long to wait for the response, in seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// The trace id.
        #[arg(long)]
        trace_id: Option<String>,
        /// Encrypt the call (the service's public key is fetched through describe).
        #[arg(long)]
        encrypt: bool,
    },
    /// Send a command (no response).
    Command {
        #[command(flatten)]
        call: MethodCall,
    },
    /// Publish an event.
    Publish {
        /// The topic.
        topic: String,
        /// The event, any JSON value.
        #[arg(default_value = "{}")]
        event: String,
        /// The context, a JSON object.
        #[arg(long, default_value = "{}")]
        context: String,
        /// The trace id.
        #[arg(long)]
        trace_id: Option<String>,
    },
    /// Print events on topics matching the patterns (`*` one word, `#` any), one JSON line each;
    /// `listening on PATTERNS` goes to stderr once the queue is bound.
    Listen {
        /// Topic patterns.
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Exit after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print a service's description.
    Describe {
        /// The service.
        service: String,
    },
    /// Serve the gateway: WebSocket, HTTP API, Server-Sent Events, OpenAPI and a web console
    /// in front of the mesh; prints {"listening": ADDR} once it serves, runs until SIGINT or
    /// SIGTERM.
    Gateway(gateway::GatewayArgs),
    /// Set up the mesh.
    Mesh {
        #[command(subcommand)]
        action: MeshAction,
    },
}

impl MethodCall {
    /// The request these arguments describe.
    fn request(self) -> Result<Request, Failure> {
        let params = object_arg("PARAMS_JSON", &self.params)?;
        let context = object_arg("--context", &self.context)?;
        let mut request = Request::new(self.service, self.method)
            .params(params)
            .context(context);
        if let Some(ttl) = self.ttl {
            request = request.ttl(Duration::from_millis(ttl));
        }
        Ok(request)
    }
}

#[derive(Subcommand)]
enum MeshAction {
    /// Create the virtual host (management API) and the exchanges; idempotent.
    Setup,
}

/// A failure, with the exit status it maps to.
struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: 2,
            message: message.into(),
        }
    }
}

impl From<NuropbError> for Failure {
    fn from(error: NuropbError) -> Failure {
        let status = match error.kind {
            ErrorKind::NotDelivered => 3,
            ErrorKind::Timeout => 4,
            ErrorKind::Transport => 5,
            _ => 1,
        };
        let message = if status == 1 {
            error.to_dict().to_string()
        } else {
            format!("error: {}", error.description)
        };
        Failure { status, message }
    }
}

fn json_arg(name: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::usage(format!("error: {name} is not valid JSON: {e}")))
}

fn object_arg(name: &str, text: &str) -> Result<Value, Failure> {
    match json_arg(name, text)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(Failure::usage(format!(
            "error: {name} must be a JSON object"
        ))),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let settings = ConnectionSettings::from_url(&cli.url)
        .map_err(|e| Failure::usage(format!("error: {}", e.description)))?;
    let connector = nuropb_tokio::connector(settings.clone());
    match cli.command {
        Verb::Call {
            call,
            timeout,
            trace_id,
            encrypt,
        } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                return Err(Failure::usage(
                    "error: --timeout must be a positive number of seconds",
                ));
            }
            let mut request = call.request()?.timeout(Duration::from_secs_f64(timeout));
            if let Some(trace_id) = trace_id {
                request = request.trace_id(trace_id);
            }
            if encrypt {
                request = request.encrypted();
            }
            let client = connector.client().await?;
            let result = client.send(request).await;
            client.shutdown(Duration::from_secs(2)).await;
            println!("{}", result?);
        }
        Verb::Command { call } => {
            let request = call.request()?;
            let client = connector.client().await?;
            let sent = client.command(request);
            client.shutdown(Duration::from_secs(2)).await;
            println!("{}", json!({"correlation_id": sent?}));
        }
        Verb::Publish {
            topic,
            event,
            context,
            trace_id,
        } => {
            let event = json_arg("EVENT_JSON", &event)?;
            let context = object_arg("--context", &context)?;
            let client = connector.client().await?;
            let sent = client.publish_event(&topic, event, context, trace_id);
            client.shutdown(Duration::from_secs(2)).await;
            println!("{}", json!({"correlation_id": sent?}));
        }
        Verb::Listen { patterns, count } => {
            let listening = format!("listening on {}", patterns.join(" "));
            let seen = Arc::new(AtomicU64::new(0));
            let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<()>();
            let counter = seen.clone();
            let client = connector
                .listener(patterns, move |event, _ctx| {
                    let line = json!({
                        "topic": event.topic,
                        "event": event.event,
                        "context": event.context,
                        "trace_id": event.trace_id,
                    });
                    println!("{line}");
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if count.is_some_and(|c| n >= c) {
                        let _ = done_tx.send(());
                    }
                    async { Ok(()) }
                })
                .await?;
            eprintln!("{listening}");
            if count != Some(0) {
                tokio::select! {
                    _ = done.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            client.shutdown(Duration::from_secs(2)).await;
        }
        Verb::Describe { service } => {
            let client = connector.client().await?;
            let description = client.describe(&service, true).await;
            client.shutdown(Duration::from_secs(2)).await;
            let description = serde_json::to_value(description?).unwrap_or(Value::Null);
            println!("{description}");
        }
        Verb::Gateway(args) => gateway::run(settings, args).await?,
        Verb::Mesh {
            action: MeshAction::Setup,
        } => {
            nuropb_tokio::configure_mesh(&cli.url).await?;
            println!("{}", json!({"vhost": settings.vhost, "configured": true}));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Quiet by default: a failure is reported in one line on stderr, not in logs.
    let level = match cli.verbose {
        0 => "off",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "nuropb={level},nuropb_api={level},nuropb_tokio={level},nuropb_proto={level},nuropb_gateway={level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match &cli.command {
        Verb::Gateway(args) => gateway::runtime(args.threads),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(5);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
