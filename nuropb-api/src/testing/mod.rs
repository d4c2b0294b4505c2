//! For tests: Python NuroPb's stubs, and one end-to-end suite every runtime adapter runs.

pub mod bench;
pub mod interop;
pub mod stubs;
pub mod suite;

pub use stubs::service_example;
