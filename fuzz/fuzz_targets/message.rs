//! NuroPb messages from arbitrary property bytes and bodies: no panic; what decodes re-encodes
//! and decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::Properties;
use nuropb_proto::message::{Envelope, Exchanges, Publication, json};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize * 2).min(data.len());
    let (props, body) = data.split_at(cut);
    let _ = json::from_slice::<serde_json::Value>(body);
    let Ok(properties) = Properties::decode(props) else {
        return;
    };
    let Ok(envelope) = Envelope::from_properties(&properties) else {
        return;
    };
    let Ok(message) = envelope.open(body) else {
        return;
    };
    if let Ok(publication) = Publication::plaintext(&message, &Exchanges::default(), "rq") {
        let again = Envelope::from_properties(&publication.decoded_properties())
            .and_then(|e| e.open(&publication.body))
            .expect("our own encoding decodes");
        assert_eq!(again.payload, message.payload);
    }
});
