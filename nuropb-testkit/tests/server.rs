//! The broker over TCP: real sockets, several connections, a forced close reaching the client,
//! a dead socket requeueing its messages, and shutdown.

use amq_protocol::protocol::{AMQPClass, basic, channel, connection, queue};
use amq_protocol::types::{FieldTable, LongString};
use nuropb_proto::amqp::Properties;
use nuropb_proto::amqp::frame::{Frame, FrameReader, PROTOCOL_HEADER, write_content, write_method};
use nuropb_testkit::server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking client on the frame layer.
struct Tcp {
    stream: TcpStream,
    reader: FrameReader,
    frames: std::collections::VecDeque<Frame>,
}

impl Tcp {
    fn connect(addr: SocketAddr, vhost: &str) -> Tcp {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Tcp {
            stream,
            reader: FrameReader::new(1 << 20),
            frames: Default::default(),
        };
        c.stream.write_all(&PROTOCOL_HEADER).unwrap();
        assert!(matches!(
            c.method(),
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))
        ));
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        );
        assert!(matches!(
            c.method(),
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
        ));
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 10,
                frame_max: 131_072,
                heartbeat: 0,
            })),
        );
        c.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        );
        assert!(matches!(
            c.method(),
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
        ));
        c.send(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        assert!(matches!(
            c.method(),
            (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)))
        ));
        c
    }

    fn send(&mut self, ch: u16, m: AMQPClass) {
        let mut bytes = Vec::new();
        write_method(&mut bytes, ch, &m);
        self.stream.write_all(&bytes).unwrap();
    }

    fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            let mut buf = [0u8; 65536];
            let n = self.stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            let mut frames = Vec::new();
            self.reader.read(&buf[..n], &mut frames).unwrap();
            self.frames.extend(frames);
        }
    }

    fn method(&mut self) -> (u16, AMQPClass) {
        match self.frame() {
            Some(Frame::Method(ch, m)) => (ch, m),
            other => panic!("expected a method, got {other:?}"),
        }
    }
}

fn declare(q: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: q.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

fn consume(q: &str, no_ack: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: q.into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

#[test]
fn messages_cross_real_sockets_and_forced_closes_reach_the_client() {
    let server = server::spawn("127.0.0.1:0").unwrap();
    assert!(server.addr.ip().is_loopback());
    let mut consumer = Tcp::connect(server.addr, "tcp-test");
    consumer.send(1, declare("work"));
    consumer.method();
    consumer.send(1, consume("work", false));
    let (_, ok) = consumer.method();
    assert!(matches!(
        ok,
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))
    ));

    let mut publisher = Tcp::connect(server.addr, "tcp-test");
    let mut bytes = Vec::new();
    for i in 0..100u32 {
        write_method(
            &mut bytes,
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "work".into(),
                mandatory: false,
                immediate: false,
            })),
        );
        let body = vec![b'x'; 1000 + i as usize * 100];
        write_content(&mut bytes, 1, 60, &Properties::default(), &body, 131_072);
    }
    publisher.stream.write_all(&bytes).unwrap();
    for i in 0..100u64 {
        let (_, m) = consumer.method();
        let AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) = m else {
            panic!("{m:?}");
        };
        assert_eq!(d.delivery_tag, i + 1);
        let Some(Frame::Header(_, h)) = consumer.frame() else {
            panic!("header")
        };
        assert_eq!(h.body_size, 1000 + i * 100);
        let mut got = 0;
        while got < h.body_size {
            let Some(Frame::Body(_, b)) = consumer.frame() else {
                panic!("body")
            };
            got += b.len() as u64;
        }
    }
    let depth = server.with_broker(|b| b.queue("tcp-test", "work").unwrap());
    assert_eq!(
        (depth.messages_ready, depth.messages_unacknowledged),
        (0, 100)
    );

    // The consumer's socket dies: its 100 messages go back to the queue.
    drop(consumer);
    let mut waited = 0;
    while server.with_broker(|b| b.queue("tcp-test", "work").unwrap().messages_ready) != 100 {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
        assert!(waited < 500, "messages were not requeued");
    }

    let conns = server.with_broker(|b| b.connections());
    assert_eq!(conns.len(), 1);
    let forced = server.with_broker(|b| {
        b.force_close(
            conns[0],
            320,
            "CONNECTION_FORCED - Closed via management plugin",
        )
    });
    assert!(forced);
    let (ch, m) = publisher.method();
    assert_eq!(ch, 0);
    let AMQPClass::Connection(connection::AMQPMethod::Close(close)) = m else {
        panic!("{m:?}");
    };
    assert_eq!(
        (close.reply_code, close.reply_text.as_str()),
        (320, "CONNECTION_FORCED - Closed via management plugin")
    );
    publisher.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    );
    assert_eq!(publisher.frame(), None, "the broker closes the socket");
    assert!(server.amqp_url("tcp-test").ends_with("/tcp-test"));
    server.shutdown();
}

#[test]
fn shutdown_closes_live_connections() {
    let server = server::spawn("127.0.0.1:0").unwrap();
    let mut c = Tcp::connect(server.addr, "/");
    server.shutdown();
    assert_eq!(c.frame(), None);
}
