//! Sans-IO core of NuroPb.
#![forbid(unsafe_code)]
