//! A scripted AMQP client for broker tests, in the manner of h2's `h2-support` mock: send frames,
//! then assert the frames that come back, in order.
//!
//! A [`Harness`] owns the broker and the virtual clock; a [`Client`] is one connection to it with
//! its own frame reader. Nothing here goes through a socket.
#![allow(dead_code)]

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, exchange, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use nuropb_proto::amqp::frame::{
    Frame, FrameReader, PROTOCOL_HEADER, write_content, write_heartbeat, write_method,
};
use nuropb_proto::amqp::{ContentHeader, Properties};
use nuropb_testkit::broker::{Broker, BrokerConfig, ConnectionId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The broker and the clock.
pub struct Harness {
    pub broker: Broker,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(BrokerConfig::default())
    }

    pub fn with_config(config: BrokerConfig) -> Self {
        Harness {
            broker: Broker::new(config),
            now: Instant::now(),
        }
    }

    /// A client that has opened `vhost` with guest/guest, heartbeats off, and channel 1 open.
    pub fn client(&mut self, vhost: &str) -> Client {
        let mut c = self.connect(vhost, 0);
        c.open_channel(self, 1);
        c
    }

    /// A client through the whole handshake, with the heartbeat it asks for.
    pub fn connect(&mut self, vhost: &str, heartbeat: u16) -> Client {
        let mut c = self.raw_client();
        c.send_bytes(self, &PROTOCOL_HEADER);
        let start = c.next_method(self);
        assert!(
            matches!(
                start,
                (0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
            ),
            "{start:?}"
        );
        c.send(self, 0, start_ok("guest", "guest", true));
        let tune = c.next_method(self);
        let AMQPClass::Connection(connection::AMQPMethod::Tune(t)) = tune.1 else {
            panic!("expected tune, got {tune:?}");
        };
        c.send(
            self,
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: t.channel_max,
                frame_max: t.frame_max,
                heartbeat,
            })),
        );
        c.reader.set_frame_max(t.frame_max);
        c.send(
            self,
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        );
        c.expect(
            self,
            0,
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
        );
        c
    }

    /// A freshly accepted connection, nothing sent yet.
    pub fn raw_client(&mut self) -> Client {
        let id = self.broker.accept(self.now);
        Client {
            id,
            reader: FrameReader::new(1 << 20),
            frames: VecDeque::new(),
            bytes: Vec::new(),
        }
    }

    /// Moves the clock and lets the broker handle what is due.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.broker.handle_timeout(self.now);
    }
}

/// `connection.start-ok` with PLAIN credentials; `caps` announces the usual client capabilities.
pub fn start_ok(user: &str, password: &str, caps: bool) -> AMQPClass {
    let mut props = FieldTable::default();
    if caps {
        let mut c = FieldTable::default();
        for cap in [
            "authentication_failure_close",
            "consumer_cancel_notify",
            "publisher_confirms",
            "basic.nack",
        ] {
            c.insert(cap.into(), AMQPValue::Boolean(true));
        }
        props.insert("capabilities".into(), AMQPValue::FieldTable(c));
    }
    AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: props,
        mechanism: "PLAIN".into(),
        response: LongString::from(format!("\0{user}\0{password}")),
        locale: "en_US".into(),
    }))
}

/// A delivery as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub channel: u16,
    pub consumer_tag: String,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: String,
    pub routing_key: String,
    pub properties: Properties,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn header(&self, key: &str) -> Option<&AMQPValue> {
        self.properties.headers.as_ref()?.get(key)
    }
}

/// One scripted client connection.
pub struct Client {
    pub id: ConnectionId,
    pub reader: FrameReader,
    frames: VecDeque<Frame>,
    /// Every byte the broker sent this client.
    pub bytes: Vec<u8>,
}

impl Client {
    pub fn send_bytes(&mut self, h: &mut Harness, bytes: &[u8]) {
        h.broker.handle_input(self.id, bytes, h.now);
    }

    pub fn send(&mut self, h: &mut Harness, ch: u16, m: AMQPClass) {
        let mut bytes = Vec::new();
        write_method(&mut bytes, ch, &m);
        self.send_bytes(h, &bytes);
    }

    pub fn heartbeat(&mut self, h: &mut Harness) {
        let mut bytes = Vec::new();
        write_heartbeat(&mut bytes);
        self.send_bytes(h, &bytes);
    }

    /// The bytes of `basic.publish` plus its content.
    pub fn publish_bytes(
        ch: u16,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        props: &Properties,
        body: &[u8],
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_method(
            &mut bytes,
            ch,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory,
                immediate: false,
            })),
        );
        write_content(&mut bytes, ch, 60, props, body, 4096);
        bytes
    }

    pub fn publish(&mut self, h: &mut Harness, ch: u16, exchange: &str, key: &str, body: &str) {
        let bytes = Self::publish_bytes(
            ch,
            exchange,
            key,
            false,
            &Properties::default(),
            body.as_bytes(),
        );
        self.send_bytes(h, &bytes);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn publish_with(
        &mut self,
        h: &mut Harness,
        ch: u16,
        exchange: &str,
        key: &str,
        mandatory: bool,
        props: &Properties,
        body: &str,
    ) {
        let bytes = Self::publish_bytes(ch, exchange, key, mandatory, props, body.as_bytes());
        self.send_bytes(h, &bytes);
    }

    fn pull(&mut self, h: &mut Harness) {
        while let Some(bytes) = h.broker.take_transmit(self.id) {
            self.bytes.extend_from_slice(&bytes);
            let mut frames = Vec::new();
            self.reader
                .read(&bytes, &mut frames)
                .expect("the broker sent malformed frames");
            self.frames.extend(frames);
        }
    }

    /// The next frame the broker sent, if any.
    pub fn recv(&mut self, h: &mut Harness) -> Option<Frame> {
        self.pull(h);
        self.frames.pop_front()
    }

    /// Every frame the broker sent, not yet consumed.
    pub fn drain(&mut self, h: &mut Harness) -> Vec<Frame> {
        self.pull(h);
        self.frames.drain(..).collect()
    }

    pub fn next_method(&mut self, h: &mut Harness) -> (u16, AMQPClass) {
        match self.recv(h) {
            Some(Frame::Method(ch, m)) => (ch, m),
            other => panic!("expected a method frame, got {other:?}"),
        }
    }

    /// Asserts the next frame is method `m` on channel `ch`.
    pub fn expect(&mut self, h: &mut Harness, ch: u16, m: AMQPClass) {
        let got = self.next_method(h);
        assert_eq!(got, (ch, m));
    }

    /// Asserts the broker has sent nothing more.
    pub fn expect_nothing(&mut self, h: &mut Harness) {
        let rest = self.drain(h);
        assert!(rest.is_empty(), "unexpected frames: {rest:?}");
    }

    /// Asserts `channel.close` with this code and text on `ch`, and answers `close-ok`.
    pub fn expect_channel_close(
        &mut self,
        h: &mut Harness,
        ch: u16,
        code: u16,
        text: &str,
        class_method: (u16, u16),
    ) {
        self.expect(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: code,
                reply_text: text.into(),
                class_id: class_method.0,
                method_id: class_method.1,
            })),
        );
        self.send(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        );
    }

    /// Asserts `connection.close` with this code, text and failing method.
    pub fn expect_connection_close(
        &mut self,
        h: &mut Harness,
        code: u16,
        text: &str,
        class_method: (u16, u16),
    ) {
        self.expect(
            h,
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: code,
                reply_text: text.into(),
                class_id: class_method.0,
                method_id: class_method.1,
            })),
        );
    }

    /// Takes the next delivery (`basic.deliver` + content) or fails.
    pub fn expect_delivery(&mut self, h: &mut Harness) -> Delivery {
        let (channel, m) = self.next_method(h);
        let AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) = m else {
            panic!("expected basic.deliver, got {m:?}");
        };
        let (properties, body) = self.content(h, channel);
        Delivery {
            channel,
            consumer_tag: d.consumer_tag.to_string(),
            delivery_tag: d.delivery_tag,
            redelivered: d.redelivered,
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            properties,
            body,
        }
    }

    /// Reads a content header and its body frames on `ch`.
    pub fn content(&mut self, h: &mut Harness, ch: u16) -> (Properties, Vec<u8>) {
        let Some(Frame::Header(
            hch,
            ContentHeader {
                class_id,
                body_size,
                properties,
            },
        )) = self.recv(h)
        else {
            panic!("expected a content header");
        };
        assert_eq!((hch, class_id), (ch, 60));
        let mut body = Vec::new();
        while (body.len() as u64) < body_size {
            match self.recv(h) {
                Some(Frame::Body(bch, part)) => {
                    assert_eq!(bch, ch);
                    body.extend_from_slice(&part);
                }
                other => panic!("expected a body frame, got {other:?}"),
            }
        }
        assert_eq!(body.len() as u64, body_size);
        (properties, body)
    }

    /// Collects `n` deliveries.
    pub fn deliveries(&mut self, h: &mut Harness, n: usize) -> Vec<Delivery> {
        (0..n).map(|_| self.expect_delivery(h)).collect()
    }

    // ---- one-liners for common methods, each asserting the reply ----

    pub fn open_channel(&mut self, h: &mut Harness, ch: u16) {
        self.send(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        self.expect(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        );
    }

    pub fn close_channel(&mut self, h: &mut Harness, ch: u16) {
        self.send(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        );
        self.expect(
            h,
            ch,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        );
    }

    pub fn declare_exchange(&mut self, h: &mut Harness, ch: u16, name: &str, kind: &str) {
        self.send(h, ch, exchange_declare(name, kind, false));
        self.expect(
            h,
            ch,
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        );
    }

    /// Declares a queue; returns its name (server-named when `name` is empty).
    pub fn declare_queue(
        &mut self,
        h: &mut Harness,
        ch: u16,
        name: &str,
        args: FieldTable,
    ) -> String {
        self.send(h, ch, queue_declare(name, false, false, false, args));
        let (rch, m) = self.next_method(h);
        assert_eq!(rch, ch);
        let AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) = m else {
            panic!("expected queue.declare-ok, got {m:?}");
        };
        ok.queue.to_string()
    }

    pub fn bind(&mut self, h: &mut Harness, ch: u16, q: &str, x: &str, key: &str) {
        self.send(
            h,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: q.into(),
                exchange: x.into(),
                routing_key: key.into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
        );
        self.expect(
            h,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        );
    }

    pub fn qos(&mut self, h: &mut Harness, ch: u16, prefetch: u16, global: bool) {
        self.send(
            h,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: prefetch,
                global,
            })),
        );
        self.expect(
            h,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        );
    }

    /// Starts a consumer; returns its tag (server-made when `tag` is empty).
    pub fn consume(
        &mut self,
        h: &mut Harness,
        ch: u16,
        q: &str,
        tag: &str,
        no_ack: bool,
    ) -> String {
        self.send(h, ch, consume(q, tag, no_ack, false));
        let (rch, m) = self.next_method(h);
        assert_eq!(rch, ch);
        let AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) = m else {
            panic!("expected basic.consume-ok, got {m:?}");
        };
        ok.consumer_tag.to_string()
    }

    pub fn ack(&mut self, h: &mut Harness, ch: u16, tag: u64, multiple: bool) {
        self.send(
            h,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple,
            })),
        );
    }

    pub fn nack(&mut self, h: &mut Harness, ch: u16, tag: u64, multiple: bool, requeue: bool) {
        self.send(
            h,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: tag,
                multiple,
                requeue,
            })),
        );
    }

    pub fn reject(&mut self, h: &mut Harness, ch: u16, tag: u64, requeue: bool) {
        self.send(
            h,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
                delivery_tag: tag,
                requeue,
            })),
        );
    }

    pub fn confirm_select(&mut self, h: &mut Harness, ch: u16) {
        self.send(
            h,
            ch,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        );
        self.expect(
            h,
            ch,
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
        );
    }
}

pub fn exchange_declare(name: &str, kind: &str, passive: bool) -> AMQPClass {
    AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
        exchange: name.into(),
        kind: kind.into(),
        passive,
        durable: false,
        auto_delete: false,
        internal: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

pub fn queue_declare(
    name: &str,
    passive: bool,
    durable: bool,
    exclusive: bool,
    arguments: FieldTable,
) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive,
        durable,
        exclusive,
        auto_delete: false,
        nowait: false,
        arguments,
    }))
}

pub fn consume(q: &str, tag: &str, no_ack: bool, exclusive: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: q.into(),
        consumer_tag: tag.into(),
        no_local: false,
        no_ack,
        exclusive,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// A field table from pairs.
pub fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Properties with just an expiration.
pub fn expiring(ms: &str) -> Properties {
    Properties {
        expiration: Some(ms.into()),
        ..Default::default()
    }
}
