//! Properties of `Broker::handle_input`: no input makes it panic, and the chunking of a client's
//! byte stream does not change what the broker answers.

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use nuropb_proto::amqp::frame::{PROTOCOL_HEADER, write_content, write_method};
use nuropb_proto::amqp::{Headers, Properties};
use nuropb_testkit::broker::{Broker, BrokerConfig};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn m(out: &mut Vec<u8>, ch: u16, method: AMQPClass) {
    write_method(out, ch, &method);
}

/// The bytes of a client through the handshake, with channel 1 open.
fn handshake(frame_max: u32) -> Vec<u8> {
    let mut b = PROTOCOL_HEADER.to_vec();
    let mut caps = FieldTable::default();
    caps.insert("consumer_cancel_notify".into(), AMQPValue::Boolean(true));
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response: LongString::from("\0guest\0guest"),
            locale: "en_US".into(),
        })),
    );
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: 100,
            frame_max,
            heartbeat: 30,
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
    b
}

/// A whole session on one connection: declares, a consumer with prefetch, confirms, publishes of
/// several sizes (some split over body frames), acks, nacks with requeue, a get, dead-lettering,
/// a cancel, a channel error, and a close.
fn session(bodies: &[usize]) -> Vec<u8> {
    let frame_max = 4096;
    let mut b = handshake(frame_max);
    let declare = |name: &str, args: FieldTable| {
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: args,
        }))
    };
    m(&mut b, 1, declare("dlq", FieldTable::default()));
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dlq".into()),
    );
    args.insert("x-max-length".into(), AMQPValue::LongInt(6));
    m(&mut b, 1, declare("q", args));
    m(
        &mut b,
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 2,
            global: false,
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    let mut headers = Headers::default();
    headers.insert("nuropb_type", AMQPValue::LongString("request".into()));
    let props = Properties {
        content_type: Some("application/json".into()),
        headers: Some(headers),
        ..Default::default()
    };
    for (i, &size) in bodies.iter().enumerate() {
        let key = if i % 5 == 4 { "nowhere" } else { "q" };
        m(
            &mut b,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: key.into(),
                mandatory: i % 2 == 0,
                immediate: false,
            })),
        );
        let body: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
        write_content(&mut b, 1, 60, &props, &body, frame_max);
        let tag = i as u64 + 1;
        match i % 4 {
            0 => m(
                &mut b,
                1,
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: tag,
                    multiple: false,
                })),
            ),
            1 => m(
                &mut b,
                1,
                AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: 0,
                    multiple: true,
                    requeue: i % 3 == 0,
                })),
            ),
            2 => m(
                &mut b,
                1,
                AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                    queue: "dlq".into(),
                    no_ack: true,
                })),
            ),
            _ => {}
        }
    }
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
    );
    // An unknown tag: the channel is closed; what follows on it is ignored until close-ok.
    m(
        &mut b,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 9999,
            multiple: false,
        })),
    );
    m(
        &mut b,
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    m(
        &mut b,
        2,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    );
    m(
        &mut b,
        2,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "q".into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    );
    m(
        &mut b,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    b
}

/// Feeds `bytes` in the given chunks and returns everything the broker sent back.
fn run(bytes: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut broker = Broker::new(BrokerConfig::default());
    let now = Instant::now();
    let c = broker.accept(now);
    let mut cuts: Vec<usize> = cuts.iter().map(|&x| x % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        broker.handle_input(c, &bytes[at..cut], now);
        at = cut;
        while let Some(b) = broker.take_transmit(c) {
            out.extend_from_slice(&b);
        }
    }
    out
}

/// Frames of every kind with arbitrary payloads, after a valid handshake.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let method_ids = prop::sample::select(vec![
        (10u16, 11u16),
        (10, 31),
        (10, 40),
        (10, 50),
        (10, 51),
        (20, 10),
        (20, 11),
        (20, 20),
        (20, 40),
        (20, 41),
        (30, 10),
        (40, 10),
        (40, 20),
        (40, 30),
        (40, 40),
        (50, 10),
        (50, 20),
        (50, 30),
        (50, 40),
        (50, 50),
        (60, 10),
        (60, 20),
        (60, 30),
        (60, 40),
        (60, 50),
        (60, 60),
        (60, 70),
        (60, 80),
        (60, 90),
        (60, 100),
        (60, 110),
        (60, 120),
        (85, 10),
        (90, 10),
        (99, 1),
    ]);
    (
        prop::sample::select(vec![1u8, 1, 1, 2, 3, 8, 9]),
        0u16..4,
        method_ids,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(kind, ch, (class, method), args)| {
            let mut payload = Vec::new();
            if kind == 1 {
                payload.extend_from_slice(&class.to_be_bytes());
                payload.extend_from_slice(&method.to_be_bytes());
            }
            payload.extend_from_slice(&args);
            let mut f = vec![kind];
            f.extend_from_slice(&ch.to_be_bytes());
            f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            f.extend_from_slice(&payload);
            f.push(0xCE);
            f
        })
}

/// 512 cases, or `PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Well-formed client methods with small random arguments, so that sequences reach deep into
/// the broker's logic (declares, bindings, consumers, settlements, dead-lettering, closes).
fn command() -> impl Strategy<Value = Vec<u8>> {
    let name = || prop::sample::select(vec!["", "a", "b", "amq.x", "dlx"]);
    let ch = 1u16..4;
    let args = prop::sample::select(vec![0u8, 1, 2, 3, 4]).prop_map(|k| {
        let mut t = FieldTable::default();
        match k {
            1 => {
                t.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString("".into()),
                );
                t.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString("b".into()),
                );
            }
            2 => {
                t.insert("x-message-ttl".into(), AMQPValue::LongInt(5));
            }
            3 => {
                t.insert("x-max-length".into(), AMQPValue::ShortShortUInt(1));
                t.insert(
                    "x-overflow".into(),
                    AMQPValue::LongString("reject-publish-dlx".into()),
                );
                t.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString("dlx".into()),
                );
            }
            4 => {
                t.insert("x-message-ttl".into(), AMQPValue::LongString("x".into()));
            }
            _ => {}
        }
        t
    });
    prop_oneof![
        (ch.clone(), name(), any::<[bool; 4]>(), args).prop_map(|(ch, q, f, arguments)| {
            let mut b = Vec::new();
            m(
                &mut b,
                ch,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: q.into(),
                    passive: f[0],
                    durable: f[1],
                    exclusive: f[2],
                    auto_delete: f[3],
                    nowait: false,
                    arguments,
                })),
            );
            b
        }),
        (
            ch.clone(),
            name(),
            prop::sample::select(vec!["direct", "fanout", "topic", "headers", "x"]),
            any::<[bool; 3]>()
        )
            .prop_map(|(ch, x, kind, f)| {
                let mut b = Vec::new();
                m(
                    &mut b,
                    ch,
                    AMQPClass::Exchange(amq_protocol::protocol::exchange::AMQPMethod::Declare(
                        amq_protocol::protocol::exchange::Declare {
                            exchange: x.into(),
                            kind: kind.into(),
                            passive: f[0],
                            durable: false,
                            auto_delete: f[1],
                            internal: f[2],
                            nowait: false,
                            arguments: FieldTable::default(),
                        },
                    )),
                );
                b
            }),
        (ch.clone(), name(), name(), name(), any::<bool>()).prop_map(|(ch, q, x, k, unbind)| {
            let mut b = Vec::new();
            let method = if unbind {
                AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
                    queue: q.into(),
                    exchange: x.into(),
                    routing_key: k.into(),
                    arguments: FieldTable::default(),
                }))
            } else {
                AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                    queue: q.into(),
                    exchange: x.into(),
                    routing_key: k.into(),
                    nowait: false,
                    arguments: FieldTable::default(),
                }))
            };
            m(&mut b, ch, method);
            b
        }),
        (
            ch.clone(),
            name(),
            name(),
            any::<bool>(),
            0usize..9000,
            prop::option::of("[0-9]{1,3}")
        )
            .prop_map(|(ch, x, k, mandatory, size, exp)| {
                let mut b = Vec::new();
                m(
                    &mut b,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                        exchange: x.into(),
                        routing_key: k.into(),
                        mandatory,
                        immediate: false,
                    })),
                );
                let props = Properties {
                    expiration: exp.map(|e| e.as_str().into()),
                    ..Default::default()
                };
                write_content(&mut b, ch, 60, &props, &vec![7u8; size], 4096);
                b
            }),
        (
            ch.clone(),
            name(),
            prop::sample::select(vec!["", "t1", "t2"]),
            any::<[bool; 2]>()
        )
            .prop_map(|(ch, q, tag, f)| {
                let mut b = Vec::new();
                m(
                    &mut b,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue: q.into(),
                        consumer_tag: tag.into(),
                        no_local: false,
                        no_ack: f[0],
                        exclusive: f[1],
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                );
                b
            }),
        (ch.clone(), 0u8..4, 0u64..6, any::<[bool; 2]>()).prop_map(|(ch, kind, tag, f)| {
            let mut b = Vec::new();
            let method = match kind {
                0 => basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: tag,
                    multiple: f[0],
                }),
                1 => basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: tag,
                    multiple: f[0],
                    requeue: f[1],
                }),
                2 => basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag: tag,
                    requeue: f[1],
                }),
                _ => basic::AMQPMethod::Recover(basic::Recover { requeue: true }),
            };
            m(&mut b, ch, AMQPClass::Basic(method));
            b
        }),
        (ch.clone(), 0u8..8, name(), 0u16..3, any::<bool>()).prop_map(|(ch, kind, q, n, f)| {
            let mut b = Vec::new();
            let method = match kind {
                0 => AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: n,
                    global: f,
                })),
                1 => AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                    queue: q.into(),
                    no_ack: f,
                })),
                2 => AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: if f { "t1" } else { "t2" }.into(),
                    nowait: false,
                })),
                3 => AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
                4 => AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                    reply_code: 200,
                    reply_text: "".into(),
                    class_id: 0,
                    method_id: 0,
                })),
                5 => AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                6 => AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: f })),
                _ => AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
                    queue: q.into(),
                    if_unused: f,
                    if_empty: !f,
                    nowait: false,
                })),
            };
            m(&mut b, ch, method);
            b
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_command_sequences_never_panic(
        a in prop::collection::vec(command(), 0..40),
        b in prop::collection::vec(command(), 0..40),
        ticks in prop::collection::vec(0u64..20, 0..40),
    ) {
        let mut broker = Broker::new(BrokerConfig {
            max_output_buffer: 20_000,
            ..BrokerConfig::default()
        });
        let mut now = Instant::now();
        let ca = broker.accept(now);
        let cb = broker.accept(now);
        let mut hs = handshake(131_072);
        for ch in 2..4u16 {
            m(&mut hs, ch, AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})));
        }
        broker.handle_input(ca, &hs, now);
        broker.handle_input(cb, &hs, now);
        for i in 0..a.len().max(b.len()) {
            if let Some(x) = a.get(i) {
                broker.handle_input(ca, x, now);
            }
            if let Some(x) = b.get(i) {
                broker.handle_input(cb, x, now);
            }
            if i % 3 == 0 {
                let _ = broker.take_transmit(ca);
            }
            if let Some(&ms) = ticks.get(i) {
                now += Duration::from_millis(ms);
                broker.handle_timeout(now);
            }
        }
        let _ = broker.take_transmit(ca);
        let _ = broker.take_transmit(cb);
        if a.len() % 2 == 0 {
            broker.restart(now);
        }
        broker.disconnect(ca, now);
        broker.disconnect(cb, now);
        // Nothing is left hanging on the connections that are gone.
        for q in broker.queues("/") {
            prop_assert_eq!((q.consumers, q.messages_unacknowledged), (0, 0));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
        with_handshake in any::<bool>(),
        steps in prop::collection::vec(0u64..100_000, 0..5),
    ) {
        let mut broker = Broker::new(BrokerConfig::default());
        let mut now = Instant::now();
        let c = broker.accept(now);
        if with_handshake {
            broker.handle_input(c, &handshake(131_072), now);
        }
        for chunk in &chunks {
            broker.handle_input(c, chunk, now);
            let _ = broker.take_transmit(c);
        }
        for ms in steps {
            now += Duration::from_millis(ms);
            broker.handle_timeout(now);
            let _ = broker.poll_timeout();
        }
        broker.disconnect(c, now);
        prop_assert!(broker.is_closed(c));
    }

    #[test]
    fn arbitrary_frames_never_panic(frames in prop::collection::vec(frame(), 0..40)) {
        let mut broker = Broker::new(BrokerConfig::default());
        let now = Instant::now();
        let other = broker.accept(now);
        broker.handle_input(other, &handshake(131_072), now);
        let c = broker.accept(now);
        broker.handle_input(c, &handshake(131_072), now);
        for f in &frames {
            broker.handle_input(c, f, now);
            let _ = broker.take_transmit(c);
        }
        broker.restart(now);
        broker.disconnect(c, now);
    }

    #[test]
    fn mutated_sessions_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = session(&[10, 5000, 0, 300, 9000, 1, 2]);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = run(&bytes, &cuts);
    }

    #[test]
    fn chunking_does_not_change_the_answer(
        bodies in prop::collection::vec(
            prop::sample::select(vec![0usize, 1, 100, 4087, 4088, 4089, 10_000]), 1..12),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let bytes = session(&bodies);
        let whole = run(&bytes, &[]);
        prop_assert!(!whole.is_empty());
        prop_assert_eq!(run(&bytes, &cuts), whole);
    }
}

#[test]
fn the_session_exercises_what_it_claims() {
    let bytes = session(&[10, 5000, 0, 300, 9000, 1, 2, 3]);
    let out = run(&bytes, &[]);
    let mut reader = nuropb_proto::amqp::FrameReader::new(1 << 20);
    let mut frames = Vec::new();
    reader.read(&out, &mut frames).unwrap();
    let count = |pred: &dyn Fn(&AMQPClass) -> bool| {
        frames
            .iter()
            .filter(|f| matches!(f, nuropb_proto::amqp::Frame::Method(_, m) if pred(m)))
            .count()
    };
    assert!(count(&|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::Deliver(_)))) >= 4);
    assert!(count(&|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::Return(_)))) >= 1);
    assert_eq!(
        count(&|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::Ack(_)))),
        8
    );
    assert!(count(&|m| matches!(m, AMQPClass::Basic(basic::AMQPMethod::GetOk(_)))) >= 1);
    assert_eq!(
        count(
            &|m| matches!(m, AMQPClass::Channel(channel::AMQPMethod::Close(c)) if c.reply_code == 406)
        ),
        1
    );
    assert_eq!(
        count(&|m| matches!(m, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))),
        1
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_fuzz_entry_point_never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
        nuropb_testkit::fuzzing::run(&data);
    }
}
