//! A NuroPb service endpoint fed a valid handshake and startup by a scripted broker, then
//! arbitrary bytes: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::Config;
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::{Endpoint, EndpointConfig, Outcome, Output, ServiceConfig};
use nuropb_testkit::broker::{Broker, BrokerConfig};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let spec = ServiceSpec::new("svc").method(MethodSpec::new("m"));
    let config = EndpointConfig::service("/", "i1", ServiceConfig::new(spec), 7);
    let mut endpoint = Endpoint::new(config, Config::default(), t0, 1_700_000_000).unwrap();
    let mut broker = Broker::new(BrokerConfig {
        declare_mesh_exchanges: true,
        ..BrokerConfig::default()
    });
    let c = broker.accept(t0);
    // The socket it asks for first is open.
    assert_eq!(endpoint.poll_output(), Some(Output::Connect { node: 0 }));
    endpoint.connected(t0);
    // Let the real handshake and startup happen against the in-memory broker.
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        endpoint.poll_transmit(&mut buf);
        broker.handle_input(c, &buf, t0);
        while let Some(bytes) = broker.take_transmit(c) {
            endpoint.handle_input(&bytes, t0);
        }
    }
    // Then the fuzzer plays the broker.
    let mut now = t0;
    for chunk in data.chunks(61) {
        endpoint.handle_input(chunk, now);
        now += Duration::from_millis(7);
        endpoint.handle_timeout(now);
        while let Some(event) = endpoint.poll_output() {
            if let Output::Call(call) = event {
                let _ = endpoint.complete(
                    call.delivery,
                    Outcome::Ok(serde_json::json!(1)),
                    Vec::new(),
                    now,
                );
            }
        }
        buf.clear();
        endpoint.poll_transmit(&mut buf);
    }
});
