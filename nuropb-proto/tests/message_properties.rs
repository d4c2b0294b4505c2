//! Properties of the message layer over arbitrary input.

use nuropb_proto::amqp::{AMQPValue, Headers, Properties};
use nuropb_proto::crypto::{Encryptor, KeyStoreConfig, keys};
use nuropb_proto::message::{
    CallPayload, Envelope, EventLayout, EventPayload, Exchanges, MessageType, Object, Payload,
    Publication, ResponseLayout, ResponsePayload, TransportMessage, decode_payload, json,
};
use nuropb_proto::{ErrorKind, NuropbError};
use proptest::prelude::*;
use serde_json::{Number, Value};
use std::sync::OnceLock;
use std::time::Instant;

/// Any JSON value serde_json can hold: unicode strings (astral characters and control
/// characters included), 64-bit integers, finite doubles, nested arrays and objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Object> {
    prop::collection::vec((any::<String>(), json_value()), 0..6)
        .prop_map(|entries| entries.into_iter().collect())
}

/// Text that fits an AMQP short string (routing keys, correlation ids).
fn short_text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,64}"
}

fn error() -> impl Strategy<Value = Option<NuropbError>> {
    let kind = prop_oneof![
        (0..ErrorKind::DEFINED.len()).prop_map(|i| ErrorKind::DEFINED[i].clone()),
        "[A-Za-z]{1,20}Error".prop_map(|name| ErrorKind::from_class_name(&name)),
    ];
    prop::option::of((kind, any::<String>()).prop_map(|(kind, d)| NuropbError::new(kind, d)))
}

fn call() -> impl Strategy<Value = CallPayload> {
    (
        short_text(),
        any::<String>(),
        object(),
        short_text(),
        object(),
        prop::option::of(any::<String>()),
    )
        .prop_map(
            |(service, method, params, correlation_id, context, trace_id)| CallPayload {
                service,
                method,
                params,
                correlation_id,
                context,
                trace_id,
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    let event = (
        short_text(),
        json_value(),
        object(),
        prop::option::of(any::<String>()),
        short_text(),
        json_value(),
        any::<bool>(),
    )
        .prop_map(
            |(topic, event, context, trace_id, correlation_id, target, emitted)| EventPayload {
                topic,
                event,
                context,
                trace_id,
                correlation_id,
                target,
                layout: if emitted {
                    EventLayout::Emitted
                } else {
                    EventLayout::Published
                },
            },
        );
    let response = (
        json_value(),
        error(),
        short_text(),
        prop::option::of(any::<String>()),
        object(),
        prop::option::of(any::<String>()),
        short_text(),
        any::<bool>(),
    )
        .prop_map(
            |(result, error, correlation_id, trace_id, context, warning, reply_to, raised)| {
                ResponsePayload {
                    result,
                    error,
                    correlation_id,
                    trace_id,
                    context,
                    warning,
                    reply_to,
                    layout: if raised {
                        ResponseLayout::Raised
                    } else {
                        ResponseLayout::Returned
                    },
                }
            },
        );
    prop_oneof![
        call().prop_map(Payload::Request),
        call().prop_map(Payload::Command),
        event.prop_map(Payload::Event),
        response.prop_map(Payload::Response),
    ]
}

fn message() -> impl Strategy<Value = TransportMessage> {
    (payload(), prop::option::of(1u64..=u32::MAX as u64)).prop_map(|(payload, ttl)| {
        let mut message = TransportMessage::new(payload);
        if matches!(message.kind(), MessageType::Request | MessageType::Command) {
            message.ttl = ttl;
        }
        message
    })
}

fn service_key() -> &'static keys::PrivateKey {
    static KEY: OnceLock<keys::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate(2048).unwrap())
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(message in message()) {
        let publication = Publication::plaintext(&message, &Exchanges::default(), "sender-rq").unwrap();
        // Bodies are Python-style: pure ASCII.
        prop_assert!(publication.body.is_ascii());
        let properties = Properties::decode(&publication.properties).unwrap();
        let received = Envelope::from_properties(&properties).unwrap().open(&publication.body).unwrap();
        prop_assert_eq!(received, message);
    }

    #[test]
    fn encrypt_then_decrypt_is_the_identity(body in prop::collection::vec(any::<u8>(), 0..2048), correlation in short_text()) {
        let now = Instant::now();
        let mut service = Encryptor::new(Some(service_key().clone()), KeyStoreConfig::default());
        let mut client = Encryptor::new(None, KeyStoreConfig::default());
        client.add_public_key("svc", service_key().to_public_key());
        let sealed = client.encrypt_call("svc", &correlation, &body, true, 1_700_000_000, now).unwrap();
        prop_assert_eq!(service.decrypt_call(&correlation, &sealed, true, now).unwrap(), body.clone());
        let answer = service.encrypt_response(&correlation, &body, 1_700_000_000, now).unwrap();
        prop_assert_eq!(client.decrypt_response(&correlation, &answer, now).unwrap(), body);
        prop_assert_eq!(client.kept_keys(), (0, 0));
        prop_assert_eq!(service.kept_keys(), (0, 0));
    }

    #[test]
    fn decoding_arbitrary_bodies_never_panics(kind in 0..4usize, body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload(MessageType::ALL[kind], &body);
        let _ = json::from_slice::<Value>(&body);
    }

    #[test]
    fn decoding_arbitrary_json_objects_never_panics(kind in 0..4usize, value in json_value()) {
        let _ = decode_payload(MessageType::ALL[kind], &json::to_vec(&value));
    }

    #[test]
    fn decoding_arbitrary_properties_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(properties) = Properties::decode(&bytes) {
            let _ = Envelope::from_properties(&properties);
        }
    }

    #[test]
    fn arbitrary_headers_never_panic(entries in prop::collection::vec((
        prop_oneof![Just("nuropb_protocol".to_owned()), Just("nuropb_type".to_owned()), Just("trace_id".to_owned()), Just("encrypted".to_owned()), "[a-z_]{1,12}"],
        prop_oneof![
            any::<Vec<u8>>().prop_map(|b| AMQPValue::LongString(b.into())),
            Just(AMQPValue::LongString(b"0.1.1".to_vec().into())),
            Just(AMQPValue::LongString(b"request".to_vec().into())),
            Just(AMQPValue::Void),
            any::<i32>().prop_map(AMQPValue::LongInt),
            any::<bool>().prop_map(AMQPValue::Boolean),
        ],
    ), 0..8), correlation in prop::option::of(short_text()), expiration in prop::option::of("[0-9a-z]{0,12}")) {
        let mut headers = Headers::default();
        for (k, v) in entries {
            headers.insert(&k, v);
        }
        let properties = Properties {
            headers: Some(headers),
            correlation_id: correlation.map(|c| c.as_str().into()),
            expiration: expiration.map(|e| e.as_str().into()),
            ..Default::default()
        };
        let _ = Envelope::from_properties(&properties);
    }
}
