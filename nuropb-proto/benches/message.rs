//! Encoding and decoding a ~250-byte request, plaintext and encrypted.
//!
//! `cargo bench -p nuropb-proto --bench message`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nuropb_proto::amqp::Properties;
use nuropb_proto::crypto::{Encryptor, KeyStoreConfig, keys};
use nuropb_proto::message::{
    CallPayload, Envelope, Exchanges, Payload, Publication, TransportMessage,
};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

/// The request of `examples/all_in_one.py`, as Python sends it: a 257-byte body.
fn request() -> TransportMessage {
    let call = CallPayload {
        service: "quick-example".into(),
        method: "test_method".into(),
        params: json!({"param1": "value1", "param2": {"param2a": "value2a"}})
            .as_object()
            .unwrap()
            .clone(),
        correlation_id: "ce299312f3e1468fbb7aca1d451a3fdc".into(),
        context: json!({"context1": "value1"}).as_object().unwrap().clone(),
        trace_id: Some("7f1d0c1e2b3a4c5d6e7f8091a2b3c4d5".into()),
    };
    let mut message = TransportMessage::new(Payload::Request(call));
    message.ttl = Some(3_600_000);
    message
}

fn plaintext(c: &mut Criterion) {
    let exchanges = Exchanges::default();
    let message = request();
    let publication = Publication::plaintext(&message, &exchanges, "nuropb-client-rq").unwrap();
    println!("body: {} bytes", publication.body.len());
    let mut group = c.benchmark_group("plaintext request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| {
            let publication =
                Publication::plaintext(black_box(&message), &exchanges, "nuropb-client-rq")
                    .unwrap();
            black_box((publication.properties, publication.body))
        })
    });
    let header = publication.properties.clone();
    group.bench_function("decode", |b| {
        b.iter(|| {
            let properties = Properties::decode(black_box(&header)).unwrap();
            let envelope = Envelope::from_properties(&properties).unwrap();
            black_box(envelope.open(black_box(&publication.body)).unwrap())
        })
    });
    // The two halves of decode: the content header, and the body.
    group.bench_function("decode header", |b| {
        b.iter(|| {
            let properties = Properties::decode(black_box(&header)).unwrap();
            black_box(Envelope::from_properties(&properties).unwrap())
        })
    });
    let envelope = Envelope::from_properties(&Properties::decode(&header).unwrap()).unwrap();
    group.bench_function("decode body", |b| {
        b.iter_batched(
            || envelope.clone(),
            |envelope| black_box(envelope.open(black_box(&publication.body)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let publication =
                Publication::plaintext(black_box(&message), &exchanges, "nuropb-client-rq")
                    .unwrap();
            let properties = Properties::decode(&publication.properties).unwrap();
            let envelope = Envelope::from_properties(&properties).unwrap();
            black_box(envelope.open(&publication.body).unwrap())
        })
    });
    group.finish();
}

fn encrypted(c: &mut Criterion) {
    let now = Instant::now();
    let key = keys::generate(2048).unwrap();
    let mut service = Encryptor::new(Some(key.clone()), KeyStoreConfig::default());
    let mut client = Encryptor::new(None, KeyStoreConfig::default());
    client.add_public_key("quick-example", key.to_public_key());
    let body = request().payload.to_json();
    let mut group = c.benchmark_group("encrypted request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encrypt (client, mode 1)", |b| {
        b.iter(|| {
            black_box(
                client
                    .encrypt_call(
                        "quick-example",
                        "c",
                        black_box(&body),
                        false,
                        1_700_000_000,
                        now,
                    )
                    .unwrap(),
            )
        })
    });
    let sealed = client
        .encrypt_call("quick-example", "c", &body, false, 1_700_000_000, now)
        .unwrap();
    group.bench_function("decrypt (service, mode 3)", |b| {
        b.iter(|| {
            black_box(
                service
                    .decrypt_call("c", black_box(&sealed), false, now)
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, plaintext, encrypted);
criterion_main!(benches);
