//! An entry point for fuzzers: arbitrary bytes drive a broker through every public input.
//!
//! ```
//! nuropb_testkit::fuzzing::run(b"\x03\x10AMQP\x00\x00\x09\x01garbage");
//! ```
//!
//! A cargo-fuzz target is one line: `fuzz_target!(|data: &[u8]| nuropb_testkit::fuzzing::run(data));`

use crate::broker::{Broker, BrokerConfig};
use amq_protocol::protocol::{channel, connection};
use nuropb_proto::amqp::frame::{PROTOCOL_HEADER, write_method};
use nuropb_proto::amqp::{AMQPClass, FieldTable, LongString};
use std::time::{Duration, Instant};

/// The bytes of a client that has logged in, opened `/` and channel 1.
fn handshake() -> Vec<u8> {
    let mut b = PROTOCOL_HEADER.to_vec();
    let methods = [
        (
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        ),
        (
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 64,
                frame_max: 131_072,
                heartbeat: 10,
            })),
        ),
        (
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ),
        (
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ),
    ];
    for (ch, m) in &methods {
        write_method(&mut b, *ch, m);
    }
    b
}

/// Feeds `data` to a broker. The first byte chooses the setup — bit 0: start each connection
/// with a valid handshake so the rest reaches channel logic; bit 1: use two connections. Then
/// each chunk is one length byte and that many bytes, given to the connections in turn; a zero
/// length advances the clock by the next byte's worth of seconds instead. Ends with a restart
/// and disconnects. Never panics, whatever `data` is — that is what it checks.
pub fn run(data: &[u8]) {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let mut broker = Broker::new(BrokerConfig {
        max_output_buffer: 64 * 1024,
        ..BrokerConfig::default()
    });
    let mut now = Instant::now();
    let n = if setup & 2 != 0 { 2 } else { 1 };
    let conns: Vec<_> = (0..n).map(|_| broker.accept(now)).collect();
    if setup & 1 != 0 {
        let hs = handshake();
        for &c in &conns {
            broker.handle_input(c, &hs, now);
        }
    }
    let mut turn = 0;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            let Some((&secs, tail)) = tail.split_first() else {
                break;
            };
            now += Duration::from_secs(secs as u64);
            broker.handle_timeout(now);
            rest = tail;
            continue;
        }
        let take = (len as usize).min(tail.len());
        let c = conns[turn % conns.len()];
        broker.handle_input(c, &tail[..take], now);
        rest = &tail[take..];
        turn += 1;
        for c in broker.connections_to_service() {
            while broker.take_transmit(c).is_some() {}
        }
        let _ = broker.poll_timeout();
    }
    broker.restart(now);
    for c in conns {
        broker.disconnect(c, now);
    }
}
