//! Frames and content properties from arbitrary bytes, in arbitrary chunks: no panic, and what
//! decodes re-encodes stably (compared as bytes: a NaN float is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::{FrameReader, Properties};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut reader = FrameReader::new(131_072);
    let mut frames = Vec::new();
    if reader.read(&data[..split], &mut frames).is_ok() {
        let _ = reader.read(&data[split..], &mut frames);
    }
    if let Ok(props) = Properties::decode(data) {
        let mut once = Vec::new();
        props.encode(&mut once);
        let mut twice = Vec::new();
        Properties::decode(&once)
            .expect("our own encoding decodes")
            .encode(&mut twice);
        assert_eq!(once, twice);
    }
});
