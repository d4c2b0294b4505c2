//! The gateway on the machine's RabbitMQ, in front of the Rust `service_example`, a probe
//! service and (in `python`) Python NuroPb's `ServiceExample`: every frame type, every HTTP
//! route and status, nuropb-gw's own client frames, where tokens come from, the bounds.

mod http;
mod limits;
mod python;
mod support;
mod websocket;
