//! Service descriptions: what `nuropb_describe` answers (NUROPB-WIRE.md §5).
//!
//! - [`model`]: the description as JSON, exactly as Python NuroPb writes it (`encrypted_methods` a
//!   boolean, `parameters.properties` a list of `[name, {type, description, default}]` pairs,
//!   methods in alphabetical order, the public key as PEM SubjectPublicKeyInfo).
//! - [`spec`]: how a Rust service declares its methods, and the description that follows from it.

pub mod model;
pub mod spec;

pub use model::{MethodDescription, ParameterDescription, Parameters, ServiceDescription};
pub use spec::{MethodSpec, ParamSpec, ServiceSpec};

/// The reserved method name of a describe request.
pub const DESCRIBE_METHOD: &str = "nuropb_describe";
