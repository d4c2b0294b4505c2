//! The testkit broker fed arbitrary client bytes (with or without a valid handshake first, on
//! one or two connections, with clock jumps and a restart): no panic. See
//! `nuropb_testkit::fuzzing::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| nuropb_testkit::fuzzing::run(data));
