//! `GET /openapi.json`: an OpenAPI 3.1 document made at run time from the describe of the
//! services the gateway names, with Python's type names as JSON Schema types.

use crate::state::Shared;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use nuropb_proto::describe::ServiceDescription;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The JSON Schema of a Python type name as NuroPb's describe gives it: `int` an integer,
/// `float` a number, `str` a string, `bool` a boolean, `list`/`List[...]`/`tuple`/`set` an
/// array, `dict`/`Dict[...]` an object, `None` null, `Optional[X]` X or null, anything else
/// (`Any`, a class, no annotation) any value.
pub(crate) fn schema_of(type_name: &str) -> Value {
    let t = type_name.trim();
    if let Some(inner) = t
        .strip_prefix("Optional[")
        .or_else(|| t.strip_prefix("typing.Optional["))
        .and_then(|r| r.strip_suffix(']'))
    {
        let mut schema = schema_of(inner);
        if let Some(Value::String(kind)) = schema.get("type").cloned() {
            schema["type"] = json!([kind, "null"]);
        }
        return schema;
    }
    let base = t
        .split('[')
        .next()
        .unwrap_or(t)
        .trim_start_matches("typing.");
    let (kind, items) = match base {
        "int" => ("integer", None),
        "float" | "Decimal" => ("number", None),
        "str" => ("string", None),
        "bool" => ("boolean", None),
        "None" | "NoneType" => ("null", None),
        "dict" | "Dict" | "Mapping" => ("object", None),
        "list" | "List" | "tuple" | "Tuple" | "set" | "Set" | "Sequence" => {
            let items = t
                .split_once('[')
                .and_then(|(_, r)| r.strip_suffix(']'))
                .filter(|inner| !inner.contains(','))
                .map(schema_of);
            ("array", items)
        }
        _ => return json!({}),
    };
    let mut schema = json!({"type": kind});
    if let Some(items) = items {
        schema["items"] = items;
    }
    schema
}

fn error_responses() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let mut responses = Map::new();
    for (status, what) in [
        (
            "400",
            "invalid parameters or body (NuropbValidationError, NuropbMessageError)",
        ),
        ("401", "no valid token (NuropbAuthenticationError)"),
        ("403", "not authorized (NuropbAuthorizationError)"),
        (
            "404",
            "no such service or method (NuropbNotDeliveredError, NuropbHandlingError)",
        ),
        ("429", "over the rate limit; see Retry-After"),
        (
            "500",
            "the method failed (NuropbHandlingError or the service's own error)",
        ),
        ("504", "no response in time (NuropbTimeoutError)"),
    ] {
        responses.insert(
            status.into(),
            json!({"description": what, "content": {"application/json": {"schema": error}}}),
        );
    }
    Value::Object(responses)
}

fn body_schema(method: &nuropb_proto::describe::MethodDescription) -> Value {
    let mut properties = Map::new();
    for (name, p) in &method.parameters.properties {
        let mut schema = schema_of(&p.type_name);
        if !p.description.is_empty() {
            schema["description"] = json!(p.description);
        }
        if !method.parameters.required.contains(name) && !(p.default == json!("")) {
            schema["default"] = p.default.clone();
        }
        properties.insert(name.clone(), schema);
    }
    json!({"type": "object", "properties": properties, "required": method.parameters.required})
}

/// The paths of one service.
fn service_paths(service: &str, description: &ServiceDescription, paths: &mut Map<String, Value>) {
    paths.insert(
        format!("/api/{service}"),
        json!({"get": {
            "summary": format!("Describe {service}"),
            "tags": [service],
            "responses": {"200": {"description": "the service's description", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    for (name, method) in &description.methods {
        let summary = method
            .description
            .clone()
            .unwrap_or_else(|| format!("{service}.{name}"));
        let body = json!({"required": false, "content": {"application/json": {"schema": body_schema(method)}}});
        let mut responses = error_responses();
        responses["200"] =
            json!({"description": "the result", "content": {"application/json": {"schema": {}}}});
        paths.insert(
            format!("/api/{service}/{name}"),
            json!({"post": {"summary": summary, "operationId": format!("{service}.{name}"), "tags": [service], "requestBody": body, "responses": responses}}),
        );
        let mut responses = error_responses();
        responses["202"] = json!({"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}});
        paths.insert(
            format!("/api/{service}/{name}/command"),
            json!({"post": {"summary": format!("{summary} (as a command: no result)"), "operationId": format!("{service}.{name}.command"), "tags": [service], "requestBody": body, "responses": responses}}),
        );
    }
}

/// The document, for the services that could be described; those that could not are listed
/// under `x-nuropb-unavailable`.
pub(crate) async fn document(gw: &Shared) -> Value {
    let mut paths = Map::new();
    let mut unavailable = Vec::new();
    for service in &gw.services {
        match gw.catalog.describe(&gw.mesh, service, false).await {
            Ok(description) => service_paths(service, &description, &mut paths),
            Err(refusal) => {
                unavailable.push(json!({"service": service, "error": refusal.error.to_dict()}))
            }
        }
    }
    paths.insert(
        "/api/events/{topic}".into(),
        json!({"post": {"summary": "Publish an event on a topic", "tags": ["events"],
            "parameters": [{"name": "topic", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "responses": {"202": {"description": "published", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}}}}),
    );
    paths.insert(
        "/api/events".into(),
        json!({"get": {"summary": "Mesh events on a topic pattern, as Server-Sent Events", "tags": ["events"],
            "parameters": [{"name": "topic", "in": "query", "required": true, "schema": {"type": "string"}, "description": "an AMQP topic pattern: * one word, # any"}],
            "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "NuroPb gateway", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Methods of NuroPb services, called over HTTP through the gateway."},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "description": {"type": "string"}}, "required": ["error", "description"]},
                "Accepted": {"type": "object", "properties": {"correlation_id": {"type": "string"}, "trace_id": {"type": "string"}}}
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "security": [{"bearer": []}],
        "x-nuropb-unavailable": unavailable,
    })
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(gw): State<Arc<Shared>>) -> Response {
    axum::Json(document(&gw).await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_type_names_map_to_json_schema() {
        let cases = [
            ("int", json!({"type": "integer"})),
            ("float", json!({"type": "number"})),
            ("str", json!({"type": "string"})),
            ("bool", json!({"type": "boolean"})),
            ("Dict", json!({"type": "object"})),
            ("dict", json!({"type": "object"})),
            (
                "List[int]",
                json!({"type": "array", "items": {"type": "integer"}}),
            ),
            ("list", json!({"type": "array"})),
            ("Optional[str]", json!({"type": ["string", "null"]})),
            ("Any", json!({})),
            ("", json!({})),
            ("OrderModel", json!({})),
        ];
        for (name, schema) in cases {
            assert_eq!(schema_of(name), schema, "{name}");
        }
    }
}
