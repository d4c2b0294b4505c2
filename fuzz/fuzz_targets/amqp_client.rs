//! The AMQP client connection fed arbitrary broker bytes, in arbitrary chunks, with time passing:
//! no panic, and output stays bounded by what it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::{Config, Connection};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut conn = Connection::new(Config::default(), t0).expect("default config");
    let mut out = Vec::new();
    let mut now = t0;
    for chunk in data.chunks(97) {
        conn.handle_input(chunk, now);
        now += Duration::from_millis(chunk.len() as u64 * 50);
        conn.handle_timeout(now);
        out.clear();
        conn.poll_transmit(&mut out);
        while conn.poll_event().is_some() {}
        if conn.is_open() {
            let _ = conn.open_channel();
        }
    }
    conn.handle_eof(now);
    while conn.poll_event().is_some() {}
});
