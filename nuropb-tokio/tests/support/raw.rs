//! A plain AMQP client for hand-made messages: `nuropb_proto::amqp::Connection` over a blocking
//! `TcpStream`, with its own reply queue. Use it from `spawn_blocking`.

use nuropb_proto::amqp::{
    Completion, Config, Connection, Consume, Delivery, Event, Publish, QueueDeclare,
};
use nuropb_tokio::ConnectionSettings;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The queue the raw client's replies come back on.
pub const REPLIES: &str = "raw-replies";

/// A connected client with channel 1 open, consuming [`REPLIES`] (exclusive, auto-ack).
pub struct Raw {
    conn: Connection,
    sock: TcpStream,
    events: VecDeque<Event>,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to the broker and vhost of `settings`.
    pub fn connect(settings: &ConnectionSettings) -> Raw {
        let addr = format!("{}:{}", settings.host, settings.port());
        let sock =
            TcpStream::connect(&addr).unwrap_or_else(|e| panic!("no AMQP broker at {addr}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let config = Config::new(
            settings.username.clone(),
            settings.password.clone(),
            settings.vhost.clone(),
        );
        let mut raw = Raw {
            conn: Connection::new(config, Instant::now()).unwrap(),
            sock,
            events: VecDeque::new(),
            buf: vec![0; 64 * 1024],
        };
        raw.wait_for("connected", |e| {
            matches!(e, Event::Connected { .. }).then_some(())
        });
        raw.conn.open_channel().unwrap();
        raw.wait_for("channel 1", |e| {
            matches!(e, Event::ChannelOpened { .. }).then_some(())
        });
        let declare = QueueDeclare {
            exclusive: true,
            ..QueueDeclare::new(REPLIES)
        };
        let id = raw.conn.queue_declare(1, &declare).unwrap();
        raw.completed(id);
        let consume = Consume {
            no_ack: true,
            ..Consume::new(REPLIES)
        };
        let id = raw.conn.basic_consume(1, &consume).unwrap();
        raw.completed(id);
        raw
    }

    /// Publishes `body` with hand-made property bytes.
    pub fn publish(&mut self, exchange: &str, routing_key: &str, properties: &[u8], body: &[u8]) {
        self.conn
            .basic_publish_raw(1, &Publish::new(exchange, routing_key), properties, body)
            .unwrap();
        self.turn();
    }

    /// How many messages wait in `queue`.
    pub fn depth(&mut self, queue: &str) -> u32 {
        let declare = QueueDeclare {
            passive: true,
            ..QueueDeclare::new(queue)
        };
        let id = self.conn.queue_declare(1, &declare).unwrap();
        match self.completed(id) {
            Completion::QueueDeclared { message_count, .. } => message_count,
            other => panic!("{other:?}"),
        }
    }

    /// The next reply on [`REPLIES`], within `limit`; `None` when none came.
    pub fn reply(&mut self, limit: Duration) -> Option<Delivery> {
        self.wait_within(limit, |e| match e {
            Event::Delivery(d) => Some(d.clone()),
            _ => None,
        })
    }

    fn completed(&mut self, request: nuropb_proto::amqp::SyncId) -> Completion {
        self.wait_for("a completion", |e| match e {
            Event::Completed { id: r, result, .. } if *r == request => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|f| panic!("refused: {f:?}"))
    }

    fn wait_for<T>(&mut self, what: &str, f: impl FnMut(&Event) -> Option<T>) -> T {
        self.wait_within(Duration::from_secs(10), f)
            .unwrap_or_else(|| panic!("no {what} within 10 s: {:?}", self.events))
    }

    fn wait_within<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((i, t)) = self
                .events
                .iter()
                .enumerate()
                .find_map(|(i, e)| f(e).map(|t| (i, t)))
            {
                self.events.remove(i);
                return Some(t);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.turn();
        }
    }

    /// Reads what came, hands it to the connection, writes what it has to say.
    fn turn(&mut self) {
        match self.sock.read(&mut self.buf) {
            Ok(0) => self.conn.handle_eof(Instant::now()),
            Ok(n) => self.conn.handle_input(&self.buf[..n], Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("socket error: {e}"),
        }
        if self
            .conn
            .poll_timeout()
            .is_some_and(|t| t <= Instant::now())
        {
            self.conn.handle_timeout(Instant::now());
        }
        while let Some(e) = self.conn.poll_event() {
            assert!(
                !matches!(e, Event::Closed { .. }),
                "the broker closed the raw client: {e:?}"
            );
            self.events.push_back(e);
        }
        let mut out = Vec::new();
        if self.conn.poll_transmit(&mut out) > 0 {
            self.sock.write_all(&out).unwrap();
        }
    }
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A NuroPb request's property list, written by hand: the five headers of a request with `extra`
/// (raw entries) after them, `correlation_id`, reply-to [`REPLIES`], `app_id`, and `flags` set
/// besides.
pub fn request_properties(
    extra: &[u8],
    correlation_id: &[u8],
    app_id: &[u8],
    flags: u16,
) -> Vec<u8> {
    use nuropb_proto::amqp::properties::flag;
    let mut table = Vec::new();
    for (key, value) in [
        ("nuropb_protocol", "0.1.1"),
        ("nuropb_version", "0.1.8"),
        ("nuropb_type", "request"),
        ("trace_id", "trace-raw"),
        ("encrypted", ""),
    ] {
        short(&mut table, key.as_bytes());
        table.push(b'S');
        table.extend_from_slice(&(value.len() as u32).to_be_bytes());
        table.extend_from_slice(value.as_bytes());
    }
    table.extend_from_slice(extra);
    let mut bytes = (flag::CONTENT_TYPE
        | flag::HEADERS
        | flag::CORRELATION_ID
        | flag::REPLY_TO
        | flag::APP_ID
        | flags)
        .to_be_bytes()
        .to_vec();
    short(&mut bytes, b"application/json");
    bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&table);
    short(&mut bytes, correlation_id);
    short(&mut bytes, REPLIES.as_bytes());
    short(&mut bytes, app_id);
    bytes
}

/// `{"k": {"k": … }}` as a header entry, `levels` tables deep.
pub fn nested_entry(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..levels {
        let mut t = vec![1, b'k', b'F'];
        t.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        t.extend_from_slice(&inner);
        inner = t;
    }
    inner
}
