//! The property-list decoder on its own, on arbitrary bytes: salvaging never panics, agrees with
//! strict decoding on every list that decodes whole, and what it salvages always re-encodes into
//! a list that decodes whole, to the same bytes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuropb_proto::amqp::Properties;

fuzz_target!(|data: &[u8]| {
    let (salvaged, fault) = Properties::salvage(data);
    match Properties::decode(data) {
        Ok(decoded) => {
            assert!(fault.is_none());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            decoded.encode(&mut a);
            salvaged.encode(&mut b);
            assert_eq!(a, b);
        }
        Err(e) => assert_eq!(fault, Some(e)),
    }
    let mut once = Vec::new();
    salvaged.encode(&mut once);
    let again = Properties::decode(&once).expect("what was salvaged encodes into a readable list");
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(once, twice);
});
