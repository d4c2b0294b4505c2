//! Declaring a service's methods in Rust, and the description that follows from the declaration.

use crate::describe::model::{
    MethodDescription, ParameterDescription, Parameters, ServiceDescription,
};
use serde_json::Value;

/// The context key an authorization token is read from by default.
pub const DEFAULT_TOKEN_KEY: &str = "Authorization";

/// A keyword parameter of a method.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// The name.
    pub name: String,
    /// The type name shown in descriptions, e.g. `"str"`, `"int"`, `"Any"`.
    pub type_name: String,
    /// What it means.
    pub description: String,
    /// The default; `None` makes the parameter required.
    pub default: Option<Value>,
}

/// A method a service offers on the mesh.
///
/// ```
/// use nuropb_proto::describe::MethodSpec;
/// let method = MethodSpec::new("transfer")
///     .description("moves money")
///     .param("amount", "int")
///     .param_with_default("memo", "str", "")
///     .requires_encryption()
///     .authorized();
/// assert!(method.authorize && method.requires_encryption);
/// assert_eq!(method.context_token_key, "Authorization");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSpec {
    /// The method name; names starting with `_` cannot be called.
    pub name: String,
    /// What the method does.
    pub description: Option<String>,
    /// Its keyword parameters, in order.
    pub parameters: Vec<ParamSpec>,
    /// Whether calls must be encrypted; plaintext calls are refused.
    pub requires_encryption: bool,
    /// Whether the method is left out of descriptions. The endpoint also refuses calls to it as
    /// an unknown method, where Python NuroPb would still run it.
    pub hidden: bool,
    /// Whether the caller's token must pass the service's authorize hook first.
    pub authorize: bool,
    /// The context key holding the token.
    pub context_token_key: String,
}

impl MethodSpec {
    /// A method with no parameters, no description, no requirements.
    pub fn new(name: impl Into<String>) -> Self {
        MethodSpec {
            name: name.into(),
            description: None,
            parameters: Vec::new(),
            requires_encryption: false,
            hidden: false,
            authorize: false,
            context_token_key: DEFAULT_TOKEN_KEY.to_owned(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Adds a required parameter.
    pub fn param(mut self, name: impl Into<String>, type_name: impl Into<String>) -> Self {
        self.parameters.push(ParamSpec {
            name: name.into(),
            type_name: type_name.into(),
            description: String::new(),
            default: None,
        });
        self
    }

    /// Adds a parameter with a default value.
    pub fn param_with_default(
        mut self,
        name: impl Into<String>,
        type_name: impl Into<String>,
        default: impl Into<Value>,
    ) -> Self {
        self.parameters.push(ParamSpec {
            name: name.into(),
            type_name: type_name.into(),
            description: String::new(),
            default: Some(default.into()),
        });
        self
    }

    /// Requires calls to be encrypted.
    pub fn requires_encryption(mut self) -> Self {
        self.requires_encryption = true;
        self
    }

    /// Leaves the method out of descriptions.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Requires the token under [`DEFAULT_TOKEN_KEY`] to pass the authorize hook.
    pub fn authorized(mut self) -> Self {
        self.authorize = true;
        self
    }

    /// Requires the token under `key` to pass the authorize hook.
    pub fn authorized_by(mut self, key: impl Into<String>) -> Self {
        self.authorize = true;
        self.context_token_key = key.into();
        self
    }

    /// This method's entry in a description.
    pub fn describe(&self) -> MethodDescription {
        MethodDescription {
            description: self.description.clone(),
            requires_encryption: self.requires_encryption,
            parameters: Parameters {
                kind: "object".to_owned(),
                properties: self
                    .parameters
                    .iter()
                    .map(|p| {
                        let spec = ParameterDescription {
                            type_name: p.type_name.clone(),
                            description: p.description.clone(),
                            default: p
                                .default
                                .clone()
                                .unwrap_or_else(|| Value::String(String::new())),
                        };
                        (p.name.clone(), spec)
                    })
                    .collect(),
                required: self
                    .parameters
                    .iter()
                    .filter(|p| p.default.is_none())
                    .map(|p| p.name.clone())
                    .collect(),
            },
        }
    }
}

/// A service: its name, version, description and methods.
///
/// ```
/// use nuropb_proto::describe::{MethodSpec, ServiceSpec};
/// let service = ServiceSpec::new("orders")
///     .version("1.0")
///     .method(MethodSpec::new("place").param("item", "str"))
///     .method(MethodSpec::new("audit").hidden());
/// let description = service.describe(None);
/// assert_eq!(description.methods.keys().collect::<Vec<_>>(), ["place"]);
/// assert!(service.find("audit").is_some(), "declared, though not described");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSpec {
    /// The service name, which is also its routing key.
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Its methods.
    pub methods: Vec<MethodSpec>,
}

impl ServiceSpec {
    /// A service with no methods.
    pub fn new(name: impl Into<String>) -> Self {
        ServiceSpec {
            name: name.into(),
            ..ServiceSpec::default()
        }
    }

    /// Sets the version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Adds a method, replacing one of the same name.
    pub fn method(mut self, method: MethodSpec) -> Self {
        self.methods.retain(|m| m.name != method.name);
        self.methods.push(method);
        self
    }

    /// The method called `name`, if declared.
    pub fn find(&self, name: &str) -> Option<&MethodSpec> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// Whether any method requires encryption.
    pub fn has_encrypted_methods(&self) -> bool {
        self.methods.iter().any(|m| m.requires_encryption)
    }

    /// The description `nuropb_describe` answers with; `public_key_pem` is the service's key,
    /// included when a method requires encryption (a warning is added when there is none).
    pub fn describe(&self, public_key_pem: Option<&str>) -> ServiceDescription {
        let encrypted = self.has_encrypted_methods();
        let mut warnings = Vec::new();
        if encrypted && public_key_pem.is_none() {
            warnings
                .push("Service has encrypted methods but no private key has been set.".to_owned());
        }
        ServiceDescription {
            service_name: Some(self.name.clone()),
            service_version: self.version.clone(),
            description: self.description.clone(),
            warnings,
            encrypted_methods: encrypted,
            public_key: if encrypted {
                public_key_pem.map(str::to_owned)
            } else {
                None
            },
            methods: self
                .methods
                .iter()
                .filter(|m| !m.hidden && !m.name.starts_with('_'))
                .map(|m| (m.name.clone(), m.describe()))
                .collect(),
        }
    }
}
