//! Deliveries with generated content headers — any property flags, strings of any bytes, header
//! tables nested to any depth with any type tags, lengths that lie, trailing bytes, bodies of any
//! size against the endpoint's limit — to a NuroPb service that is ready, on its consumer: each
//! one is settled on its own (handed to the handler, or refused as unreadable), and the endpoint
//! never gives up its connection or channel for a message's content.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::frame::{write_content_raw, write_method};
use nuropb_proto::amqp::{AMQPClass, Config};
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::{Endpoint, EndpointConfig, Outcome, Output, Phase, ServiceConfig, names};
use nuropb_testkit::broker::{Broker, BrokerConfig};
use std::time::{Duration, Instant};

/// A header value, written with true lengths unless it says otherwise.
#[derive(Arbitrary, Debug)]
enum Value {
    /// A type tag (any byte) and what follows it.
    Tagged(u8, Vec<u8>),
    /// A long string (`S`).
    Long(Vec<u8>),
    /// A nested table (`F`).
    Table(Vec<(Vec<u8>, Value)>),
    /// A nested array (`A`).
    Array(Vec<Value>),
    /// `levels` tables nested in one another.
    Nest(u16),
    /// A long string whose length says `claimed`.
    Lying { claimed: u32, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Content {
    flags: u16,
    strings: Vec<Vec<u8>>,
    headers: Vec<(Vec<u8>, Value)>,
    fixed: [u8; 10],
    trailing: Vec<u8>,
    cut: Option<u16>,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Bytes(Vec<u8>),
    /// A well-formed request.
    Request,
    /// This many bytes (the endpoint takes at most 4096).
    Size(u16),
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(255)];
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Tagged(tag, bytes) => {
            out.push(*tag);
            out.extend_from_slice(bytes);
        }
        Value::Long(bytes) => {
            out.push(b'S');
            long(out, bytes);
        }
        Value::Table(entries) => {
            out.push(b'F');
            long(out, &table(entries));
        }
        Value::Array(items) => {
            let mut inner = Vec::new();
            for item in items {
                value(&mut inner, item);
            }
            out.push(b'A');
            long(out, &inner);
        }
        Value::Nest(levels) => {
            // Level n is `F`, its length 7n - 4, the key `k`, then level n - 1; level 0 is `V`.
            // Written front to back, as many levels as fit a frame.
            let levels = (*levels as u32).min(20_000);
            for n in (1..=levels).rev() {
                out.push(b'F');
                out.extend_from_slice(&(7 * n - 4).to_be_bytes());
                out.extend_from_slice(&[1, b'k']);
            }
            out.push(b'V');
        }
        Value::Lying { claimed, bytes } => {
            out.push(b'S');
            out.extend_from_slice(&claimed.to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

fn table(entries: &[(Vec<u8>, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, v) in entries {
        short(&mut out, key);
        value(&mut out, v);
    }
    out
}

/// The property list: each flagged property in wire order.
fn properties(c: &Content) -> Vec<u8> {
    let mut out = c.flags.to_be_bytes().to_vec();
    let mut strings = c.strings.iter().cycle();
    let mut fixed = c.fixed.iter().copied().cycle();
    for bit in (2..16).rev() {
        if c.flags & (1 << bit) == 0 {
            continue;
        }
        match bit {
            13 => long(&mut out, &table(&c.headers)),
            12 | 11 => out.push(fixed.next().unwrap_or(0)),
            6 => out.extend((0..8).map(|_| fixed.next().unwrap_or(0))),
            _ => short(&mut out, strings.next().map_or(&b""[..], Vec::as_slice)),
        }
    }
    out.extend_from_slice(&c.trailing);
    if let Some(cut) = c.cut {
        out.truncate(cut as usize);
    }
    // A header frame that fits the frame size: framing is the connection's business.
    out.truncate(100_000);
    out
}

const REQUEST: &[u8] = br#"{"tag": "request", "service": "svc", "method": "m", "params": {}, "correlation_id": "c", "context": {}, "trace_id": null}"#;

fuzz_target!(|contents: Vec<Content>| {
    let t0 = Instant::now();
    let spec = ServiceSpec::new("svc").method(MethodSpec::new("m"));
    let config = EndpointConfig::service("/", "i1", ServiceConfig::new(spec), 7);
    let amqp = Config {
        max_body_size: 4096,
        ..Config::default()
    };
    let mut endpoint = Endpoint::new(config, amqp, t0, 1_700_000_000).unwrap();
    let mut broker = Broker::new(BrokerConfig {
        declare_mesh_exchanges: true,
        ..BrokerConfig::default()
    });
    let c = broker.accept(t0);
    assert_eq!(endpoint.poll_output(), Some(Output::Connect { node: 0 }));
    endpoint.connected(t0);
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        endpoint.poll_transmit(&mut buf);
        broker.handle_input(c, &buf, t0);
        while let Some(bytes) = broker.take_transmit(c) {
            endpoint.handle_input(&bytes, t0);
        }
    }
    assert_eq!(endpoint.phase(), Phase::Ready);
    while endpoint.poll_output().is_some() {}
    // Then the fuzzer's deliveries, as the broker would frame them, on the service consumer.
    let mut now = t0;
    for (i, content) in contents.iter().take(64).enumerate() {
        let mut frames = Vec::new();
        let deliver = AMQPClass::Basic(amq_protocol::protocol::basic::AMQPMethod::Deliver(
            amq_protocol::protocol::basic::Deliver {
                consumer_tag: names::SERVICE_CONSUMER.into(),
                delivery_tag: i as u64 + 1,
                redelivered: false,
                exchange: "nuropb-rpc-exchange".into(),
                routing_key: "svc".into(),
            },
        ));
        write_method(&mut frames, 1, &deliver);
        let body = match &content.body {
            Body::Bytes(bytes) => bytes.clone(),
            Body::Request => REQUEST.to_vec(),
            Body::Size(n) => vec![b'x'; *n as usize],
        };
        write_content_raw(&mut frames, 1, 60, &properties(content), &body, 131_072);
        endpoint.handle_input(&frames, now);
        now += Duration::from_millis(3);
        endpoint.handle_timeout(now);
        while let Some(event) = endpoint.poll_output() {
            match event {
                Output::Call(call) => {
                    endpoint
                        .complete(
                            call.delivery,
                            Outcome::Ok(serde_json::json!(1)),
                            Vec::new(),
                            now,
                        )
                        .expect("a call of this connection completes");
                }
                Output::Incoming(event) => {
                    let _ = endpoint.complete(
                        event.delivery,
                        Outcome::Ok(serde_json::Value::Null),
                        Vec::new(),
                        now,
                    );
                }
                Output::Disconnected { error, .. } | Output::Stopped { error: Some(error) } => {
                    panic!("a message's content took the connection down: {error}")
                }
                _ => {}
            }
        }
        assert_eq!(endpoint.phase(), Phase::Ready, "after delivery {i}");
        buf.clear();
        endpoint.poll_transmit(&mut buf);
    }
    assert_eq!(endpoint.in_flight(), 0, "every delivery settled");
});
