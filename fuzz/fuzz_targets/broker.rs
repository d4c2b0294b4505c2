//! The testkit broker fed arbitrary client bytes on two connections: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_testkit::broker::{Broker, BrokerConfig};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut broker = Broker::new(BrokerConfig::default());
    let a = broker.accept(t0);
    let b = broker.accept(t0);
    let mut now = t0;
    for (i, chunk) in data.chunks(53).enumerate() {
        let c = if i % 3 == 2 { b } else { a };
        broker.handle_input(c, chunk, now);
        now += Duration::from_millis(11);
        broker.handle_timeout(now);
        while broker.poll_transmit(a).is_some() {}
        while broker.poll_transmit(b).is_some() {}
    }
    broker.disconnect(a, now);
});
