//! NuroPb on tokio: connect, serve, call, publish over RabbitMQ
#![forbid(unsafe_code)]
