//! Staging crate for the sans-IO AMQP 0-9-1 layer of NuroPb.
//!
//! Everything lives under [`amqp`] so that the module moves into `nuropb-proto` unchanged.
#![forbid(unsafe_code)]

pub mod amqp;
