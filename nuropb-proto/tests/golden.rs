//! Golden tests: every message Python NuroPb 0.1.8 put on the wire in the recorded captures.
//!
//! The captures live in `../shared/wire/wire-captures/` beside the project (override with
//! `NUROPB_WIRE_CAPTURES`). Each message is decoded from its exact content-header property bytes
//! and body; each plaintext one is then mapped back to AMQP and must give the same property bytes,
//! the same body bytes, the same exchange and routing key.

mod captures;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nuropb_proto::amqp::Properties;
use nuropb_proto::crypto::{CryptoError, SymmetricKey, keys, sealed};
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::message::{
    DecodeError, Envelope, Exchanges, MessageType, Payload, Publication, TransportMessage, json,
};
use serde_json::{Value, json};

fn load(name: &str) -> Value {
    captures::read(name)
}

/// A captured basic.publish, basic.deliver or basic.return.
struct Captured {
    scenario: String,
    label: String,
    method: String,
    args: Value,
    raw_properties: Vec<u8>,
    body: Vec<u8>,
}

impl Captured {
    fn name(&self) -> String {
        format!("{} / {} / {}", self.scenario, self.label, self.method)
    }
}

const SCENARIOS: [&str; 15] = [
    "all_in_one",
    "call_again",
    "command",
    "decode_errors",
    "describe",
    "encrypted",
    "events",
    "exceptions",
    "json_types",
    "reconnect",
    "request_basic",
    "setup_mesh",
    "single_instance",
    "unroutable",
    "dead_letters",
];

fn messages(scenario: &str) -> Vec<Captured> {
    let capture = load(&format!("{scenario}.json"));
    let Some(records) = capture.get("records").and_then(Value::as_array) else {
        return Vec::new(); // dead_letters.json is a broker dump, not a frame recording
    };
    let mut label = String::new();
    let mut out = Vec::new();
    for record in records {
        match record["frame"].as_str() {
            Some("marker") => label = record["label"].as_str().unwrap_or_default().to_owned(),
            Some("message") => out.push(Captured {
                scenario: scenario.to_owned(),
                label: label.clone(),
                method: record["method"].as_str().unwrap().to_owned(),
                args: record["args"].clone(),
                raw_properties: STANDARD
                    .decode(record["properties_raw_b64"].as_str().unwrap())
                    .unwrap(),
                body: STANDARD
                    .decode(record["body_b64"].as_str().unwrap())
                    .unwrap(),
            }),
            _ => {}
        }
    }
    out
}

fn all_messages() -> Vec<Captured> {
    SCENARIOS.iter().flat_map(|s| messages(s)).collect()
}

/// Hand-made messages (decode_errors.json) and what reading them must give.
fn expected_failure(message: &Captured) -> Option<DecodeError> {
    // The hand-made messages go to the service; its answers go to a private reply queue.
    if message.scenario != "decode_errors" || message.args["routing_key"] != "research-svc" {
        return None;
    }
    let label = message.label.as_str();
    Some(match label {
        l if l.contains("unsupported nuropb_protocol") => {
            DecodeError::UnsupportedProtocol(Some("0.2.0".into()))
        }
        l if l.contains("unknown nuropb_type") => DecodeError::UnknownType(Some("bogus".into())),
        l if l.contains("no headers at all") => DecodeError::NoHeaders,
        l if l.contains("invalid JSON body") => DecodeError::Json(json::JsonError {
            message: "key must be a string at line 1 column 2".into(),
        }),
        l if l.contains("JSON body not an object") => DecodeError::NotAnObject("list"),
        l if l.contains("response-typed message") => DecodeError::MissingField {
            kind: MessageType::Response,
            field: "result",
        },
        _ => return None,
    })
}

/// Messages whose body cannot come back byte for byte, and why.
fn known_divergence(message: &Captured) -> Option<&'static str> {
    let body = String::from_utf8_lossy(&message.body);
    if body.contains("NaN") || body.contains("Infinity") {
        return Some("Python's NaN/Infinity read as null (JSON has no such values)");
    }
    if body.contains("1180591620717411303424") {
        return Some("an integer beyond 64 bits reads as the nearest double");
    }
    if message.label.contains("missing 'context'") && message.args["routing_key"] == "research-svc"
    {
        return Some(
            "hand-made request without context: read as {}, where Python answers KeyError",
        );
    }
    if message.label.contains("compact JSON") && message.args["routing_key"] == "research-svc" {
        return Some("hand-made compact JSON; we write Python's json.dumps style");
    }
    None
}

#[test]
fn every_captured_property_list_round_trips_byte_for_byte() {
    let all = all_messages();
    assert!(
        all.len() > 180,
        "only {} captured messages found",
        all.len()
    );
    for message in &all {
        let properties = Properties::decode(&message.raw_properties)
            .unwrap_or_else(|e| panic!("{}: {e}", message.name()));
        let mut again = Vec::new();
        properties.encode(&mut again);
        assert_eq!(again, message.raw_properties, "{}", message.name());
    }
}

#[test]
fn every_captured_plaintext_message_decodes_and_re_encodes_identically() {
    let exchanges = Exchanges::default();
    let (mut identical, mut diverging, mut refused, mut encrypted) = (0, 0, 0, 0);
    for message in all_messages() {
        let name = message.name();
        let properties = Properties::decode(&message.raw_properties).unwrap();
        let envelope = match (
            Envelope::from_properties(&properties),
            expected_failure(&message),
        ) {
            (Err(err), Some(expected)) => {
                assert_eq!(err, expected, "{name}");
                refused += 1;
                continue;
            }
            (Err(err), None) => panic!("{name}: {err}"),
            (Ok(envelope), _) => envelope,
        };
        if envelope.encrypted && !message.body.starts_with(b"{") {
            encrypted += 1; // see encrypted_requests_and_responses_decrypt_with_the_captured_keys
            continue;
        }
        let decoded = envelope.open(&message.body);
        let decoded = match (decoded, expected_failure(&message)) {
            (Err(err), Some(expected)) => {
                assert_eq!(err, expected, "{name}");
                refused += 1;
                continue;
            }
            (Err(err), None) => panic!("{name}: {err}"),
            (Ok(_), Some(expected)) => panic!("{name}: decoded, expected {expected}"),
            (Ok(decoded), None) => decoded,
        };

        let reply_to = properties
            .reply_to
            .as_ref()
            .map(|r| r.as_str())
            .unwrap_or_default();
        let publication = Publication::plaintext(&decoded, &exchanges, reply_to).unwrap();
        assert_eq!(
            publication.properties, message.raw_properties,
            "{name}: properties"
        );
        assert_eq!(
            publication.exchange.as_str(),
            message.args["exchange"].as_str().unwrap(),
            "{name}: exchange"
        );
        assert_eq!(
            publication.routing_key.as_str(),
            message.args["routing_key"].as_str().unwrap(),
            "{name}: routing key"
        );
        if message.method == "basic.publish" {
            assert_eq!(
                publication.mandatory,
                message.args["mandatory"].as_bool().unwrap(),
                "{name}: mandatory"
            );
        }

        match known_divergence(&message) {
            None => {
                assert_eq!(
                    String::from_utf8_lossy(&publication.body),
                    String::from_utf8_lossy(&message.body),
                    "{name}: body"
                );
                identical += 1;
            }
            Some(_why) => {
                // Same document, up to what the divergence names.
                let ours: Value = json::from_slice(&publication.body).unwrap();
                let mut theirs: Value = json::from_slice(&message.body).unwrap();
                if theirs.get("context").is_none() {
                    theirs["context"] = json!({});
                }
                assert_eq!(ours, theirs, "{name}");
                diverging += 1;
            }
        }
    }
    // Every category is exercised, and almost everything is byte-identical.
    assert_eq!(
        refused, 12,
        "six hand-made undecodable messages, published and delivered"
    );
    // NaN, 2^70, compact JSON and a missing context; each published and delivered.
    assert_eq!(diverging, 8);
    assert_eq!(encrypted, 13, "encrypted bodies");
    assert!(identical > 150, "{identical} identical");
}

#[test]
fn divergent_values_read_as_documented() {
    let nan = all_messages()
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("NaN"))
        .unwrap();
    let properties = Properties::decode(&nan.raw_properties).unwrap();
    let message = Envelope::from_properties(&properties)
        .unwrap()
        .open(&nan.body)
        .unwrap();
    let Payload::Response(response) = message.payload else {
        panic!("not a response")
    };
    assert_eq!(response.result, json!({"nan": null, "inf": null}));

    let big = all_messages()
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.body).contains("1180591620717411303424"))
        .unwrap();
    let properties = Properties::decode(&big.raw_properties).unwrap();
    let message = Envelope::from_properties(&properties)
        .unwrap()
        .open(&big.body)
        .unwrap();
    let Payload::Response(response) = message.payload else {
        panic!("not a response")
    };
    assert_eq!(response.result["big_int"].as_f64(), Some(2f64.powi(70)));
    assert_eq!(response.result["unicode"], json!("café ☃ 😀"));
}

#[test]
fn encrypted_requests_and_responses_decrypt_with_the_captured_keys() {
    let capture = load("encrypted.json");
    let private_key =
        keys::private_key_from_pem(capture["extra"]["private_key_pem"].as_str().unwrap()).unwrap();
    let symmetric: Vec<String> = capture["extra"]["symmetric_keys_generated_in_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut decrypted = 0;
    for message in messages("encrypted") {
        let properties = Properties::decode(&message.raw_properties).unwrap();
        let envelope = Envelope::from_properties(&properties).unwrap();
        if !envelope.encrypted || message.body.starts_with(b"{") {
            continue;
        }
        let (wrapped, token) = sealed::split(&message.body).unwrap();
        // Requests, commands and responses all wrap the key with the service's public key.
        let key = SymmetricKey::unwrap(wrapped, &private_key).unwrap();
        assert!(
            symmetric.iter().any(|k| k == key.as_text()),
            "{}: unknown key",
            message.name()
        );
        let plaintext = sealed::open(token, &key).unwrap();
        let kind = envelope.kind;
        let decoded: TransportMessage = envelope.open(&plaintext).unwrap();
        assert_eq!(decoded.kind(), kind);
        // Once decrypted, the JSON is Python's, byte for byte.
        assert_eq!(decoded.payload.to_json(), plaintext, "{}", message.name());
        // A wrong key, a flipped byte, a truncation: one uniform error.
        let other = SymmetricKey::generate();
        assert_eq!(sealed::open(token, &other), Err(CryptoError::Undecryptable));
        let mut tampered = token.to_vec();
        tampered[40] ^= 1;
        assert_eq!(
            sealed::open(&tampered, &key),
            Err(CryptoError::Undecryptable)
        );
        assert_eq!(
            sealed::open(&token[..token.len() - 8], &key),
            Err(CryptoError::Undecryptable)
        );
        decrypted += 1;
    }
    // Request, response, command, the NuropbSuccess request and its two responses (the second under
    // a fresh key, which is why Python's own client cannot read it), each published and delivered —
    // but the last second response has no recorded delivery.
    assert_eq!(decrypted, 13);
}

#[test]
fn the_captured_description_parses_and_a_rust_declaration_reproduces_it() {
    let capture = load("describe.json");
    let result = capture["python_results"][0]["returned"].clone();
    let description: nuropb_proto::describe::ServiceDescription =
        serde_json::from_value(result.clone()).unwrap();
    assert_eq!(description.service_name.as_deref(), Some("research-svc"));
    assert!(description.requires_encryption("encrypted_method"));
    let pem = description.public_key.clone().unwrap();
    let public_key = keys::public_key_from_pem(&pem).unwrap();
    assert_eq!(
        keys::public_key_to_pem(&public_key).unwrap(),
        pem,
        "SPKI PEM round trip"
    );

    let kwargs = |m: MethodSpec| m.param("kwargs", "Any");
    let service = ServiceSpec::new("research-svc")
        .version("1.2.3")
        .description("Research service used to capture NuroPb 0.1.8 wire traffic.")
        .method(kwargs(MethodSpec::new("async_call_again_once")))
        .method(kwargs(MethodSpec::new("async_raise")))
        .method(kwargs(MethodSpec::new("auth_denied")).authorized())
        .method(kwargs(MethodSpec::new("call_again_always")))
        .method(kwargs(MethodSpec::new("call_again_once")))
        .method(kwargs(MethodSpec::new("command_target")))
        .method(MethodSpec::new("context_only").param_with_default("value", "int", 1))
        .method(kwargs(MethodSpec::new("echo")))
        .method(
            MethodSpec::new("encrypted_method")
                .description("an encrypted method")
                .param_with_default("secret", "str", "")
                .param("kwargs", "Any")
                .requires_encryption(),
        )
        .method(kwargs(MethodSpec::new("encrypted_success_with_event")).requires_encryption())
        .method(MethodSpec::new("json_nan"))
        .method(MethodSpec::new("json_types"))
        .method(MethodSpec::new("hidden_method").hidden());
    // The remaining methods, as the capture lists them: each takes **kwargs unless it says otherwise.
    let declared: Vec<String> = service.methods.iter().map(|m| m.name.clone()).collect();
    let mut service = service;
    for (name, method) in description.methods.iter() {
        if declared.contains(name) {
            continue;
        }
        let mut spec = MethodSpec::new(name.clone());
        spec.description = method.description.clone();
        for (param, p) in &method.parameters.properties {
            spec = if method.parameters.required.contains(param) {
                spec.param(param.clone(), p.type_name.clone())
            } else {
                spec.param_with_default(param.clone(), p.type_name.clone(), p.default.clone())
            };
        }
        service = service.method(spec);
    }
    let ours = json::to_vec(&service.describe(Some(&pem)));
    let theirs = json::to_vec(&result);
    assert_eq!(
        String::from_utf8(ours).unwrap(),
        String::from_utf8(theirs).unwrap()
    );

    // And the bytes Python sent: the describe response body contains exactly this result.
    let response = messages("describe")
        .into_iter()
        .find(|m| m.method == "basic.publish" && m.body.starts_with(b"{\"tag\": \"response\""))
        .unwrap();
    let text = String::from_utf8(response.body).unwrap();
    let ours = String::from_utf8(json::to_vec(&service.describe(Some(&pem)))).unwrap();
    assert!(text.contains(&ours), "describe body differs");
}
