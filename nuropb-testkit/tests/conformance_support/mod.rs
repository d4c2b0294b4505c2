//! The differential harness: one AMQP client (`nuropb_proto::amqp::Connection` over a blocking
//! `TcpStream`), pointed at RabbitMQ or at the testkit broker's TCP server, and a transcript of
//! what the client observes, normalized so that two brokers can be compared line by line.
#![allow(dead_code)]

use nuropb_proto::amqp::{
    self, AMQPValue, Completion, Config, Connection, Event, FieldTable, Properties, SyncId,
};
use nuropb_proto::mesh::management::AmqpUrl;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Where a broker listens and how to log in.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: &'static str,
    pub addr: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl Target {
    /// The machine's RabbitMQ: `NUROPB_TEST_AMQP_URL`, else 127.0.0.1:5672 guest/guest `/`.
    pub fn rabbitmq() -> Target {
        let url = std::env::var("NUROPB_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let url = AmqpUrl::parse(&url).expect("NUROPB_TEST_AMQP_URL is an amqp:// URL");
        Target {
            name: "rabbitmq",
            addr: format!("{}:{}", url.host, url.port.unwrap_or(5672)),
            user: url.username,
            password: url.password,
            vhost: url.vhost,
        }
    }
}

/// What a scenario saw, one normalized line per observation.
#[derive(Debug, Default)]
pub struct Transcript {
    pub lines: Vec<String>,
    prefix: String,
    vhost: String,
}

impl Transcript {
    pub fn log(&mut self, line: impl AsRef<str>) {
        let mut line = line.as_ref().to_owned();
        if !self.prefix.is_empty() {
            line = line
                .replace(&self.prefix, "P-")
                .replace(&format!("vhost '{}'", self.vhost), "vhost 'V'");
        }
        self.lines.push(line);
    }
}

/// A scenario's context: the target, the names' unique prefix, the transcript.
pub struct Ctx {
    pub target: Target,
    pub prefix: String,
    pub t: Transcript,
}

impl Ctx {
    pub fn new(target: Target, prefix: String) -> Ctx {
        Ctx {
            t: Transcript {
                lines: Vec::new(),
                prefix: prefix.clone(),
                vhost: target.vhost.clone(),
            },
            target,
            prefix,
        }
    }

    /// A name unique to this run.
    pub fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// A connected client with channel 1 open.
    pub fn client(&mut self) -> Client {
        let mut c = Client::connect(&self.target);
        let ch = c.conn.open_channel().expect("channel 1");
        assert_eq!(ch, 1);
        c.until(&mut self.t, "channel.open-ok", |e| {
            matches!(e, Event::ChannelOpened { .. })
        });
        c
    }
}

/// One connection to the broker under test.
pub struct Client {
    pub conn: Connection,
    sock: TcpStream,
    pub events: VecDeque<Event>,
    read: Vec<u8>,
    write: Vec<u8>,
    closed: bool,
}

const WAIT: Duration = Duration::from_secs(5);

impl Client {
    pub fn connect(target: &Target) -> Client {
        let sock = TcpStream::connect(&target.addr).unwrap_or_else(|e| {
            panic!(
                "{} is not reachable at {}: {e}. The conformance suite needs it (set \
                 NUROPB_TEST_AMQP_URL to point elsewhere); it never skips.",
                target.name, target.addr
            )
        });
        sock.set_nodelay(true).ok();
        sock.set_read_timeout(Some(Duration::from_millis(10))).ok();
        let config = Config {
            heartbeat: 0,
            ..Config::new(&target.user, &target.password, &target.vhost)
        };
        let mut c = Client {
            conn: Connection::new(config, Instant::now()).unwrap(),
            sock,
            events: VecDeque::new(),
            read: vec![0; 64 * 1024],
            write: Vec::new(),
            closed: false,
        };
        let mut ignore = Transcript::default();
        c.until(&mut ignore, "connection.open-ok", |e| {
            matches!(e, Event::Connected { .. })
        });
        c
    }

    /// Writes what the connection has to send, then reads for at most `wait` (returning early
    /// once something arrived), feeding the connection.
    pub fn pump(&mut self, wait: Duration) {
        self.write.clear();
        if self.conn.poll_transmit(&mut self.write) > 0 && !self.closed {
            let _ = self.sock.write_all(&self.write);
        }
        let end = Instant::now() + wait;
        loop {
            if self.closed {
                break;
            }
            match self.sock.read(&mut self.read) {
                Ok(0) => {
                    self.closed = true;
                    self.conn.handle_eof(Instant::now());
                }
                Ok(n) => {
                    self.conn.handle_input(&self.read[..n], Instant::now());
                    // Take what else is there without waiting.
                    continue;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    self.closed = true;
                    self.conn.handle_eof(Instant::now());
                }
            }
            let got = self.drain();
            if got || Instant::now() >= end {
                break;
            }
        }
        self.drain();
        self.write.clear();
        if self.conn.poll_transmit(&mut self.write) > 0 && !self.closed {
            let _ = self.sock.write_all(&self.write);
        }
    }

    fn drain(&mut self) -> bool {
        let mut got = false;
        while let Some(e) = self.conn.poll_event() {
            self.events.push_back(e);
            got = true;
        }
        got
    }

    /// Pumps until an event `want` accepts; logs every event on the way (and that one).
    pub fn until(
        &mut self,
        t: &mut Transcript,
        what: &str,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Event {
        let end = Instant::now() + WAIT;
        loop {
            while let Some(e) = self.events.pop_front() {
                t.log(describe(&e));
                if want(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; saw {:?}",
                t.lines
            );
            self.pump(Duration::from_millis(50));
        }
    }

    /// Pumps until request `id` completes; logs it (and everything before).
    pub fn done(&mut self, t: &mut Transcript, id: SyncId) -> Event {
        self.until(
            t,
            "a reply",
            |e| matches!(e, Event::Completed { id: done, .. } if *done == id),
        )
    }

    /// Pumps for `d`, logging everything that arrives (to show that nothing else does).
    pub fn quiet(&mut self, t: &mut Transcript, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.pump(Duration::from_millis(20));
        }
        while let Some(e) = self.events.pop_front() {
            t.log(describe(&e));
        }
    }

    /// Closes the connection and waits for the end.
    pub fn close(mut self) {
        if self
            .conn
            .close(200, "bye", std::time::Instant::now())
            .is_ok()
        {
            let mut ignore = Transcript::default();
            self.until(&mut ignore, "connection.close-ok", |e| {
                matches!(e, Event::Closed { .. })
            });
        }
    }
}

/// An observation, without what differs between runs (times, generated names).
pub fn describe(e: &Event) -> String {
    match e {
        Event::Connected { .. } => "connected".into(),
        Event::ChannelOpened { channel } => format!("channel {channel} open"),
        Event::ChannelClosed {
            channel,
            reply_code,
            reply_text,
            class_id,
            method_id,
            by_peer,
        } => format!(
            "channel {channel} closed {reply_code} {reply_text} ({class_id},{method_id}) peer={by_peer}"
        ),
        Event::Completed { result, .. } => match result {
            Ok(c) => completion(c),
            Err(f) => format!("failed {} {}", f.reply_code, f.reply_text),
        },
        Event::Delivery(d) => format!(
            "deliver {} tag={} redelivered={} ex={} rk={} {} body={}",
            d.consumer_tag,
            d.delivery_tag,
            d.redelivered,
            d.exchange,
            d.routing_key,
            props(&d.properties),
            String::from_utf8_lossy(&d.body)
        ),
        Event::Returned(r) => format!(
            "return {} {} ex={} rk={} body={}",
            r.reply_code,
            r.reply_text,
            r.exchange,
            r.routing_key,
            String::from_utf8_lossy(&r.body)
        ),
        Event::Unreadable(u) => unreadable(u),
        Event::Confirmed { seq, outcome, .. } => format!("confirm {seq} {outcome:?}"),
        Event::ConsumerCancelled { consumer_tag, .. } => format!("cancelled {consumer_tag}"),
        Event::Flow { active, .. } => format!("flow {active}"),
        Event::Blocked { .. } => "blocked".into(),
        Event::Unblocked => "unblocked".into(),
        Event::Closed {
            reply_code,
            reply_text,
            by_peer,
            ..
        } => format!("connection closed {reply_code} {reply_text} peer={by_peer}"),
    }
}

fn completion(c: &Completion) -> String {
    match c {
        Completion::QueueDeclared {
            queue,
            message_count,
            consumer_count,
        } => format!("declare-ok {queue} messages={message_count} consumers={consumer_count}"),
        Completion::QueuePurged { message_count } => format!("purge-ok {message_count}"),
        Completion::QueueDeleted { message_count } => format!("delete-ok {message_count}"),
        Completion::ConsumeStarted { consumer_tag } => format!("consume-ok {consumer_tag}"),
        Completion::ConsumeCancelled { consumer_tag } => format!("cancel-ok {consumer_tag}"),
        Completion::GotUnreadable(u) => format!("get-ok {}", unreadable(u)),
        Completion::Got(m) => format!(
            "get-ok tag={} redelivered={} ex={} rk={} left={} {} body={}",
            m.delivery_tag,
            m.redelivered,
            m.exchange,
            m.routing_key,
            m.message_count,
            props(&m.properties),
            String::from_utf8_lossy(&m.body)
        ),
        other => format!("{other:?}"),
    }
}

/// A message the client could not read: where from, what it could read, why not the rest.
fn unreadable(u: &nuropb_proto::amqp::Unreadable) -> String {
    let keys: Vec<&str> = u
        .properties
        .headers
        .as_ref()
        .map(|h| h.keys().collect())
        .unwrap_or_default();
    format!(
        "unreadable {:?} ex={} rk={} size={} correlation_id={:?} headers={keys:?} {}error={}",
        u.origin,
        u.exchange,
        u.routing_key,
        u.body_size,
        u.properties.correlation_id.as_ref().map(|c| c.as_str()),
        props(&u.properties),
        u.error
    )
}

/// Publishes a hand-made property list on channel 1.
pub fn publish_raw(c: &mut Client, key: &str, properties: &[u8], body: &str) {
    c.conn
        .basic_publish_raw(1, &amqp::Publish::new("", key), properties, body.as_bytes())
        .expect("publish");
}

/// The properties that matter: expiration and the dead-lettering headers (not their times).
fn props(p: &Properties) -> String {
    let mut out = String::new();
    if let Some(e) = &p.expiration {
        out.push_str(&format!("expiration={e} "));
    }
    if let Some(h) = &p.headers {
        let mut keys: Vec<&str> = h.keys().collect();
        keys.sort_unstable();
        for k in keys {
            let v = h.get(k).unwrap();
            if k == "x-death" {
                out.push_str(&format!("x-death={} ", deaths(v)));
            } else {
                out.push_str(&format!("{k}={} ", value(v)));
            }
        }
    }
    format!("[{}]", out.trim_end())
}

fn deaths(v: &AMQPValue) -> String {
    let AMQPValue::FieldArray(entries) = v else {
        return value(v);
    };
    let list: Vec<String> = entries
        .as_slice()
        .iter()
        .map(|entry| match entry {
            AMQPValue::FieldTable(t) => table(t, &["time"]),
            other => value(other),
        })
        .collect();
    format!("[{}]", list.join(", "))
}

fn table(t: &FieldTable, skip: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = t
        .inner()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), value(v)))
        .collect();
    pairs.sort();
    let inner: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(" "))
}

fn value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::FieldArray(a) => {
            let items: Vec<String> = a.as_slice().iter().map(value).collect();
            format!("[{}]", items.join(","))
        }
        AMQPValue::FieldTable(t) => table(t, &[]),
        AMQPValue::Timestamp(_) => "<time>".into(),
        other => format!("{other:?}"),
    }
}

/// Publishes on channel 1.
pub fn publish(c: &mut Client, exchange: &str, key: &str, props: &Properties, body: &str) {
    publish_with(c, exchange, key, false, props, body);
}

/// Publishes on channel 1, maybe mandatory.
pub fn publish_with(
    c: &mut Client,
    exchange: &str,
    key: &str,
    mandatory: bool,
    props: &Properties,
    body: &str,
) {
    let p = amqp::Publish {
        mandatory,
        ..amqp::Publish::new(exchange, key)
    };
    c.conn
        .basic_publish(1, &p, props, body.as_bytes())
        .expect("publish");
}
