//! A NuroPb endpoint driven by hand with blocking `std::net` and no async runtime: it serves
//! `greeter.hello`, calls it through the broker, prints the answer and shuts down. Everything it
//! does follows the contract documented on `nuropb_proto::mesh::Endpoint`.
//!
//! `NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example cargo run -p nuropb-proto --example blocking`
//! (the virtual host must exist; the example declares the mesh's exchanges in it).

use nuropb_proto::amqp;
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::management::AmqpUrl;
use nuropb_proto::mesh::{Endpoint, EndpointConfig, Outcome, Output, Request, ServiceConfig};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NUROPB_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let url = AmqpUrl::parse(&url)?;
    let address = format!("{}:{}", url.host, url.port.unwrap_or(5672));
    let spec = ServiceSpec::new("greeter").method(MethodSpec::new("hello"));
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let mut config =
        EndpointConfig::service(&url.vhost, "blocking1", ServiceConfig::new(spec), seed);
    config.configure_mesh_on_connect = true;
    config.nodes = vec![address.clone()];
    let amqp = amqp::Config::new(&url.username, &url.password, &url.vhost);
    let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut endpoint = Endpoint::new(config, amqp, Instant::now(), unix)?;

    let mut socket: Option<TcpStream> = None;
    let (mut asked, mut buf, mut out) = (false, vec![0u8; 64 * 1024], Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "nothing happened for 30 s");
        // 1. Outputs first, in order.
        while let Some(output) = endpoint.poll_output() {
            let now = Instant::now();
            match output {
                Output::Connect { .. } => match TcpStream::connect(&address) {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        socket = Some(s);
                        endpoint.connected(now);
                    }
                    Err(e) => endpoint.connect_failed(e, now),
                },
                Output::Ready if !asked => {
                    asked = true;
                    let request =
                        Request::new("greeter", "hello").params(json!({"name": "std::net"}));
                    endpoint.request(request, now)?;
                }
                Output::Call(call) => {
                    let name = call.params["name"].as_str().unwrap_or("you");
                    let outcome = Outcome::Ok(json!(format!("hello {name}")));
                    endpoint.complete(call.delivery, outcome, Vec::new(), now)?;
                }
                Output::Response { result, .. } => {
                    println!("{}", result?);
                    endpoint.shutdown(Duration::from_secs(1), now);
                }
                Output::Disconnected { error, .. } => {
                    eprintln!("disconnected: {error}");
                    flush(&mut endpoint, &mut socket, &mut out);
                    socket = None;
                }
                Output::Stopped { error } => {
                    flush(&mut endpoint, &mut socket, &mut out);
                    return match error {
                        None => Ok(()),
                        Some(e) => Err(e.into()),
                    };
                }
                _ => {}
            }
        }
        // 2. Then bytes out, in one write.
        flush(&mut endpoint, &mut socket, &mut out);
        // 3. Then wait for bytes in, at most until the endpoint's next timeout.
        let now = Instant::now();
        let wait = endpoint
            .poll_timeout()
            .map_or(Duration::from_millis(100), |at| {
                at.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        if let Some(s) = &mut socket {
            s.set_read_timeout(Some(wait))?;
            match s.read(&mut buf) {
                Ok(0) => endpoint.handle_eof(Instant::now()),
                Ok(n) => endpoint.handle_input(&buf[..n], Instant::now()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => endpoint.handle_eof(Instant::now()),
            }
        } else {
            std::thread::sleep(wait);
        }
        if endpoint
            .poll_timeout()
            .is_some_and(|at| at <= Instant::now())
        {
            endpoint.handle_timeout(Instant::now());
        }
    }
}

/// Writes what the endpoint has for the socket.
fn flush(endpoint: &mut Endpoint, socket: &mut Option<TcpStream>, out: &mut Vec<u8>) {
    out.clear();
    if endpoint.poll_transmit(out) > 0
        && let Some(s) = socket
        && s.write_all(out).is_err()
    {
        endpoint.handle_eof(Instant::now());
    }
}
