//! A message whose content the client cannot read is that message's problem, never the
//! connection's: whatever its properties hold and however large its body, the content ends as one
//! `Event::Unreadable` with what could be read, and the channel goes on to the next message.
//! Only what breaks the framing closes the connection (`amqp_violations.rs`).

#[path = "amqp_support/mod.rs"]
mod support;

use nuropb_proto::amqp::properties::flag;
use nuropb_proto::amqp::{
    AMQPClass, Completion, Config, ContentError, Event, Origin, Properties, PropertiesError,
    Unreadable,
};
use proptest::prelude::*;
use support::frames::{self, basic};
use support::{Peer, method_bytes, nuropb_properties};

/// A content header frame on `channel` with hand-made property bytes.
fn header_frame(channel: u16, body_size: u64, properties: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(properties);
    frame(2, channel, &payload)
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A NuroPb-shaped property list whose header table carries `entry` after `nuropb_type`.
fn properties_with(entry: &[u8]) -> Vec<u8> {
    let mut table = Vec::new();
    short(&mut table, b"nuropb_type");
    table.push(b'S');
    table.extend_from_slice(&7u32.to_be_bytes());
    table.extend_from_slice(b"request");
    table.extend_from_slice(entry);
    let mut bytes = (flag::CONTENT_TYPE | flag::HEADERS | flag::CORRELATION_ID | flag::REPLY_TO)
        .to_be_bytes()
        .to_vec();
    short(&mut bytes, b"application/json");
    bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&table);
    short(&mut bytes, b"c-1");
    short(&mut bytes, b"amq.gen-reply");
    bytes
}

/// `{"k": {"k": … }}` as a table entry, `levels` tables deep.
fn nested_entry(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..levels {
        let mut t = vec![1, b'k', b'F'];
        t.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        t.extend_from_slice(&inner);
        inner = t;
    }
    inner
}

fn consuming(config: Config) -> (Peer, u16) {
    let mut peer = Peer::connected(config);
    let ch = peer.open_channel();
    (peer, ch)
}

/// Delivers tag `tag` with `properties` and a body of `body_size` bytes in frames of `chunk`.
fn deliver_raw(peer: &mut Peer, ch: u16, tag: u64, properties: &[u8], body_size: usize) {
    let mut bytes = method_bytes(ch, &frames::deliver("svc", tag, false, "", "q"));
    bytes.extend_from_slice(&header_frame(ch, body_size as u64, properties));
    let body = vec![b'x'; body_size];
    for chunk in body.chunks(peer.frame_max as usize - 8) {
        bytes.extend_from_slice(&frame(3, ch, chunk));
    }
    peer.send_bytes(&bytes);
}

fn the_unreadable(peer: &mut Peer) -> Unreadable {
    let events = peer.events();
    match events.as_slice() {
        [Event::Unreadable(u)] => (**u).clone(),
        other => panic!("expected one Unreadable, got {other:?}"),
    }
}

/// After an unreadable message, the channel and the connection carry on: the next delivery
/// arrives whole, and nothing was sent (no close).
fn next_delivery_arrives(peer: &mut Peer, ch: u16, tag: u64) {
    let props = nuropb_properties("request");
    peer.send_content(
        ch,
        frames::deliver("svc", tag, false, "", "q"),
        &props,
        b"{\"ok\": 1}",
    );
    match peer.events().as_slice() {
        [Event::Delivery(d)] => {
            assert_eq!(d.delivery_tag, tag);
            assert_eq!(d.properties, props);
            assert_eq!(d.body, b"{\"ok\": 1}");
        }
        other => panic!("expected the next delivery, got {other:?}"),
    }
    peer.expect_silence();
    assert!(peer.conn.is_open());
}

#[test]
fn a_header_table_nested_too_deep_is_the_message_s_problem() {
    let (mut peer, ch) = consuming(Config::default());
    // 2 000 levels, within frame_max: read MAX_NESTING deep, then skipped by its length.
    deliver_raw(&mut peer, ch, 1, &properties_with(&nested_entry(2_000)), 30);
    let u = the_unreadable(&mut peer);
    assert_eq!(u.error, ContentError::Properties(PropertiesError::TooDeep));
    assert_eq!(
        u.origin,
        Origin::Delivery {
            consumer_tag: "svc".into(),
            delivery_tag: 1,
            redelivered: false
        }
    );
    assert_eq!(u.body_size, 30);
    // Enough of it was read to answer it.
    assert_eq!(u.properties.correlation_id.unwrap().as_str(), "c-1");
    assert_eq!(u.properties.reply_to.unwrap().as_str(), "amq.gen-reply");
    assert!(u.properties.headers.unwrap().get("nuropb_type").is_some());
    next_delivery_arrives(&mut peer, ch, 2);
}

#[test]
fn strings_and_keys_that_are_not_utf8_are_the_message_s_problem() {
    let (mut peer, ch) = consuming(Config::default());
    let mut key = Vec::new();
    short(&mut key, b"\xff\xfe");
    key.extend_from_slice(&[b'S', 0, 0, 0, 1, b'x']);
    deliver_raw(&mut peer, ch, 1, &properties_with(&key), 0);
    let u = the_unreadable(&mut peer);
    assert_eq!(
        u.error,
        ContentError::Properties(PropertiesError::NotUtf8("header key"))
    );
    assert_eq!(u.properties.correlation_id.unwrap().as_str(), "c-1");
    // A correlation id that is not UTF-8: left out, the reply-to still read.
    let mut bytes = (flag::CORRELATION_ID | flag::REPLY_TO)
        .to_be_bytes()
        .to_vec();
    short(&mut bytes, b"\xc3\x28");
    short(&mut bytes, b"rq");
    deliver_raw(&mut peer, ch, 2, &bytes, 5);
    let u = the_unreadable(&mut peer);
    assert_eq!(
        u.error,
        ContentError::Properties(PropertiesError::NotUtf8("correlation_id"))
    );
    assert_eq!(u.properties.correlation_id, None);
    assert_eq!(u.properties.reply_to.unwrap().as_str(), "rq");
    next_delivery_arrives(&mut peer, ch, 3);
}

#[test]
fn unknown_flags_types_and_trailing_bytes_are_the_message_s_problem() {
    let (mut peer, ch) = consuming(Config::default());
    let cases: [(Vec<u8>, PropertiesError); 4] = [
        (
            {
                let mut b = (flag::CORRELATION_ID | flag::RESERVED)
                    .to_be_bytes()
                    .to_vec();
                short(&mut b, b"c-1");
                b
            },
            PropertiesError::UnknownFlags(flag::RESERVED),
        ),
        (
            properties_with(&[1, b'z', b'Z', 1, 2, 3]),
            PropertiesError::UnknownType(b'Z'),
        ),
        (
            {
                let mut b = flag::CORRELATION_ID.to_be_bytes().to_vec();
                short(&mut b, b"c-1");
                b.extend_from_slice(b"??");
                b
            },
            PropertiesError::TrailingBytes(2),
        ),
        (
            (flag::CORRELATION_ID | flag::CONTINUATION)
                .to_be_bytes()
                .to_vec(),
            PropertiesError::Continuation,
        ),
    ];
    for (tag, (bytes, error)) in (1..).zip(cases) {
        deliver_raw(&mut peer, ch, tag, &bytes, 10);
        let u = the_unreadable(&mut peer);
        assert_eq!(u.error, ContentError::Properties(error));
        if tag < 4 {
            assert_eq!(u.properties.correlation_id.unwrap().as_str(), "c-1");
        }
    }
    next_delivery_arrives(&mut peer, ch, 10);
}

#[test]
fn a_body_over_the_limit_is_counted_off_not_buffered() {
    let limit = 1_000;
    let (mut peer, ch) = consuming(Config {
        max_body_size: limit,
        ..Config::default()
    });
    let mut props = Vec::new();
    nuropb_properties("request").encode(&mut props);
    // Three frames' worth: the content still ends where its header said.
    let size = 3 * peer.frame_max as usize;
    deliver_raw(&mut peer, ch, 1, &props, size);
    let u = the_unreadable(&mut peer);
    assert_eq!(
        u.error,
        ContentError::BodyTooLarge {
            size: size as u64,
            limit
        }
    );
    assert_eq!(u.properties, nuropb_properties("request"));
    next_delivery_arrives(&mut peer, ch, 2);
    // A body exactly at the limit is read.
    deliver_raw(&mut peer, ch, 3, &props, limit as usize);
    match peer.events().as_slice() {
        [Event::Delivery(d)] => assert_eq!(d.body.len(), limit as usize),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unreadable_return_and_get_ok_carry_what_could_be_read() {
    let (mut peer, ch) = consuming(Config::default());
    let bytes = properties_with(&nested_entry(100));
    let mut input = method_bytes(ch, &frames::basic_return(312, "NO_ROUTE", "x", "k"));
    input.extend_from_slice(&header_frame(ch, 0, &bytes));
    peer.send_bytes(&input);
    let u = the_unreadable(&mut peer);
    assert_eq!(
        u.origin,
        Origin::Returned {
            reply_code: 312,
            reply_text: "NO_ROUTE".into()
        }
    );
    assert_eq!((u.exchange.as_str(), u.routing_key.as_str()), ("x", "k"));
    assert_eq!(u.properties.correlation_id.unwrap().as_str(), "c-1");

    let request = peer.conn.basic_get(ch, "q", false).unwrap();
    peer.expect_method(ch);
    let mut input = method_bytes(
        ch,
        &AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 7,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 3,
        })),
    );
    input.extend_from_slice(&header_frame(ch, 2, &bytes));
    input.extend_from_slice(&frame(3, ch, b"{}"));
    peer.send_bytes(&input);
    match peer.events().as_slice() {
        [
            Event::Completed {
                id: r,
                result: Ok(Completion::GotUnreadable(u)),
                ..
            },
        ] => {
            assert_eq!(*r, request);
            assert_eq!(
                u.origin,
                Origin::Got {
                    delivery_tag: 7,
                    redelivered: false,
                    message_count: 3
                }
            );
            assert_eq!(u.error, ContentError::Properties(PropertiesError::TooDeep));
        }
        other => panic!("{other:?}"),
    }
    next_delivery_arrives(&mut peer, ch, 8);
}

#[test]
fn framing_stays_the_connection_s_business() {
    // An unreadable content still has to be framed right: more body than its header announced
    // is a frame error.
    let (mut peer, ch) = consuming(Config::default());
    let mut input = method_bytes(ch, &frames::deliver("svc", 1, false, "", "q"));
    input.extend_from_slice(&header_frame(ch, 2, &properties_with(&nested_entry(50))));
    input.extend_from_slice(&frame(3, ch, b"abc"));
    peer.send_bytes(&input);
    peer.expect_violation(501);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any property bytes and any body size: one event for the content, either a delivery or an
    /// unreadable one, and the next delivery arrives on the same channel.
    #[test]
    fn no_property_bytes_take_the_connection_down(
        properties in prop::collection::vec(any::<u8>(), 0..200),
        body_size in 0usize..3000,
        limit in 2u64..2000,
    ) {
        let (mut peer, ch) = consuming(Config { max_body_size: limit, ..Config::default() });
        deliver_raw(&mut peer, ch, 1, &properties, body_size);
        let events = peer.events();
        prop_assert_eq!(events.len(), 1, "{:?}", events);
        match &events[0] {
            Event::Delivery(d) => {
                prop_assert!(d.body.len() as u64 <= limit);
                let decoded = Properties::decode(&properties).ok();
                prop_assert_eq!(Some(&d.properties), decoded.as_ref());
            }
            Event::Unreadable(u) => {
                let (salvaged, fault) = Properties::salvage(&properties);
                prop_assert_eq!(&u.properties, &salvaged);
                match &u.error {
                    ContentError::Properties(e) => prop_assert_eq!(Some(e), fault.as_ref()),
                    ContentError::BodyTooLarge { size, .. } => {
                        prop_assert!(fault.is_none());
                        prop_assert_eq!(*size, body_size as u64);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            other => prop_assert!(false, "{:?}", other),
        }
        let props = nuropb_properties("request");
        peer.send_content(ch, frames::deliver("svc", 2, false, "", "q"), &props, b"{}");
        let next = peer.events();
        prop_assert!(matches!(next.as_slice(), [Event::Delivery(d)] if d.delivery_tag == 2), "{:?}", next);
        prop_assert!(peer.conn.is_open());
    }
}
