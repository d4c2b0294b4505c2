//! Against the machine's RabbitMQ (127.0.0.1:5672, guest/guest, vhost `/`; the environment
//! variable `NUROPB_TEST_AMQP_URL=amqp://user:pass@host:port/vhost` may point elsewhere on
//! loopback). The state machine is driven by a plain blocking `TcpStream` loop written here.
//!
//! These tests FAIL when no broker answers: they are the proof that the client speaks to a real
//! RabbitMQ.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use nuropb_proto::amqp::{
    AMQPValue, Completion, Config, Confirm, Connection, ConnectionError, Consume, Delivery, Event,
    Headers, Properties, Publish, QueueDeclare, Returned, SyncFailed, reply_code,
};

/// Where the broker is: (address, user, password, vhost).
fn broker() -> (SocketAddr, String, String, String) {
    let url = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let rest = url
        .strip_prefix("amqp://")
        .unwrap_or_else(|| panic!("NUROPB_TEST_AMQP_URL must start with amqp://: {url}"));
    let (auth, rest) = rest.split_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let vhost = match vhost {
        "" | "%2f" | "%2F" => "/".to_owned(),
        v => v.replace("%2f", "/").replace("%2F", "/"),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    };
    let addr = hostport
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {hostport}: {e}"))
        .find(|a| a.ip().is_loopback())
        .unwrap_or_else(|| panic!("{hostport} is not a loopback address; tests only use loopback"));
    assert!(matches!(addr.ip(), IpAddr::V4(_) | IpAddr::V6(_)) && addr.ip().is_loopback());
    (addr, user.to_owned(), pass.to_owned(), vhost)
}

fn config() -> Config {
    let (_, user, pass, vhost) = broker();
    Config::new(user, pass, vhost)
        .nuropb_identity(
            "nuropb-amqp-live-test",
            "liveinstance0000000000000000001",
            true,
        )
        .connection_name("nuropb-amqp live test")
}

/// A blocking driver: read with a short timeout, hand bytes and time to the connection, write what
/// it wants written, keep the events.
struct Driver {
    conn: Connection,
    sock: TcpStream,
    events: VecDeque<Event>,
    buf: Vec<u8>,
    out: Vec<u8>,
    eof: bool,
}

const WAIT: Duration = Duration::from_secs(10);

impl Driver {
    fn connect(config: Config) -> Driver {
        let (addr, ..) = broker();
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| {
            panic!("no AMQP broker answers at {addr} ({e}); these tests need RabbitMQ running")
        });
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let mut driver = Driver {
            conn: Connection::new(config, Instant::now()).unwrap(),
            sock,
            events: VecDeque::new(),
            buf: vec![0; 64 * 1024],
            out: Vec::new(),
            eof: false,
        };
        driver.flush();
        driver
    }

    fn flush(&mut self) {
        self.out.clear();
        if self.conn.poll_transmit(&mut self.out) > 0 {
            self.sock.write_all(&self.out).expect("write to the broker");
        }
    }

    /// One turn of the loop.
    fn turn(&mut self) {
        if !self.eof {
            match self.sock.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    self.conn.handle_eof(Instant::now());
                }
                Ok(n) => self.conn.handle_input(&self.buf[..n], Instant::now()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    self.eof = true;
                    eprintln!("socket error: {e}");
                    self.conn.handle_eof(Instant::now());
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self
            .conn
            .poll_timeout()
            .is_some_and(|t| t <= Instant::now())
        {
            self.conn.handle_timeout(Instant::now());
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push_back(e);
        }
        if !self.eof {
            self.flush();
        }
    }

    /// Runs the loop until an event matches, takes it out and returns what `f` made of it; other
    /// events stay queued in order.
    fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((i, t)) = self
                .events
                .iter()
                .enumerate()
                .find_map(|(i, e)| f(e).map(|t| (i, t)))
            {
                self.events.remove(i);
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events so far: {:?}",
                self.events
            );
            self.turn();
        }
    }

    fn completed(&mut self, request: nuropb_proto::amqp::SyncId) -> Completion {
        self.wait_for("a completion", |e| match e {
            Event::Completed { id: r, result, .. } if *r == request => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|f| panic!("request failed: {f:?}"))
    }

    fn delivery(&mut self) -> Delivery {
        self.wait_for("a delivery", |e| match e {
            Event::Delivery(d) => Some(d.clone()),
            _ => None,
        })
    }

    fn connected(&mut self) {
        self.wait_for("Connected", |e| {
            matches!(e, Event::Connected { .. }).then_some(())
        });
        assert!(self.conn.is_open());
    }

    fn open_channel(&mut self) -> u16 {
        let ch = self.conn.open_channel().unwrap();
        self.wait_for("ChannelOpened", |e| {
            matches!(e, Event::ChannelOpened { channel } if *channel == ch).then_some(())
        });
        ch
    }

    fn close(&mut self) {
        self.conn
            .close(200, "Normal shutdown", Instant::now())
            .unwrap();
        let closed = self.wait_for("Closed", |e| match e {
            Event::Closed { .. } => Some(e.clone()),
            _ => None,
        });
        assert!(
            matches!(
                closed,
                Event::Closed {
                    reply_code: 200,
                    by_peer: false,
                    error: None,
                    ..
                }
            ),
            "{closed:?}"
        );
        assert!(self.conn.is_closed());
    }
}

fn nuropb_properties(kind: &str, correlation_id: &str) -> Properties {
    let mut headers = Headers::default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    headers.insert("nuropb_protocol", s("0.1.1"));
    headers.insert("nuropb_version", s("0.1.8"));
    headers.insert("nuropb_type", s(kind));
    headers.insert("trace_id", AMQPValue::Void);
    headers.insert("encrypted", s(""));
    Properties {
        content_type: Some("application/json".into()),
        headers: Some(headers),
        correlation_id: Some(correlation_id.into()),
        reply_to: Some("".into()),
        ..Default::default()
    }
}

#[test]
fn live_publish_confirm_consume_ack_nack_reject_return_and_close() {
    let mut d = Driver::connect(config());
    d.connected();
    let ch = d.open_channel();

    // Confirm mode, then a server-named exclusive queue.
    let select = d.conn.confirm_select(ch, false).unwrap();
    assert_eq!(d.completed(select), Completion::ConfirmSelected);
    let declare = d
        .conn
        .queue_declare(
            ch,
            &QueueDeclare {
                // Not auto-delete: the queue must outlive the cancel of its consumer below.
                exclusive: true,
                ..QueueDeclare::new("")
            },
        )
        .unwrap();
    let Completion::QueueDeclared {
        queue,
        message_count: 0,
        consumer_count: 0,
    } = d.completed(declare)
    else {
        panic!("expected an empty new queue");
    };
    assert!(queue.as_str().starts_with("amq.gen-"), "{queue:?}");

    // Four publishes, each confirmed.
    let bodies: Vec<Vec<u8>> = (1..=4)
        .map(|i| format!("{{\"tag\": \"event\", \"n\": {i}}}").into_bytes())
        .collect();
    let mut seqs = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let props = nuropb_properties("event", &format!("corr{i}"));
        let seq = d
            .conn
            .basic_publish(ch, &Publish::new("", queue.as_str()), &props, body)
            .unwrap();
        seqs.push(seq.expect("confirm mode numbers publishes"));
    }
    assert_eq!(seqs, [1, 2, 3, 4]);
    for seq in 1..=4u64 {
        let outcome = d.wait_for("a confirm", |e| match e {
            Event::Confirmed {
                seq: s, outcome, ..
            } if *s == seq => Some(*outcome),
            _ => None,
        });
        assert_eq!(outcome, Confirm::Ack);
    }

    // Consume with manual acks.
    let qos = d.conn.basic_qos(ch, 10, false).unwrap();
    assert_eq!(d.completed(qos), Completion::QosSet);
    let consume = d
        .conn
        .basic_consume(ch, &Consume::new(queue.as_str()))
        .unwrap();
    let Completion::ConsumeStarted { consumer_tag } = d.completed(consume) else {
        panic!("expected consume-ok");
    };
    assert!(
        consumer_tag.as_str().starts_with("amq.ctag-"),
        "server-chosen tag"
    );
    let got: Vec<Delivery> = (0..4).map(|_| d.delivery()).collect();
    for (i, delivery) in got.iter().enumerate() {
        assert_eq!(delivery.body, bodies[i]);
        assert_eq!(delivery.consumer_tag, consumer_tag);
        assert_eq!(delivery.routing_key, queue);
        assert!(!delivery.redelivered);
        // RabbitMQ forwards the property bytes unchanged: the header order survives.
        assert_eq!(
            delivery.properties,
            nuropb_properties("event", &format!("corr{i}"))
        );
    }

    // ack the first; nack-requeue the second, which comes back redelivered; reject the third;
    // nack the fourth without requeue.
    d.conn.basic_ack(ch, got[0].delivery_tag, false).unwrap();
    d.conn
        .basic_nack(ch, got[1].delivery_tag, false, true)
        .unwrap();
    let again = d.delivery();
    assert!(
        again.redelivered,
        "the requeued message is flagged redelivered"
    );
    assert_eq!(again.body, bodies[1]);
    assert_ne!(again.delivery_tag, got[1].delivery_tag);
    d.conn.basic_ack(ch, again.delivery_tag, false).unwrap();
    d.conn.basic_reject(ch, got[2].delivery_tag, false).unwrap();
    d.conn
        .basic_nack(ch, got[3].delivery_tag, false, false)
        .unwrap();

    // Nothing is left: cancel the consumer and check with basic.get.
    let cancel = d
        .conn
        .basic_cancel(ch, consumer_tag.as_str(), false)
        .unwrap();
    assert_eq!(
        d.completed(cancel),
        Completion::ConsumeCancelled {
            consumer_tag: consumer_tag.clone()
        }
    );
    let get = d.conn.basic_get(ch, queue.as_str(), false).unwrap();
    assert_eq!(d.completed(get), Completion::GetEmpty);

    // An unroutable mandatory message comes back, then is confirmed.
    let nowhere = format!("nuropb-amqp-no-such-queue-{}", std::process::id());
    let props = nuropb_properties("request", "unroutable");
    let seq = d
        .conn
        .basic_publish(
            ch,
            &Publish {
                mandatory: true,
                ..Publish::new("", &nowhere)
            },
            &props,
            b"{}",
        )
        .unwrap()
        .unwrap();
    let returned = d.wait_for("a return", |e| match e {
        Event::Returned(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        returned,
        Returned {
            channel: ch,
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "".into(),
            routing_key: nowhere.as_str().into(),
            properties: props,
            body: b"{}".to_vec(),
        }
    );
    let outcome = d.wait_for("the return's confirm", |e| match e {
        Event::Confirmed {
            seq: s, outcome, ..
        } if *s == seq => Some(*outcome),
        _ => None,
    });
    assert_eq!(outcome, Confirm::Ack);

    // A large message crosses frame_max (131072) in several body frames both ways.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let consume = d
        .conn
        .basic_consume(
            ch,
            &Consume {
                no_ack: true,
                ..Consume::new(queue.as_str())
            },
        )
        .unwrap();
    d.completed(consume);
    d.conn
        .basic_publish(
            ch,
            &Publish::new("", queue.as_str()),
            &Properties::default(),
            &big,
        )
        .unwrap();
    let delivery = d.delivery();
    assert_eq!(delivery.body, big);

    d.close();
}

#[test]
fn live_channel_errors_are_reported_with_the_broker_code() {
    let mut d = Driver::connect(config());
    d.connected();
    let ch = d.open_channel();
    let missing = format!("nuropb-amqp-missing-{}", std::process::id());
    let declare = d
        .conn
        .queue_declare(
            ch,
            &QueueDeclare {
                passive: true,
                ..QueueDeclare::new(missing.as_str())
            },
        )
        .unwrap();
    let failed = d.wait_for("the failed declare", |e| match e {
        Event::Completed {
            id: request,
            result,
            ..
        } if *request == declare => Some(result.clone()),
        _ => None,
    });
    assert!(matches!(
        failed,
        Err(SyncFailed {
            reply_code: reply_code::NOT_FOUND,
            ..
        })
    ));
    let closed = d.wait_for("ChannelClosed", |e| match e {
        Event::ChannelClosed { .. } => Some(e.clone()),
        _ => None,
    });
    assert!(matches!(
        closed,
        Event::ChannelClosed {
            reply_code: 404,
            class_id: 50,
            method_id: 10,
            by_peer: true,
            ..
        }
    ));
    // The connection survives; a new channel works.
    let ch = d.open_channel();
    // A broker-side consumer cancel: delete the queue under its consumer.
    let declare = d
        .conn
        .queue_declare(
            ch,
            &QueueDeclare {
                exclusive: true,
                ..QueueDeclare::new("")
            },
        )
        .unwrap();
    let Completion::QueueDeclared { queue, .. } = d.completed(declare) else {
        panic!()
    };
    let consume = d
        .conn
        .basic_consume(ch, &Consume::new(queue.as_str()))
        .unwrap();
    let Completion::ConsumeStarted { consumer_tag } = d.completed(consume) else {
        panic!()
    };
    let other = d.open_channel();
    let delete = d
        .conn
        .queue_delete(other, &nuropb_proto::amqp::QueueDelete::new(queue.as_str()))
        .unwrap();
    d.completed(delete);
    let cancelled = d.wait_for("ConsumerCancelled", |e| match e {
        Event::ConsumerCancelled { consumer_tag, .. } => Some(consumer_tag.clone()),
        _ => None,
    });
    assert_eq!(cancelled, consumer_tag);
    d.close();
}

#[test]
fn live_wrong_password_is_an_authentication_error() {
    let config = Config {
        password: "definitely-not-the-password".into(),
        ..config()
    };
    let mut d = Driver::connect(config);
    let error = d.wait_for("Closed", |e| match e {
        Event::Closed { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        matches!(error, Some(ConnectionError::AuthenticationFailed { .. })),
        "{error:?}"
    );
}

#[test]
fn live_unknown_vhost_is_a_vhost_error() {
    let config = Config {
        vhost: format!("nuropb-amqp-no-such-vhost-{}", std::process::id()),
        ..config()
    };
    let mut d = Driver::connect(config);
    let error = d.wait_for("Closed", |e| match e {
        Event::Closed { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(
        matches!(error, Some(ConnectionError::VhostNotAllowed { .. })),
        "{error:?}"
    );
}
