//! Replays the recorded NuroPb 0.1.8 sessions in `shared/wire/wire-captures/`: every server→client
//! frame is rebuilt from its record and fed to the client; every client→server record becomes the
//! command the Python client issued, and the client's frame must equal the recorded one (content
//! headers byte for byte). The events must match the states the Python client reached: handshake
//! done, channels open, declares answered, deliveries with the same properties and bodies, the
//! 403 channel close of `single_instance.json`, the 320 connection close of `reconnect.json`.

mod captures;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use amq_protocol::protocol::{AMQPClass, basic, channel, connection, exchange, queue};
use nuropb_proto::amqp::frame::{write_method, write_protocol_header};
use nuropb_proto::amqp::{
    AMQPValue, ChannelId, Completion, Config, Connection, ConnectionError, Consume, Delivery,
    Event, ExchangeDeclare, FieldTable, Frame, FrameReader, Properties, Publish, QueueBind,
    QueueDeclare, RawFrame, Returned, ShortString, SyncId,
};

/// A capture, parsed once per test process.
fn load(name: &str) -> Arc<Value> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Value>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(captures::read(name)))
        .clone()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}
fn b(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or_else(|| panic!("{key} in {v}"))
}
fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}
fn short(v: &Value, key: &str) -> ShortString {
    ShortString::try_new(s(v, key)).expect("short string")
}

/// A typed table as the captures write it: `{"key": {"type": "S", "value": ...}}`.
fn table(v: &Value) -> FieldTable {
    let mut t = FieldTable::default();
    if let Some(map) = v.as_object() {
        for (k, typed) in map {
            t.insert(k.as_str().into(), value(typed));
        }
    }
    t
}

fn value(typed: &Value) -> AMQPValue {
    let v = &typed["value"];
    match typed["type"].as_str() {
        Some("S") => AMQPValue::LongString(v.as_str().expect("S").into()),
        Some("t") => AMQPValue::Boolean(v.as_bool().expect("t")),
        Some("F") => AMQPValue::FieldTable(table(v)),
        Some("V") => AMQPValue::Void,
        Some("I") => AMQPValue::LongInt(v.as_i64().expect("I") as i32),
        Some("l") => AMQPValue::LongLongInt(v.as_i64().expect("l")),
        other => panic!("value type {other:?} not handled by the replay"),
    }
}

/// The method of a record, rebuilt from its name and arguments.
fn method(name: &str, a: &Value) -> AMQPClass {
    use AMQPClass as C;
    match name {
        "connection.start" => C::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: n(a, "version_major") as u8,
            version_minor: n(a, "version_minor") as u8,
            server_properties: table(&a["server_properties"]),
            mechanisms: s(a, "mechanisms").into(),
            locales: s(a, "locales").into(),
        })),
        "connection.tune" => C::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: n(a, "channel_max") as u16,
            frame_max: n(a, "frame_max") as u32,
            heartbeat: n(a, "heartbeat") as u16,
        })),
        "connection.tune-ok" => C::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: n(a, "channel_max") as u16,
            frame_max: n(a, "frame_max") as u32,
            heartbeat: n(a, "heartbeat") as u16,
        })),
        "connection.open" => C::Connection(connection::AMQPMethod::Open(connection::Open {
            virtual_host: short(a, "virtual_host"),
        })),
        "connection.open-ok" => {
            C::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {}))
        }
        "connection.close" => C::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: n(a, "reply_code") as u16,
            reply_text: short(a, "reply_text"),
            class_id: n(a, "class_id") as u16,
            method_id: n(a, "method_id") as u16,
        })),
        "connection.close-ok" => {
            C::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
        }
        "channel.open" => C::Channel(channel::AMQPMethod::Open(channel::Open {})),
        "channel.open-ok" => C::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        "channel.close" => C::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: n(a, "reply_code") as u16,
            reply_text: short(a, "reply_text"),
            class_id: n(a, "class_id") as u16,
            method_id: n(a, "method_id") as u16,
        })),
        "channel.close-ok" => C::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        "exchange.declare" => C::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: short(a, "exchange"),
            kind: short(a, "type"),
            passive: b(a, "passive"),
            durable: b(a, "durable"),
            auto_delete: b(a, "auto_delete"),
            internal: b(a, "internal"),
            nowait: b(a, "no_wait"),
            arguments: table(&a["arguments"]),
        })),
        "exchange.declare-ok" => {
            C::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}))
        }
        "queue.declare" => C::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: short(a, "queue"),
            passive: b(a, "passive"),
            durable: b(a, "durable"),
            exclusive: b(a, "exclusive"),
            auto_delete: b(a, "auto_delete"),
            nowait: b(a, "no_wait"),
            arguments: table(&a["arguments"]),
        })),
        "queue.declare-ok" => C::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: short(a, "queue"),
            message_count: n(a, "message_count") as u32,
            consumer_count: n(a, "consumer_count") as u32,
        })),
        "queue.bind" => C::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: short(a, "queue"),
            exchange: short(a, "exchange"),
            routing_key: short(a, "routing_key"),
            nowait: b(a, "no_wait"),
            arguments: table(&a["arguments"]),
        })),
        "queue.bind-ok" => C::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        "basic.qos" => {
            assert_eq!(n(a, "prefetch_size"), 0);
            C::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: n(a, "prefetch_count") as u16,
                global: b(a, "global"),
            }))
        }
        "basic.qos-ok" => C::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        "basic.consume" => C::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: short(a, "queue"),
            consumer_tag: short(a, "consumer_tag"),
            no_local: b(a, "no_local"),
            no_ack: b(a, "no_ack"),
            exclusive: b(a, "exclusive"),
            nowait: b(a, "no_wait"),
            arguments: table(&a["arguments"]),
        })),
        "basic.consume-ok" => C::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: short(a, "consumer_tag"),
        })),
        "basic.cancel" => C::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: short(a, "consumer_tag"),
            nowait: b(a, "no_wait"),
        })),
        "basic.cancel-ok" => C::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: short(a, "consumer_tag"),
        })),
        "basic.publish" => C::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: short(a, "exchange"),
            routing_key: short(a, "routing_key"),
            mandatory: b(a, "mandatory"),
            immediate: b(a, "immediate"),
        })),
        "basic.deliver" => C::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(a, "consumer_tag"),
            delivery_tag: n(a, "delivery_tag"),
            redelivered: b(a, "redelivered"),
            exchange: short(a, "exchange"),
            routing_key: short(a, "routing_key"),
        })),
        "basic.return" => C::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: n(a, "reply_code") as u16,
            reply_text: short(a, "reply_text"),
            exchange: short(a, "exchange"),
            routing_key: short(a, "routing_key"),
        })),
        "basic.ack" => C::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: n(a, "delivery_tag"),
            multiple: b(a, "multiple"),
        })),
        "basic.nack" => C::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: n(a, "delivery_tag"),
            multiple: b(a, "multiple"),
            requeue: b(a, "requeue"),
        })),
        "basic.reject" => C::Basic(basic::AMQPMethod::Reject(basic::Reject {
            delivery_tag: n(a, "delivery_tag"),
            requeue: b(a, "requeue"),
        })),
        other => panic!("method {other} not handled by the replay"),
    }
}

fn frame_bytes(kind: u8, channel: ChannelId, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// A client frame as it went out: decoded, plus the payload bytes of content headers.
#[derive(Debug)]
struct Sent {
    frame: Frame,
    raw: Vec<u8>,
}

/// What a replayed connection did.
#[derive(Debug, Default)]
struct Outcome {
    events: Vec<Event>,
    deliveries: usize,
    returns: usize,
    publishes: usize,
    completions: usize,
}

/// One connection being replayed.
struct Replay {
    conn: Connection,
    base: Instant,
    now: Instant,
    out: FrameReader,
    sent: VecDeque<Sent>,
    /// Recorded channel number → ours.
    channels: HashMap<u16, ChannelId>,
    /// Requests awaiting a reply, per (our) channel.
    requests: HashMap<ChannelId, VecDeque<SyncId>>,
    outcome: Outcome,
    context: String,
}

impl Replay {
    /// A client whose socket opened at `t` seconds into the capture.
    fn new(vhost: &str, context: String, t: f64) -> Replay {
        let base = Instant::now();
        let now = base + Duration::from_secs_f64(t);
        let config = Config::new("guest", "guest", vhost);
        Replay {
            conn: Connection::new(config, now).expect("config"),
            base,
            now,
            out: FrameReader::new(u32::MAX),
            sent: VecDeque::new(),
            channels: HashMap::new(),
            requests: HashMap::new(),
            outcome: Outcome::default(),
            context,
        }
    }

    fn at(&mut self, t: f64) {
        let now = self.base + Duration::from_secs_f64(t);
        if now > self.now {
            self.now = now;
            self.conn.handle_timeout(now);
        }
    }

    fn ch(&self, recorded: u16) -> ChannelId {
        if recorded == 0 {
            return 0;
        }
        *self
            .channels
            .get(&recorded)
            .unwrap_or_else(|| panic!("{}: channel {recorded} never opened", self.context))
    }

    /// Reads the client's output; heartbeats (dropped from the captures) are skipped.
    fn collect(&mut self) {
        let mut buf = Vec::new();
        self.conn.poll_transmit(&mut buf);
        let mut input = &buf[..];
        while let Some(raw) = self
            .out
            .next_raw(&mut input)
            .expect("client frames are valid")
        {
            let bytes = match raw {
                RawFrame::Header(_, p) => p.to_vec(),
                _ => Vec::new(),
            };
            let frame = raw.decode().expect("client frames decode");
            if !matches!(frame, Frame::Heartbeat(0)) {
                self.sent.push_back(Sent { frame, raw: bytes });
            }
        }
    }

    fn next_sent(&mut self) -> Sent {
        self.collect();
        self.sent
            .pop_front()
            .unwrap_or_else(|| panic!("{}: the client sent nothing", self.context))
    }

    fn expect_method(&mut self, channel: ChannelId, want: &AMQPClass) {
        let got = self.next_sent();
        match &got.frame {
            Frame::Method(ch, m) if *ch == channel && m == want => {}
            _ => panic!(
                "{}: expected {want:?} on channel {channel}, the client sent {:?}",
                self.context, got.frame
            ),
        }
    }

    fn drain_events(&mut self) -> Vec<Event> {
        let events: Vec<Event> = std::iter::from_fn(|| self.conn.poll_event()).collect();
        self.outcome.events.extend(events.iter().cloned());
        events
    }

    fn request(&mut self, ch: ChannelId, r: SyncId) {
        self.requests.entry(ch).or_default().push_back(r);
    }

    /// The next event must complete the oldest request on `ch` with `want`.
    fn completed(&mut self, events: &[Event], ch: ChannelId, want: Completion) {
        let expected = self.requests.get_mut(&ch).and_then(VecDeque::pop_front);
        match events {
            [
                Event::Completed {
                    channel,
                    id: request,
                    result: Ok(c),
                },
            ] if *channel == ch && Some(*request) == expected && *c == want => {
                self.outcome.completions += 1;
            }
            other => panic!(
                "{}: expected completion {want:?}, got {other:?}",
                self.context
            ),
        }
    }

    fn client_record(&mut self, r: &Value) {
        let name = s(r, "method");
        let args = &r["args"];
        let recorded_ch = n(r, "channel") as u16;
        match name {
            // Answers the client gives by itself.
            "connection.start-ok" => {
                let sent = self.next_sent();
                match sent.frame {
                    Frame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)),
                    ) => {
                        assert_eq!(ok.mechanism.as_str(), s(args, "mechanism"));
                        assert_eq!(ok.locale.as_str(), s(args, "locale"));
                        assert_eq!(ok.response.len() as u64, n(args, "response_len"));
                    }
                    other => panic!("{}: expected start-ok, got {other:?}", self.context),
                }
            }
            "connection.tune-ok"
            | "connection.open"
            | "channel.close-ok"
            | "connection.close-ok" => {
                let ch = self.ch(recorded_ch);
                self.expect_method(ch, &method(name, args));
            }
            "channel.open" => {
                let ch = self.conn.open_channel().expect("open_channel");
                self.channels.insert(recorded_ch, ch);
                self.expect_method(ch, &method(name, args));
            }
            "channel.close" => {
                let ch = self.ch(recorded_ch);
                self.conn
                    .close_channel(ch, n(args, "reply_code") as u16, s(args, "reply_text"))
                    .expect("close_channel");
                self.expect_method(ch, &method(name, args));
            }
            "connection.close" => {
                self.conn
                    .close(
                        n(args, "reply_code") as u16,
                        s(args, "reply_text"),
                        self.now,
                    )
                    .expect("close");
                self.expect_method(0, &method(name, args));
            }
            "basic.publish" => {
                let ch = self.ch(recorded_ch);
                let header = B64
                    .decode(s(r, "content_header_frame_payload_b64"))
                    .unwrap();
                let raw_props = B64.decode(s(r, "properties_raw_b64")).unwrap();
                let body = B64.decode(s(r, "body_b64")).unwrap();
                let props = Properties::decode(&raw_props).expect("recorded properties decode");
                let publish = Publish {
                    exchange: s(args, "exchange"),
                    routing_key: s(args, "routing_key"),
                    mandatory: b(args, "mandatory"),
                    immediate: b(args, "immediate"),
                };
                assert_eq!(
                    self.conn.basic_publish(ch, &publish, &props, &body),
                    Ok(None)
                );
                self.expect_method(ch, &method(name, args));
                let sent = self.next_sent();
                assert!(matches!(sent.frame, Frame::Header(c, _) if c == ch));
                assert_eq!(
                    sent.raw, header,
                    "{}: the content header must be byte-identical to Python's",
                    self.context
                );
                let mut got = Vec::new();
                while got.len() < body.len() {
                    match self.next_sent().frame {
                        Frame::Body(c, part) if c == ch => got.extend(part),
                        other => panic!("{}: expected a body frame, got {other:?}", self.context),
                    }
                }
                assert_eq!(got, body);
                self.outcome.publishes += 1;
            }
            _ => {
                let ch = self.ch(recorded_ch);
                let m = method(name, args);
                match &m {
                    AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)) => {
                        let args = ExchangeDeclare {
                            exchange: d.exchange.to_string(),
                            kind: d.kind.to_string(),
                            passive: d.passive,
                            durable: d.durable,
                            auto_delete: d.auto_delete,
                            internal: d.internal,
                            no_wait: d.nowait,
                            arguments: d.arguments.clone(),
                        };
                        let r = self.conn.exchange_declare(ch, &args).unwrap();
                        if !d.nowait {
                            self.request(ch, r);
                        }
                    }
                    AMQPClass::Queue(queue::AMQPMethod::Declare(d)) => {
                        let args = QueueDeclare {
                            queue: d.queue.to_string(),
                            passive: d.passive,
                            durable: d.durable,
                            exclusive: d.exclusive,
                            auto_delete: d.auto_delete,
                            no_wait: d.nowait,
                            arguments: d.arguments.clone(),
                        };
                        let r = self.conn.queue_declare(ch, &args).unwrap();
                        if !d.nowait {
                            self.request(ch, r);
                        }
                    }
                    AMQPClass::Queue(queue::AMQPMethod::Bind(d)) => {
                        let args = QueueBind {
                            queue: d.queue.to_string(),
                            exchange: d.exchange.to_string(),
                            routing_key: d.routing_key.to_string(),
                            no_wait: d.nowait,
                            arguments: d.arguments.clone(),
                        };
                        let r = self.conn.queue_bind(ch, &args).unwrap();
                        if !d.nowait {
                            self.request(ch, r);
                        }
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Qos(q)) => {
                        let r = self.conn.basic_qos(ch, q.prefetch_count, q.global).unwrap();
                        self.request(ch, r);
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Consume(c)) => {
                        let args = Consume {
                            queue: c.queue.to_string(),
                            consumer_tag: c.consumer_tag.to_string(),
                            no_local: c.no_local,
                            no_ack: c.no_ack,
                            exclusive: c.exclusive,
                            no_wait: c.nowait,
                            arguments: c.arguments.clone(),
                        };
                        let r = self.conn.basic_consume(ch, &args).unwrap();
                        if !c.nowait {
                            self.request(ch, r);
                        }
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) => {
                        let r = self
                            .conn
                            .basic_cancel(ch, c.consumer_tag.as_str(), c.nowait)
                            .unwrap();
                        if !c.nowait {
                            self.request(ch, r);
                        }
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                        self.conn.basic_ack(ch, a.delivery_tag, a.multiple).unwrap()
                    }
                    AMQPClass::Basic(basic::AMQPMethod::Nack(a)) => self
                        .conn
                        .basic_nack(ch, a.delivery_tag, a.multiple, a.requeue)
                        .unwrap(),
                    AMQPClass::Basic(basic::AMQPMethod::Reject(a)) => self
                        .conn
                        .basic_reject(ch, a.delivery_tag, a.requeue)
                        .unwrap(),
                    other => panic!("{}: no command for {other:?}", self.context),
                }
                self.expect_method(ch, &m);
            }
        }
    }

    /// The frames of a server record, on our channel number.
    fn server_bytes(&self, r: &Value) -> (AMQPClass, ChannelId, Vec<u8>) {
        let ch = self.ch(n(r, "channel") as u16);
        let m = method(s(r, "method"), &r["args"]);
        let mut bytes = Vec::new();
        write_method(&mut bytes, ch, &m);
        if r["frame"] == "message" {
            let header = B64
                .decode(s(r, "content_header_frame_payload_b64"))
                .unwrap();
            bytes.extend(frame_bytes(2, ch, &header));
            let body = B64.decode(s(r, "body_b64")).unwrap();
            for part in body.chunks(131_072 - 8) {
                bytes.extend(frame_bytes(3, ch, part));
            }
        }
        (m, ch, bytes)
    }

    fn server_record(&mut self, r: &Value) {
        let (m, ch, bytes) = self.server_bytes(r);
        self.conn.handle_input(&bytes, self.now);
        self.collect();
        let events = self.drain_events();
        self.check_events(r, &m, ch, &events);
    }

    /// Feeds consecutive server records as one byte stream cut into chunks of the given sizes
    /// (used cyclically); events are collected, not checked.
    fn server_segment(&mut self, records: &[&Value], chunks: &[usize]) {
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend(self.server_bytes(r).2);
        }
        let mut rest = &bytes[..];
        for &size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
            self.conn.handle_input(chunk, self.now);
            rest = tail;
        }
        self.collect();
        self.drain_events();
    }

    fn check_events(&mut self, r: &Value, m: &AMQPClass, ch: ChannelId, events: &[Event]) {
        use AMQPClass as C;
        let ctx = self.context.clone();
        match m {
            C::Connection(connection::AMQPMethod::Start(_) | connection::AMQPMethod::Tune(_)) => {
                assert!(events.is_empty(), "{ctx}: {events:?}")
            }
            C::Connection(connection::AMQPMethod::OpenOk(_)) => {
                assert!(
                    matches!(events, [Event::Connected { tuning, .. }] if tuning.frame_max == 131_072 && tuning.heartbeat == 60),
                    "{ctx}: {events:?}"
                );
            }
            C::Connection(connection::AMQPMethod::Close(close)) => match events.last() {
                Some(Event::Closed {
                    reply_code,
                    reply_text,
                    by_peer: true,
                    error: Some(ConnectionError::ClosedByPeer { .. }),
                }) if *reply_code == close.reply_code
                    && *reply_text == close.reply_text.as_str() => {}
                other => panic!("{ctx}: expected Closed by the broker, got {other:?}"),
            },
            C::Connection(connection::AMQPMethod::CloseOk(_)) => match events.last() {
                Some(Event::Closed {
                    by_peer: false,
                    error: None,
                    ..
                }) => {}
                other => panic!("{ctx}: expected a clean Closed, got {other:?}"),
            },
            C::Channel(channel::AMQPMethod::OpenOk(_)) => {
                assert_eq!(events, [Event::ChannelOpened { channel: ch }], "{ctx}")
            }
            C::Channel(channel::AMQPMethod::Close(close)) => {
                match events.last() {
                    Some(Event::ChannelClosed {
                        channel,
                        reply_code,
                        reply_text,
                        class_id,
                        method_id,
                        by_peer: true,
                    }) if *channel == ch
                        && *reply_code == close.reply_code
                        && *reply_text == close.reply_text.as_str()
                        && (*class_id, *method_id) == (close.class_id, close.method_id) => {}
                    other => panic!("{ctx}: expected ChannelClosed by the broker, got {other:?}"),
                }
                // Requests still pending failed with the close.
                let pending = self.requests.remove(&ch).unwrap_or_default();
                assert_eq!(events.len(), pending.len() + 1, "{ctx}: {events:?}");
            }
            C::Channel(channel::AMQPMethod::CloseOk(_)) => {
                assert!(
                    matches!(events, [Event::ChannelClosed { channel, by_peer: false, .. }] if *channel == ch),
                    "{ctx}: {events:?}"
                );
            }
            C::Exchange(exchange::AMQPMethod::DeclareOk(_)) => {
                self.completed(events, ch, Completion::ExchangeDeclared)
            }
            C::Queue(queue::AMQPMethod::DeclareOk(ok)) => self.completed(
                events,
                ch,
                Completion::QueueDeclared {
                    queue: ok.queue.clone(),
                    message_count: ok.message_count,
                    consumer_count: ok.consumer_count,
                },
            ),
            C::Queue(queue::AMQPMethod::BindOk(_)) => {
                self.completed(events, ch, Completion::QueueBound)
            }
            C::Basic(basic::AMQPMethod::QosOk(_)) => self.completed(events, ch, Completion::QosSet),
            C::Basic(basic::AMQPMethod::ConsumeOk(ok)) => self.completed(
                events,
                ch,
                Completion::ConsumeStarted {
                    consumer_tag: ok.consumer_tag.clone(),
                },
            ),
            C::Basic(basic::AMQPMethod::CancelOk(ok)) => self.completed(
                events,
                ch,
                Completion::ConsumeCancelled {
                    consumer_tag: ok.consumer_tag.clone(),
                },
            ),
            C::Basic(basic::AMQPMethod::Deliver(d)) => {
                let properties = recorded_properties(r);
                let body = B64.decode(s(r, "body_b64")).unwrap();
                assert_eq!(
                    events,
                    [Event::Delivery(Delivery {
                        channel: ch,
                        consumer_tag: d.consumer_tag.clone(),
                        delivery_tag: d.delivery_tag,
                        redelivered: d.redelivered,
                        exchange: d.exchange.clone(),
                        routing_key: d.routing_key.clone(),
                        properties,
                        body,
                    })],
                    "{ctx}"
                );
                self.outcome.deliveries += 1;
            }
            C::Basic(basic::AMQPMethod::Return(ret)) => {
                let properties = recorded_properties(r);
                let body = B64.decode(s(r, "body_b64")).unwrap();
                assert_eq!(
                    events,
                    [Event::Returned(Returned {
                        channel: ch,
                        reply_code: ret.reply_code,
                        reply_text: ret.reply_text.clone(),
                        exchange: ret.exchange.clone(),
                        routing_key: ret.routing_key.clone(),
                        properties,
                        body,
                    })],
                    "{ctx}"
                );
                self.outcome.returns += 1;
            }
            other => panic!("{ctx}: no expectation for {other:?}"),
        }
    }

    fn finish(&mut self) {
        if !self.conn.is_closed() {
            self.conn.handle_eof(self.now);
            self.drain_events();
        }
        self.collect();
        // Only a close-ok for a close the broker sent may be left unrecorded.
        for sent in self.sent.drain(..) {
            assert!(
                matches!(
                    sent.frame,
                    Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)))
                ),
                "{}: unrecorded client frame {:?}",
                self.context,
                sent.frame
            );
        }
        assert!(self.conn.is_closed());
    }
}

/// The recorded properties, decoded from their exact bytes; also checked against the decoded
/// JSON view of the capture.
fn recorded_properties(r: &Value) -> Properties {
    let raw = B64.decode(s(r, "properties_raw_b64")).unwrap();
    let props = Properties::decode(&raw).expect("recorded properties decode");
    let mut again = Vec::new();
    props.encode(&mut again);
    assert_eq!(again, raw, "properties re-encode byte for byte");
    let json = &r["properties"];
    assert_eq!(
        props.content_type.as_ref().map(|s| s.as_str()),
        json["content_type"].as_str()
    );
    assert_eq!(
        props.correlation_id.as_ref().map(|s| s.as_str()),
        json["correlation_id"].as_str()
    );
    if let Some(headers) = json["headers"].as_object() {
        let ours = props.headers.as_ref().expect("headers");
        let keys: Vec<&str> = ours.keys().collect();
        let theirs: Vec<&str> = headers.keys().map(String::as_str).collect();
        assert_eq!(keys, theirs, "header order");
        for (k, typed) in headers {
            if matches!(typed["type"].as_str(), Some("S" | "t" | "V")) {
                assert_eq!(ours.get(k), Some(&value(typed)), "header {k}");
            }
        }
    }
    props
}

/// Replays every connection of a capture; connections that used `basic.get` (whose arguments the
/// capture does not record) are skipped and counted.
fn replay(name: &str) -> (BTreeMap<u64, Outcome>, usize) {
    let doc = load(name);
    let records = doc["records"].as_array().expect("records");
    let mut by_conn: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in records {
        if let Some(c) = r["conn"].as_u64() {
            by_conn.entry(c).or_default().push(r);
        }
    }
    let mut outcomes = BTreeMap::new();
    let mut skipped = 0;
    for (conn, records) in by_conn {
        if records
            .iter()
            .any(|r| r["method"].as_str().is_some_and(|m| m.starts_with("60.7")))
        {
            skipped += 1;
            continue;
        }
        let vhost = records
            .iter()
            .find(|r| r["method"] == "connection.open")
            .map(|r| s(&r["args"], "virtual_host").to_owned())
            .expect("connection.open");
        let opened = records[0]["t"].as_f64().expect("t");
        let mut replay = Replay::new(&vhost, format!("{name} conn {conn}"), opened);
        for r in records {
            if let Some(t) = r["t"].as_f64() {
                replay.at(t);
            }
            match (r["frame"].as_str(), r["dir"].as_str()) {
                (Some("tcp-open"), _) => {}
                (Some("tcp-close"), _) => replay.finish(),
                (Some("protocol-header"), Some("C->S")) => {
                    let got = replay.next_sent();
                    let mut header = Vec::new();
                    write_protocol_header(&mut header);
                    assert_eq!(got.frame, Frame::ProtocolHeader([0, 0, 9, 1]));
                    assert_eq!(B64.decode(s(r, "bytes_b64")).unwrap(), header);
                }
                (_, Some("C->S")) => replay.client_record(r),
                (_, Some("S->C")) => replay.server_record(r),
                other => panic!("record kind {other:?}"),
            }
        }
        outcomes.insert(conn, replay.outcome);
    }
    (outcomes, skipped)
}

fn all_captures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(captures::dir())
        .expect("captures directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".messages.json"))
        .filter(|n| n != "dead_letters.json") // broker state only, no frames
        .collect();
    names.sort();
    names
}

#[test]
fn every_capture_replays_to_the_states_python_reached() {
    let names = all_captures();
    assert!(names.len() >= 14, "captures found: {names:?}");
    let (mut connections, mut skipped, mut deliveries, mut returns, mut publishes) =
        (0, 0, 0, 0, 0);
    for name in &names {
        let (outcomes, skip) = replay(name);
        skipped += skip;
        for outcome in outcomes.values() {
            connections += 1;
            assert!(
                matches!(outcome.events.first(), Some(Event::Connected { .. })),
                "{name}: handshake done"
            );
            assert!(
                matches!(outcome.events.last(), Some(Event::Closed { .. })),
                "{name}: ends closed"
            );
            deliveries += outcome.deliveries;
            returns += outcome.returns;
            publishes += outcome.publishes;
        }
    }
    println!(
        "replayed {connections} connections from {} captures ({skipped} skipped): \
         {deliveries} deliveries, {publishes} publishes, {returns} returns",
        names.len()
    );
    // Only decode_errors' raw pika connections use basic.get.
    assert!(skipped <= 11, "skipped {skipped}");
    assert!(connections >= 45, "replayed {connections} connections");
    assert_eq!(returns, 3, "the three basic.return records");
    assert!(deliveries >= 90, "deliveries {deliveries}");
    assert!(publishes >= 90, "publishes {publishes}");
}

#[test]
fn request_basic_service_gets_its_requests_with_python_properties() {
    let (outcomes, _) = replay("request_basic.json");
    let service = &outcomes[&2];
    assert!(service.deliveries >= 3);
    let first = service
        .events
        .iter()
        .find_map(|e| match e {
            Event::Delivery(d) => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(first.routing_key.as_str(), "research-svc");
    assert_eq!(
        first.properties.expiration.as_ref().unwrap().as_str(),
        "1800000"
    );
    let headers = first.properties.headers.as_ref().unwrap();
    assert_eq!(
        headers.get("nuropb_type"),
        Some(&AMQPValue::LongString("request".into()))
    );
    assert!(first.body.starts_with(b"{\"tag\": \"request\""));
}

#[test]
fn single_instance_second_consumer_gets_the_403_channel_close() {
    let (outcomes, _) = replay("single_instance.json");
    let second = &outcomes[&3];
    let close = second
        .events
        .iter()
        .find(|e| matches!(e, Event::ChannelClosed { by_peer: true, .. }))
        .expect("a channel close by the broker");
    match close {
        Event::ChannelClosed {
            reply_code,
            reply_text,
            class_id,
            method_id,
            ..
        } => {
            assert_eq!(*reply_code, 403);
            assert!(reply_text.contains("in exclusive use"));
            assert_eq!((*class_id, *method_id), (60, 20), "basic.consume");
        }
        _ => unreachable!(),
    }
    // The exclusive consume that caused it failed with the close.
    assert!(second.events.iter().any(|e| matches!(
        e,
        Event::Completed { result: Err(f), .. } if f.reply_code == 403
    )));
    // The first instance kept its consumers until it disconnected cleanly.
    assert!(matches!(
        outcomes[&2].events.last(),
        Some(Event::Closed {
            by_peer: false,
            error: None,
            ..
        })
    ));
}

#[test]
fn reconnect_service_sees_the_320_connection_forced() {
    let (outcomes, _) = replay("reconnect.json");
    match outcomes[&2].events.last() {
        Some(Event::Closed {
            reply_code: 320,
            reply_text,
            by_peer: true,
            error:
                Some(ConnectionError::ClosedByPeer {
                    reply_code: 320, ..
                }),
        }) => assert!(reply_text.starts_with("CONNECTION_FORCED")),
        other => panic!("{other:?}"),
    }
    // Its channel went with it.
    assert!(outcomes[&2].events.iter().any(|e| matches!(
        e,
        Event::ChannelClosed {
            reply_code: 320,
            by_peer: true,
            ..
        }
    )));
}

#[test]
fn unroutable_requests_come_back_as_returns() {
    let (outcomes, _) = replay("unroutable.json");
    let returns: Vec<&Returned> = outcomes
        .values()
        .flat_map(|o| o.events.iter())
        .filter_map(|e| match e {
            Event::Returned(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(returns.len(), 2);
    for r in returns {
        assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
        assert_eq!(r.routing_key.as_str(), "no-such-service");
    }
}

/// Runs one connection of a capture with every run of consecutive server records fed as one
/// stream in chunks of the given sizes; returns all events. Client records are replayed and
/// checked as in [`replay`].
fn run_chunked(name: &str, conn: u64, chunks: &[usize]) -> Vec<Event> {
    let doc = load(name);
    let records: Vec<&Value> = doc["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["conn"].as_u64() == Some(conn))
        .collect();
    let vhost = records
        .iter()
        .find(|r| r["method"] == "connection.open")
        .map(|r| s(&r["args"], "virtual_host").to_owned())
        .expect("connection.open");
    let opened = records[0]["t"].as_f64().expect("t");
    let mut replay = Replay::new(&vhost, format!("{name} conn {conn} chunked"), opened);
    let mut i = 0;
    while i < records.len() {
        let r = records[i];
        match (r["frame"].as_str(), r["dir"].as_str()) {
            (_, Some("S->C")) => {
                let end = records[i..]
                    .iter()
                    .position(|r| r["dir"] != "S->C")
                    .map_or(records.len(), |p| i + p);
                replay.server_segment(&records[i..end], chunks);
                i = end;
                continue;
            }
            (Some("tcp-close"), _) => replay.finish(),
            (Some("protocol-header"), _) => {
                replay.next_sent();
            }
            (_, Some("C->S")) => replay.client_record(r),
            _ => {}
        }
        i += 1;
    }
    replay.outcome.events
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any chunking of the recorded server byte streams gives the same events as whole frames.
    #[test]
    fn any_chunking_of_recorded_streams_gives_the_same_events(
        chunks in proptest::collection::vec(1usize..300, 1..40)
    ) {
        for (name, conn) in [
            ("request_basic.json", 2),
            ("request_basic.json", 3),
            ("unroutable.json", 2),
            ("single_instance.json", 3),
            ("reconnect.json", 2),
            ("encrypted.json", 2),
        ] {
            let whole = run_chunked(name, conn, &[usize::MAX]);
            prop_assert!(whole.len() > 3, "{} {}", name, conn);
            let chunked = run_chunked(name, conn, &chunks);
            prop_assert_eq!(&chunked, &whole, "{} conn {}", name, conn);
        }
    }
}
