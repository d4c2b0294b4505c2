//! `nuropb gateway`: the NuroPb gateway (WebSocket, HTTP, events, OpenAPI, console) in front of
//! the mesh at `NUROPB_AMQP_URL`, verifying JWTs.

use crate::Failure;
use nuropb_gateway::{Gateway, JwtVerifier, Limits};
use nuropb_tokio::{ConnectionSettings, NuropbError};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The arguments of `nuropb gateway`.
#[derive(clap::Args)]
pub(crate) struct GatewayArgs {
    /// The address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    listen: SocketAddr,
    /// Verify HS256 JWTs with the secret in FILE (at least 32 bytes; a trailing newline is
    /// ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "jwt_public_key")]
    jwt_secret_file: Option<PathBuf>,
    /// Verify RS256 or ES256 JWTs with the public key in FILE (PEM).
    #[arg(long, value_name = "FILE")]
    jwt_public_key: Option<PathBuf>,
    /// Let clients without a token in (without a JWT option, tokens are passed on to services
    /// unverified).
    #[arg(long)]
    allow_anonymous: bool,
    /// A service the OpenAPI document and the console show (repeatable).
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// A web origin allowed to use the gateway from a browser, matched exactly, e.g.
    /// `https://app.example.com` (repeatable; the gateway's own origin always is).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    origins: Vec<String>,
    /// Topic patterns of mesh events clients may subscribe to (repeatable; default all, `#`).
    #[arg(long = "events", value_name = "PATTERN")]
    events: Vec<String>,
    /// Requests per second per user (per address when anonymous).
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// Requests at once above the rate.
    #[arg(long, default_value_t = 200.0)]
    rate_burst: f64,
    /// The largest WebSocket message or HTTP body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_frame_bytes: usize,
    /// Requests one socket may have in flight.
    #[arg(long, default_value_t = 128)]
    max_in_flight: usize,
    /// How long a request waits for its response, in seconds.
    #[arg(long, default_value_t = 60.0)]
    request_timeout: f64,
    /// Threads serving clients and the mesh: 1 (a current-thread runtime, the fastest where the
    /// broker shares a few cores) or more (a multi-thread runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: u16,
}

/// The runtime for `threads`: current-thread for one, multi-thread for more.
pub(crate) fn runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads))
            .enable_all()
            .build()
    }
}

fn read(what: &str, path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("error: cannot read {what} {}: {e}", path.display())))
}

fn usage(e: NuropbError) -> Failure {
    Failure::usage(format!("error: {}", e.description))
}

impl GatewayArgs {
    fn verifier(&self) -> Result<Option<JwtVerifier>, Failure> {
        if let Some(path) = &self.jwt_secret_file {
            let mut secret = read("--jwt-secret-file", path)?;
            while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
                secret.pop();
            }
            return JwtVerifier::hs256(&secret).map(Some).map_err(usage);
        }
        if let Some(path) = &self.jwt_public_key {
            let pem = read("--jwt-public-key", path)?;
            return JwtVerifier::public_key_pem(&pem).map(Some).map_err(usage);
        }
        if !self.allow_anonymous {
            return Err(Failure::usage(
                "error: give --jwt-secret-file or --jwt-public-key to verify tokens, or --allow-anonymous",
            ));
        }
        Ok(None)
    }

    fn limits(&self) -> Result<Limits, Failure> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(Failure::usage(format!(
                    "error: {name} must be a positive number"
                )))
            }
        };
        Ok(Limits {
            rate_per_second: positive("--rate-limit", self.rate_limit)?,
            rate_burst: positive("--rate-burst", self.rate_burst)?,
            max_frame_bytes: self.max_frame_bytes.max(1024),
            max_in_flight: self.max_in_flight.max(1),
            request_timeout: Duration::from_secs_f64(positive(
                "--request-timeout",
                self.request_timeout,
            )?),
            ..Limits::default()
        })
    }
}

/// Runs the gateway until SIGINT or SIGTERM; prints `{"listening": ADDR}` once it serves.
pub(crate) async fn run(settings: ConnectionSettings, args: GatewayArgs) -> Result<(), Failure> {
    let verifier = args.verifier()?;
    let mut builder = Gateway::builder(nuropb_tokio::connector(settings))
        .limits(args.limits()?)
        .allow_anonymous(args.allow_anonymous);
    if let Some(verifier) = verifier {
        builder = builder.authorizer(verifier.authorizer());
    }
    for origin in &args.origins {
        builder = builder.allow_origin(origin.clone());
    }
    for service in &args.services {
        builder = builder.service(service.clone());
    }
    if !args.events.is_empty() {
        builder = builder.events(args.events.clone());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::usage(format!("error: cannot listen on {}: {e}", args.listen)))?;
    let bound = listener.local_addr().unwrap_or(args.listen);
    let gateway = builder.start().await?;
    println!("{}", json!({"listening": bound.to_string()}));
    let served = gateway.clone();
    tokio::select! {
        result = served.serve(listener) => {
            if let Err(e) = result {
                eprintln!("error: the gateway stopped: {e}");
            }
        }
        () = stopped() => {}
    }
    gateway.shutdown().await;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
