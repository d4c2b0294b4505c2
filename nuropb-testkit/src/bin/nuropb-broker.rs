//! `nuropb-broker`: the testkit's in-memory AMQP 0-9-1 broker on 127.0.0.1, for running NuroPb
//! services and clients (Rust or Python) without RabbitMQ.

use clap::Parser;
use nuropb_testkit::broker::BrokerConfig;
use std::time::Duration;

/// An in-memory AMQP 0-9-1 broker with RabbitMQ's semantics, listening on 127.0.0.1.
///
/// Virtual hosts: any virtual host a client opens exists — it is created, empty but for the
/// standard `amq.*` exchanges, on its first `connection.open`. There is no management API: use
/// `nuropb.rmq_lib.configure_nuropb_rmq` (or `--mesh`) to declare the mesh exchanges over AMQP.
/// Nothing is persisted: stopping the broker loses everything.
#[derive(Debug, Parser)]
#[command(name = "nuropb-broker", version, about, long_about)]
struct Args {
    /// TCP port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 5672)]
    port: u16,
    /// The user that may log in.
    #[arg(long, default_value = "guest")]
    user: String,
    /// Its password.
    #[arg(long, default_value = "guest")]
    password: String,
    /// Declare NuroPb's mesh exchanges (nuropb-rpc-exchange direct, nuropb-events-exchange topic,
    /// nuropb-dl-exchange fanout, all durable) in every virtual host when it is created.
    #[arg(long)]
    mesh: bool,
    /// Heartbeat interval proposed to clients, seconds (0: none).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Refuse virtual hosts that were not created with --vhost (as RabbitMQ does), instead of
    /// creating them on first use.
    #[arg(long)]
    no_auto_vhosts: bool,
    /// Create this virtual host at start (repeatable).
    #[arg(long = "vhost", value_name = "NAME")]
    vhosts: Vec<String>,
    /// The most ready messages per queue (the oldest are dropped beyond it, dead-lettered with
    /// reason maxlen when the queue has a dead-letter exchange).
    #[arg(long, default_value_t = BrokerConfig::default().max_queue_messages)]
    max_queue_messages: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = BrokerConfig {
        user: args.user,
        password: args.password,
        heartbeat: args.heartbeat,
        auto_create_vhosts: !args.no_auto_vhosts,
        declare_mesh_exchanges: args.mesh,
        max_queue_messages: args.max_queue_messages,
        ..BrokerConfig::default()
    };
    let server = match nuropb_testkit::server::spawn_with(("127.0.0.1", args.port), config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "nuropb-broker: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    server.with_broker(|broker| {
        for v in &args.vhosts {
            broker.add_vhost(v);
        }
    });
    println!("nuropb-broker listening on {}", server.addr);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
