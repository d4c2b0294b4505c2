//! Throughput of the client state machine on one core:
//!
//! - `deliveries`: `basic.deliver` + content header with NuroPb properties (content type, the five
//!   `nuropb_*` headers, correlation id, reply-to, expiration) + a 250-byte body, through
//!   `handle_input` in 64 KiB reads, with every `Event::Delivery` taken out (after each read, as
//!   an adapter does) and dropped;
//! - `publishes`: `basic_publish` of the same message, then one `poll_transmit` per batch.
//!
//! Run: `cargo bench -p nuropb-proto --bench connection`

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nuropb_proto::amqp::frame::{write_content, write_method};
use nuropb_proto::amqp::{
    AMQPClass, AMQPValue, Config, Connection, Consume, Event, Headers, Properties, Publish,
};

use amq_protocol::protocol::{basic, channel, connection};

const BATCH: usize = 1000;
const BODY: usize = 250;
const READ: usize = 64 * 1024;

fn method(ch: u16, m: AMQPClass) -> Vec<u8> {
    let mut out = Vec::new();
    write_method(&mut out, ch, &m);
    out
}

fn properties() -> Properties {
    let mut headers = Headers::default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    headers.insert("nuropb_protocol", s("0.1.1"));
    headers.insert("nuropb_version", s("0.1.8"));
    headers.insert("nuropb_type", s("request"));
    headers.insert("trace_id", s("7f1d0c1e2b3a4c5d6e7f8091a2b3c4d5"));
    headers.insert("encrypted", s(""));
    Properties {
        content_type: Some("application/json".into()),
        headers: Some(headers),
        correlation_id: Some("ce299312f3e1468fbb7aca1d451a3fdc".into()),
        reply_to: Some(
            "nuropb-nuropb-cap-request_basic-client-clientinstance0000000000000000b2-rq".into(),
        ),
        expiration: Some("1800000".into()),
        ..Default::default()
    }
}

fn body() -> Vec<u8> {
    let mut b = br#"{"tag": "request", "service": "research-svc", "method": "test_method", "params": {"param1": "value1"}, "correlation_id": "ce299312f3e1468fbb7aca1d451a3fdc", "context": {}, "trace_id": "7f1d0c1e2b3a4c5d6e7f8091a2b3c4d5"}"#.to_vec();
    b.resize(BODY, b' ');
    b
}

/// A client with channel 1 open and consuming.
fn consuming_client() -> Connection {
    let now = Instant::now();
    let mut conn = Connection::new(Config::default(), now).unwrap();
    let mut server = Vec::new();
    let start = connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: Default::default(),
        mechanisms: "PLAIN".into(),
        locales: "en_US".into(),
    };
    server.extend(method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Start(start)),
    ));
    server.extend(method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        })),
    ));
    server.extend(method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    ));
    conn.handle_input(&server, now);
    let ch = conn.open_channel().unwrap();
    conn.basic_consume(ch, &Consume::new("nuropb-research-svc-sq"))
        .unwrap();
    let mut server = method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
    );
    server.extend(method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
        })),
    ));
    conn.handle_input(&server, now);
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    while conn.poll_event().is_some() {}
    assert!(conn.is_open());
    conn
}

/// `BATCH` deliveries as the broker writes them.
fn delivery_stream() -> Vec<u8> {
    let props = properties();
    let body = body();
    let mut stream = Vec::new();
    for tag in 1..=BATCH as u64 {
        stream.extend(method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
                delivery_tag: tag,
                redelivered: false,
                exchange: "nuropb-rpc-exchange".into(),
                routing_key: "research-svc".into(),
            })),
        ));
        write_content(&mut stream, 1, 60, &props, &body, 131_072);
    }
    stream
}

fn deliveries(c: &mut Criterion) {
    let stream = delivery_stream();
    let mut conn = consuming_client();
    let now = Instant::now();
    let mut group = c.benchmark_group("deliveries");
    group.throughput(Throughput::Elements(BATCH as u64));
    println!(
        "delivery stream: {} bytes for {BATCH} messages ({} bytes each on the wire)",
        stream.len(),
        stream.len() / BATCH
    );
    group.bench_function("handle_input 250-byte body, NuroPb properties", |b| {
        b.iter(|| {
            // As an adapter does: after each read, take the events out.
            let mut n = 0;
            for chunk in stream.chunks(READ) {
                conn.handle_input(chunk, now);
                while let Some(event) = conn.poll_event() {
                    if let Event::Delivery(d) = event {
                        n += d.body.len();
                    }
                }
            }
            assert_eq!(n, BATCH * BODY);
        })
    });
    group.finish();
    assert!(conn.is_open());
}

fn publishes(c: &mut Criterion) {
    let props = properties();
    let body = body();
    let publish = Publish {
        mandatory: true,
        ..Publish::new("nuropb-rpc-exchange", "research-svc")
    };
    let mut conn = consuming_client();
    let mut out = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("publishes");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("basic_publish + poll_transmit 250-byte body", |b| {
        b.iter_batched_ref(
            || (),
            |_| {
                for _ in 0..BATCH {
                    conn.basic_publish(1, &publish, &props, &body).unwrap();
                }
                out.clear();
                conn.poll_transmit(&mut out);
                assert!(out.len() > BATCH * BODY);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, deliveries, publishes);
criterion_main!(benches);
