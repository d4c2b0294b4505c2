//! An in-memory AMQP 0-9-1 broker and a deterministic simulator for testing NuroPb
#![forbid(unsafe_code)]
