//! Publish → deliver → ack through the in-memory broker: one publisher connection, one consumer
//! connection, ~250-byte messages with NuroPb's properties, no sockets. Client bytes are encoded
//! once outside the timed loop (they are the clients' cost, not the broker's); everything the
//! broker does — parsing, routing, storing, delivering, writing frames, settling acks — is timed.
//!
//! `cargo bench -p nuropb-testkit --bench broker`

use amq_protocol::protocol::{AMQPClass, basic, channel, connection, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nuropb_proto::amqp::frame::{PROTOCOL_HEADER, write_content, write_method};
use nuropb_proto::amqp::{Headers, Properties};
use nuropb_testkit::broker::{Broker, BrokerConfig, ConnectionId};
use std::hint::black_box;
use std::time::Instant;

const BATCH: usize = 1000;
const BODY: usize = 250;

fn m(out: &mut Vec<u8>, ch: u16, method: AMQPClass) {
    write_method(out, ch, &method);
}

fn open(broker: &mut Broker, now: Instant) -> ConnectionId {
    let c = broker.accept(now);
    let mut b = PROTOCOL_HEADER.to_vec();
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: LongString::from("\0guest\0guest"),
            locale: "en_US".into(),
        })),
    );
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        })),
    );
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: "/".into(),
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    broker.handle_input(c, &b, now);
    broker.take_transmit(c);
    c
}

/// A NuroPb request's properties (NUROPB-WIRE §2.4).
fn props() -> Properties {
    let mut h = Headers::default();
    h.insert("nuropb_protocol", AMQPValue::LongString("0.1.1".into()));
    h.insert("nuropb_version", AMQPValue::LongString("0.1.8".into()));
    h.insert("nuropb_type", AMQPValue::LongString("request".into()));
    h.insert(
        "trace_id",
        AMQPValue::LongString("7f1d0c1e2b3a4c5d6e7f8091a2b3c4d5".into()),
    );
    h.insert("encrypted", AMQPValue::LongString("".into()));
    Properties {
        content_type: Some("application/json".into()),
        headers: Some(h),
        correlation_id: Some("66137ec8ffc243fa983719a86283f51c".into()),
        reply_to: Some("nuropb-client-rq".into()),
        expiration: Some("3600000".into()),
        ..Default::default()
    }
}

struct Setup {
    broker: Broker,
    publisher: ConnectionId,
    consumer: ConnectionId,
    publishes: Vec<u8>,
    ack_template: Vec<u8>,
    next_tag: u64,
    now: Instant,
}

fn setup(prefetch: u16) -> Setup {
    let now = Instant::now();
    let mut broker = Broker::new(BrokerConfig::default());
    let publisher = open(&mut broker, now);
    let consumer = open(&mut broker, now);
    let mut b = Vec::new();
    m(
        &mut b,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "nuropb-bench-sq".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: prefetch,
            global: false,
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "nuropb-bench-sq".into(),
            consumer_tag: "ctag1.0fd5ea5547574b3d8d04ccd169488943".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    broker.handle_input(consumer, &b, now);
    broker.take_transmit(consumer);
    let props = props();
    let body = vec![b'x'; BODY];
    let mut publishes = Vec::new();
    for _ in 0..BATCH {
        m(
            &mut publishes,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "nuropb-bench-sq".into(),
                mandatory: true,
                immediate: false,
            })),
        );
        write_content(&mut publishes, 1, 60, &props, &body, 131_072);
    }
    let mut ack_template = Vec::new();
    m(
        &mut ack_template,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 0,
            multiple: false,
        })),
    );
    Setup {
        broker,
        publisher,
        consumer,
        publishes,
        ack_template,
        next_tag: 1,
        now,
    }
}

impl Setup {
    /// The acks for the next `n` deliveries, one `basic.ack` each.
    fn acks(&mut self, n: usize, out: &mut Vec<u8>) {
        out.clear();
        let tag_at = 7 + 4;
        for _ in 0..n {
            let start = out.len();
            out.extend_from_slice(&self.ack_template);
            out[start + tag_at..start + tag_at + 8].copy_from_slice(&self.next_tag.to_be_bytes());
            self.next_tag += 1;
        }
    }
}

/// Bytes of one delivery (deliver + header + body frames), measured once.
fn delivery_len(s: &mut Setup) -> usize {
    let mut one = Vec::new();
    m(
        &mut one,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "nuropb-bench-sq".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    write_content(&mut one, 1, 60, &props(), &[b'x'; BODY], 131_072);
    s.broker.handle_input(s.publisher, &one, s.now);
    let out = s.broker.take_transmit(s.consumer).expect("a delivery");
    let mut acks = Vec::new();
    s.acks(1, &mut acks);
    s.broker.handle_input(s.consumer, &acks, s.now);
    out.len()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_deliver_ack");
    group.throughput(Throughput::Elements(BATCH as u64));

    // Prefetch unlimited: a batch of publishes is delivered at once, then acked.
    let mut s = setup(0);
    let per = delivery_len(&mut s);
    let mut out = Vec::with_capacity(per * BATCH);
    let mut acks = Vec::with_capacity(s.ack_template.len() * BATCH);
    group.bench_function("prefetch_unlimited", |b| {
        b.iter(|| {
            s.broker
                .handle_input(s.publisher, black_box(&s.publishes), s.now);
            out.clear();
            s.broker.poll_transmit(s.consumer, &mut out);
            assert_eq!(out.len(), per * BATCH);
            let publishes_len = s.publishes.len();
            let _ = publishes_len;
            s.acks(BATCH, &mut acks);
            s.broker.handle_input(s.consumer, &acks, s.now);
            black_box(&out);
        })
    });
    let q = s.broker.queue("/", "nuropb-bench-sq").unwrap();
    assert_eq!((q.messages_ready, q.messages_unacknowledged), (0, 0));

    // Prefetch 100: the consumer acks what it got, which lets more through, until the batch is
    // done — a consumer keeping up with a publisher.
    let mut s = setup(100);
    let per = delivery_len(&mut s);
    group.bench_function("prefetch_100", |b| {
        b.iter_batched_ref(
            || (),
            |_| {
                s.broker
                    .handle_input(s.publisher, black_box(&s.publishes), s.now);
                let mut delivered = 0;
                while delivered < BATCH {
                    out.clear();
                    s.broker.poll_transmit(s.consumer, &mut out);
                    let n = out.len() / per;
                    assert!(n > 0 && out.len() == n * per);
                    delivered += n;
                    s.acks(n, &mut acks);
                    s.broker.handle_input(s.consumer, &acks, s.now);
                }
            },
            BatchSize::SmallInput,
        )
    });
    let q = s.broker.queue("/", "nuropb-bench-sq").unwrap();
    assert_eq!((q.messages_ready, q.messages_unacknowledged), (0, 0));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
