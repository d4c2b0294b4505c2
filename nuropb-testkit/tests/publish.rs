//! Publishing: mandatory returns (312 NO_ROUTE, as in unroutable.json), publisher confirms,
//! `reject-publish` nacks, the checks RabbitMQ makes on a publish, and bodies split at frame_max.

mod support;

use amq_protocol::protocol::{AMQPClass, basic};
use amq_protocol::types::{AMQPValue, FieldTable};
use nuropb_proto::amqp::frame::Frame;
use nuropb_proto::amqp::{Headers, Properties};
use nuropb_testkit::broker::BrokerConfig;
use support::*;

fn ack(tag: u64) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag: tag,
        multiple: false,
    }))
}

/// A request as NuroPb 0.1.8 publishes it (NUROPB-WIRE §2.3, §2.4).
fn request_props() -> Properties {
    let mut hd = Headers::default();
    hd.insert("nuropb_protocol", long("0.1.1"));
    hd.insert("nuropb_version", long("0.1.8"));
    hd.insert("nuropb_type", long("request"));
    hd.insert("trace_id", AMQPValue::Void);
    hd.insert("encrypted", long(""));
    Properties {
        content_type: Some("application/json".into()),
        headers: Some(hd),
        correlation_id: Some("66137ec8ffc243fa983719a86283f51c".into()),
        reply_to: Some("nuropb-client-rq".into()),
        expiration: Some("3600000".into()),
        ..Default::default()
    }
}

#[test]
fn an_unroutable_mandatory_request_is_returned_with_its_content() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_exchange(&mut h, 1, "nuropb-rpc-exchange", "direct");
    let props = request_props();
    c.publish_with(
        &mut h,
        1,
        "nuropb-rpc-exchange",
        "no-such-service",
        true,
        &props,
        "{}",
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "no-such-service".into(),
        })),
    );
    let (back, body) = c.content(&mut h, 1);
    assert_eq!(back, props);
    assert_eq!(body, b"{}");
    // Not mandatory: silently dropped, as NuroPb events are.
    c.publish_with(
        &mut h,
        1,
        "nuropb-rpc-exchange",
        "no-such-service",
        false,
        &props,
        "{}",
    );
    c.expect_nothing(&mut h);
}

#[test]
fn content_properties_pass_through_byte_for_byte() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    // A content header whose headers hold a nested table with its keys out of order, which a
    // decode and re-encode through amq-protocol's sorted FieldTable would reorder.
    let mut nested = Vec::new();
    for (k, v) in [("zeta", "z"), ("alpha", "a")] {
        nested.push(k.len() as u8);
        nested.extend_from_slice(k.as_bytes());
        nested.push(b'S');
        nested.extend_from_slice(&(v.len() as u32).to_be_bytes());
        nested.extend_from_slice(v.as_bytes());
    }
    let mut table = vec![1, b'n', b'F'];
    table.extend_from_slice(&(nested.len() as u32).to_be_bytes());
    table.extend_from_slice(&nested);
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&2u64.to_be_bytes());
    payload.extend_from_slice(&0x2000u16.to_be_bytes());
    payload.extend_from_slice(&(table.len() as u32).to_be_bytes());
    payload.extend_from_slice(&table);
    let mut header = vec![2, 0, 1];
    header.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    header.extend_from_slice(&payload);
    header.push(0xCE);
    let mut sent = Client::publish_bytes(1, "", "q", false, &Properties::default(), b"");
    sent.truncate(sent.len() - (7 + 14 + 1)); // drop the empty-body content header
    sent.extend_from_slice(&header);
    sent.extend_from_slice(&[3, 0, 1, 0, 0, 0, 2, b'{', b'}', 0xCE]);
    c.send_bytes(&mut h, &sent);
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 1);
    c.consume(&mut h, 1, "q", "t", true);
    c.expect_delivery(&mut h);
    let got = c
        .bytes
        .windows(header.len())
        .any(|w| w == header.as_slice());
    assert!(
        got,
        "the consumer gets the publisher's content header unchanged"
    );
}

#[test]
fn confirms_ack_each_publish_after_its_return() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.confirm_select(&mut h, 1);
    c.publish(&mut h, 1, "", "q", "routed");
    c.expect(&mut h, 1, ack(1));
    c.publish_with(
        &mut h,
        1,
        "",
        "nowhere",
        true,
        &Properties::default(),
        "returned",
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "".into(),
            routing_key: "nowhere".into(),
        })),
    );
    c.content(&mut h, 1);
    c.expect(&mut h, 1, ack(2));
    c.publish(&mut h, 1, "", "nowhere", "dropped");
    c.expect(&mut h, 1, ack(3));
    // A second select is harmless and keeps counting.
    c.confirm_select(&mut h, 1);
    c.publish(&mut h, 1, "", "q", "again");
    c.expect(&mut h, 1, ack(4));
}

#[test]
fn reject_publish_overflow_nacks() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(
        &mut h,
        1,
        "small",
        table(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", long("reject-publish")),
        ]),
    );
    c.confirm_select(&mut h, 1);
    c.publish(&mut h, 1, "", "small", "fits");
    c.expect(&mut h, 1, ack(1));
    c.publish(&mut h, 1, "", "small", "refused");
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 2,
            multiple: false,
            requeue: true, // RabbitMQ 3.10 sends the spec default
        })),
    );
    let bodies: Vec<Vec<u8>> = h
        .broker
        .messages("/", "small")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, [b"fits".to_vec()]);
}

#[test]
fn publish_checks_in_rabbitmq_order() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.publish(&mut h, 1, "nope-x", "k", "x");
    c.expect_channel_close(
        &mut h,
        1,
        404,
        "NOT_FOUND - no exchange 'nope-x' in vhost '/'",
        (60, 40),
    );
    c.open_channel(&mut h, 2);
    c.publish(&mut h, 2, "amq.rabbitmq.trace", "k", "x");
    c.expect_channel_close(
        &mut h,
        2,
        403,
        "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.trace' in vhost '/'",
        (60, 40),
    );
    c.open_channel(&mut h, 3);
    let bob = Properties {
        user_id: Some("bob".into()),
        ..Default::default()
    };
    c.publish_with(&mut h, 3, "", "q", false, &bob, "x");
    c.expect_channel_close(
        &mut h,
        3,
        406,
        "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'",
        (60, 40),
    );
    for (ch, exp, why) in [
        (4, "foo", "no_integer"),
        (5, "-5", "{value_negative,-5}"),
        (6, "10x", "{leftover_string,\"x\"}"),
    ] {
        c.open_channel(&mut h, ch);
        c.publish_with(&mut h, ch, "", "q", false, &expiring(exp), "x");
        c.expect_channel_close(
            &mut h,
            ch,
            406,
            &format!("PRECONDITION_FAILED - invalid expiration '{exp}': {why}"),
            (60, 40),
        );
    }
    c.open_channel(&mut h, 7);
    let mut bytes = Client::publish_bytes(7, "", "q", false, &Properties::default(), b"x");
    bytes[7 + 4 + 2 + 1 + 1 + 1] |= 2; // immediate
    c.send_bytes(&mut h, &bytes);
    c.expect_connection_close(&mut h, 540, "NOT_IMPLEMENTED - immediate=true", (60, 40));
}

#[test]
fn large_bodies_are_split_at_the_negotiated_frame_max() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    let body = "x".repeat(300_000);
    c.publish(&mut h, 1, "", "q", &body);
    c.consume(&mut h, 1, "q", "t", true);
    let frames = c.drain(&mut h);
    let bodies: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body(_, b) => Some(b.len()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, [131_064, 131_064, 37_872]);
}

#[test]
fn oversized_messages_close_the_channel_and_the_rest_is_ignored() {
    let mut h = Harness::with_config(BrokerConfig {
        max_message_size: 10,
        ..BrokerConfig::default()
    });
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "this body is too large");
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - message size 22 is larger than configured max size 10",
        (60, 40),
    );
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 0);
    c.open_channel(&mut h, 1);
    c.publish(&mut h, 1, "", "q", "small");
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 1);
}

#[test]
fn transactions_hold_publishes_and_acks_until_commit() {
    use amq_protocol::protocol::tx;
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "before");
    c.consume(&mut h, 1, "q", "t", false);
    let d = c.expect_delivery(&mut h);
    c.send(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
    );
    c.ack(&mut h, 1, d.delivery_tag, false);
    c.publish(&mut h, 1, "", "q", "in tx");
    c.publish_with(
        &mut h,
        1,
        "",
        "nowhere",
        true,
        &Properties::default(),
        "returned",
    );
    c.expect_nothing(&mut h);
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_unacknowledged, 1);
    // Rollback: the publishes are gone, the ack undone.
    c.send(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
    );
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 0);
    // Commit: the ack applies, the message is stored and delivered, the unroutable returned.
    c.ack(&mut h, 1, d.delivery_tag, false);
    c.publish(&mut h, 1, "", "q", "committed");
    c.publish_with(
        &mut h,
        1,
        "",
        "nowhere",
        true,
        &Properties::default(),
        "returned",
    );
    c.send(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
    );
    let (_, m) = c.next_method(&mut h);
    assert!(
        matches!(m, AMQPClass::Basic(basic::AMQPMethod::Return(_))),
        "{m:?}"
    );
    c.content(&mut h, 1);
    c.expect(
        &mut h,
        1,
        AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
    );
    let d = c.expect_delivery(&mut h);
    assert_eq!(d.text(), "committed");
    // Confirms and transactions exclude each other, as on RabbitMQ.
    c.send(
        &mut h,
        1,
        AMQPClass::Confirm(amq_protocol::protocol::confirm::AMQPMethod::Select(
            amq_protocol::protocol::confirm::Select { nowait: false },
        )),
    );
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        (85, 10),
    );
    c.open_channel(&mut h, 2);
    c.send(
        &mut h,
        2,
        AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
    );
    c.expect_channel_close(
        &mut h,
        2,
        406,
        "PRECONDITION_FAILED - channel is not transactional",
        (90, 20),
    );
}
