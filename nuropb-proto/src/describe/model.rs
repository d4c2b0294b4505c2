//! The service description as it travels in the `result` of a describe response.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A service's description of itself.
///
/// ```
/// use nuropb_proto::describe::ServiceDescription;
/// let json = r#"{"service_name": "svc", "service_version": null, "description": null, "warnings": [],
///   "encrypted_methods": false, "public_key": null, "methods": {}}"#;
/// let description: ServiceDescription = serde_json::from_str(json).unwrap();
/// assert_eq!(description.service_name.as_deref(), Some("svc"));
/// assert!(!description.requires_encryption("anything"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceDescription {
    /// The service name.
    #[serde(default)]
    pub service_name: Option<String>,
    /// The service version, if it has one.
    #[serde(default)]
    pub service_version: Option<String>,
    /// What the service does.
    #[serde(default)]
    pub description: Option<String>,
    /// Problems found while describing, e.g. an encrypted method but no key.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Whether any method requires encryption.
    #[serde(default)]
    pub encrypted_methods: bool,
    /// The service's public key, PEM SubjectPublicKeyInfo, when it has encrypted methods.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The methods, by name, in alphabetical order.
    #[serde(default)]
    pub methods: BTreeMap<String, MethodDescription>,
}

impl ServiceDescription {
    /// Whether `method` is described as requiring encryption.
    pub fn requires_encryption(&self, method: &str) -> bool {
        self.methods
            .get(method)
            .is_some_and(|m| m.requires_encryption)
    }
}

/// One method of a description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodDescription {
    /// What the method does.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether calls must be encrypted.
    #[serde(default)]
    pub requires_encryption: bool,
    /// The keyword parameters.
    #[serde(default)]
    pub parameters: Parameters,
}

/// The parameters of a method, as a JSON-schema-like object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// Always `"object"`.
    #[serde(rename = "type", default = "object")]
    pub kind: String,
    /// The parameters in declaration order, as `[name, description]` pairs.
    #[serde(default)]
    pub properties: Vec<(String, ParameterDescription)>,
    /// The names of parameters without a default.
    #[serde(default)]
    pub required: Vec<String>,
}

fn object() -> String {
    "object".to_owned()
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            kind: object(),
            properties: Vec::new(),
            required: Vec::new(),
        }
    }
}

/// One parameter of a method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParameterDescription {
    /// The Python type name (`int`, `str`, `Any` …), or `""` when unannotated.
    #[serde(rename = "type", default)]
    pub type_name: String,
    /// What the parameter means (Python NuroPb always sends `""`).
    #[serde(default)]
    pub description: String,
    /// The default value, or `""` when the parameter is required.
    #[serde(default)]
    pub default: Value,
}
