//! Channels and synchronous methods against a scripted broker: open and close from both sides,
//! declares, binds, purges, deletes, qos, and how pending requests fail when a channel closes.

#[path = "amqp_support/mod.rs"]
mod support;

use nuropb_proto::amqp::{
    AMQPClass, AMQPValue, Completion, Config, Error, Event, ExchangeDeclare, ExchangeDelete,
    FieldTable, QueueBind, QueueDeclare, QueueDelete, QueuePurge, QueueUnbind, SyncFailed,
};
use support::Peer;
use support::frames::{self, basic, channel, exchange, queue};

#[test]
fn channels_open_in_order_and_numbers_are_reused_after_close() {
    let mut peer = Peer::connected(Config::default());
    let a = peer.open_channel();
    let b = peer.open_channel();
    assert_eq!((a, b), (1, 2));
    assert!(peer.conn.channel_is_open(1));

    peer.conn.close_channel(1, 200, "Normal shutdown").unwrap();
    assert_eq!(
        peer.expect_method(1),
        frames::channel_close(200, "Normal shutdown", 0, 0)
    );
    assert!(!peer.conn.channel_is_open(1));
    assert_eq!(
        peer.conn.close_channel(1, 200, ""),
        Err(Error::ChannelClosing(1))
    );
    assert_eq!(
        peer.conn.basic_qos(1, 1, false),
        Err(Error::ChannelClosing(1))
    );
    peer.expect_no_event();
    peer.send(1, frames::channel_close_ok());
    assert_eq!(
        peer.event(),
        Event::ChannelClosed {
            channel: 1,
            reply_code: 200,
            reply_text: "Normal shutdown".into(),
            class_id: 0,
            method_id: 0,
            by_peer: false
        }
    );
    assert_eq!(
        peer.conn.basic_qos(1, 1, false),
        Err(Error::ChannelNotOpen(1))
    );
    assert_eq!(peer.open_channel(), 1, "the lowest free number again");
}

#[test]
fn channel_max_bounds_the_channels() {
    let mut peer = Peer::connected_with(Config::default(), 2, 131_072, 60);
    peer.open_channel();
    peer.open_channel();
    assert_eq!(peer.conn.open_channel(), Err(Error::NoFreeChannel(2)));
    peer.expect_silence();
}

#[test]
fn commands_may_follow_channel_open_before_open_ok() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.conn.open_channel().unwrap();
    let qos = peer.conn.basic_qos(ch, 10, false).unwrap();
    assert_eq!(peer.expect_method(ch), frames::channel_open());
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 10,
            global: false
        }))
    );
    peer.send(ch, frames::channel_open_ok());
    peer.send(ch, frames::qos_ok());
    assert_eq!(
        peer.events(),
        [
            Event::ChannelOpened { channel: ch },
            Event::Completed {
                channel: ch,
                id: qos,
                result: Ok(Completion::QosSet)
            }
        ]
    );
}

#[test]
fn declares_binds_and_deletes_complete_with_their_results() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();

    // exchange.declare as configure_nuropb_rmq sends it
    let declare = ExchangeDeclare {
        durable: true,
        ..ExchangeDeclare::new("nuropb-rpc-exchange", "direct")
    };
    let r1 = peer.conn.exchange_declare(ch, &declare).unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "nuropb-rpc-exchange".into(),
            kind: "direct".into(),
            passive: false,
            durable: true,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        }))
    );

    // a server-named exclusive queue
    let r2 = peer
        .conn
        .queue_declare(
            ch,
            &QueueDeclare {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclare::new("")
            },
        )
        .unwrap();
    assert!(matches!(
        peer.expect_method(ch),
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare { queue, exclusive: true, auto_delete: true, .. })) if queue.as_str().is_empty()
    ));

    // the service queue with its dead-letter argument
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("nuropb-dl-exchange".into()),
    );
    let r3 = peer
        .conn
        .queue_declare(
            ch,
            &QueueDeclare {
                durable: true,
                arguments: args.clone(),
                ..QueueDeclare::new("nuropb-research-svc-sq")
            },
        )
        .unwrap();
    assert!(matches!(
        peer.expect_method(ch),
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare { durable: true, arguments, .. })) if arguments == args
    ));

    // a no_wait bind, as Python NuroPb sends them: no completion
    let bind = QueueBind {
        no_wait: true,
        ..QueueBind::new(
            "nuropb-research-svc-sq",
            "nuropb-rpc-exchange",
            "research-svc",
        )
    };
    peer.conn.queue_bind(ch, &bind).unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "nuropb-research-svc-sq".into(),
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "research-svc".into(),
            nowait: true,
            arguments: FieldTable::default(),
        }))
    );
    let r4 = peer
        .conn
        .queue_bind(ch, &QueueBind::new("q", "x", "k"))
        .unwrap();
    peer.expect_method(ch);
    let r5 = peer
        .conn
        .queue_unbind(ch, &QueueUnbind::new("q", "x", "k"))
        .unwrap();
    assert!(matches!(
        peer.expect_method(ch),
        AMQPClass::Queue(queue::AMQPMethod::Unbind(_))
    ));
    let r6 = peer.conn.queue_purge(ch, &QueuePurge::new("q")).unwrap();
    peer.expect_method(ch);
    let r7 = peer
        .conn
        .queue_delete(
            ch,
            &QueueDelete {
                if_empty: true,
                ..QueueDelete::new("q")
            },
        )
        .unwrap();
    assert!(matches!(
        peer.expect_method(ch),
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            if_empty: true,
            if_unused: false,
            ..
        }))
    ));
    let r8 = peer
        .conn
        .exchange_delete(ch, &ExchangeDelete::new("x"))
        .unwrap();
    peer.expect_method(ch);
    peer.expect_silence();
    peer.expect_no_event();

    peer.send(
        ch,
        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
    );
    peer.send(
        ch,
        frames::queue_declare_ok("amq.gen-JzTY20BRgKO-HjmUJj0wLg", 0, 0),
    );
    peer.send(ch, frames::queue_declare_ok("nuropb-research-svc-sq", 3, 1));
    peer.send(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
    );
    peer.send(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
    );
    peer.send(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
            message_count: 5,
        })),
    );
    peer.send(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
            message_count: 0,
        })),
    );
    peer.send(
        ch,
        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
    );
    let done = |request, result| Event::Completed {
        channel: ch,
        id: request,
        result: Ok(result),
    };
    assert_eq!(
        peer.events(),
        [
            done(r1, Completion::ExchangeDeclared),
            done(
                r2,
                Completion::QueueDeclared {
                    queue: "amq.gen-JzTY20BRgKO-HjmUJj0wLg".into(),
                    message_count: 0,
                    consumer_count: 0
                }
            ),
            done(
                r3,
                Completion::QueueDeclared {
                    queue: "nuropb-research-svc-sq".into(),
                    message_count: 3,
                    consumer_count: 1
                }
            ),
            done(r4, Completion::QueueBound),
            done(r5, Completion::QueueUnbound),
            done(r6, Completion::QueuePurged { message_count: 5 }),
            done(r7, Completion::QueueDeleted { message_count: 0 }),
            done(r8, Completion::ExchangeDeleted),
        ]
    );
    let ids: Vec<u64> = [r1, r2, r3, r4, r5, r6, r7, r8]
        .iter()
        .map(|r| r.get())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
}

#[test]
fn a_broker_channel_close_fails_pending_requests_and_is_answered() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let other = peer.open_channel();
    let bind = peer
        .conn
        .queue_bind(ch, &QueueBind::new("q", "no-such-exchange", "k"))
        .unwrap();
    let qos = peer.conn.basic_qos(ch, 1, false).unwrap();
    peer.expect_method(ch);
    peer.expect_method(ch);
    peer.send(
        ch,
        frames::channel_close(
            404,
            "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'",
            50,
            20,
        ),
    );
    assert_eq!(peer.expect_method(ch), frames::channel_close_ok());
    let failed = |request| Event::Completed {
        channel: ch,
        id: request,
        result: Err(SyncFailed {
            reply_code: 404,
            reply_text: "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'".into(),
        }),
    };
    assert_eq!(
        peer.events(),
        [
            failed(bind),
            failed(qos),
            Event::ChannelClosed {
                channel: ch,
                reply_code: 404,
                reply_text: "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'".into(),
                class_id: 50,
                method_id: 20,
                by_peer: true
            }
        ]
    );
    assert_eq!(
        peer.conn.basic_qos(ch, 1, false),
        Err(Error::ChannelNotOpen(ch))
    );
    // The other channel and the connection carry on.
    assert!(peer.conn.is_open());
    let r = peer.conn.basic_qos(other, 1, false).unwrap();
    peer.expect_method(other);
    peer.send(other, frames::qos_ok());
    assert!(
        matches!(peer.event(), Event::Completed { id: request, result: Ok(Completion::QosSet), .. } if request == r)
    );
}

#[test]
fn while_closing_a_channel_everything_but_close_ok_is_discarded() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let qos = peer.conn.basic_qos(ch, 1, false).unwrap();
    peer.expect_method(ch);
    peer.conn.close_channel(ch, 200, "bye").unwrap();
    peer.expect_method(ch);
    // The broker answers the qos and delivers a message before it sees our close.
    peer.send(ch, frames::qos_ok());
    peer.send_content(
        ch,
        frames::deliver("ctag", 1, false, "", "q"),
        &Default::default(),
        b"dropped",
    );
    peer.expect_no_event();
    peer.send(ch, frames::channel_close_ok());
    assert_eq!(
        peer.events(),
        [
            Event::Completed {
                channel: ch,
                id: qos,
                result: Err(SyncFailed {
                    reply_code: 200,
                    reply_text: "bye".into()
                })
            },
            Event::ChannelClosed {
                channel: ch,
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
                by_peer: false
            }
        ]
    );
    peer.expect_silence();
}

#[test]
fn closes_that_cross_are_answered_and_reported_once() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    peer.conn.close_channel(ch, 200, "bye").unwrap();
    peer.expect_method(ch);
    peer.send(
        ch,
        frames::channel_close(406, "PRECONDITION_FAILED - unknown delivery tag 1", 60, 80),
    );
    assert_eq!(peer.expect_method(ch), frames::channel_close_ok());
    assert_eq!(
        peer.events(),
        [Event::ChannelClosed {
            channel: ch,
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED - unknown delivery tag 1".into(),
            class_id: 60,
            method_id: 80,
            by_peer: true
        }]
    );
    // The number stays taken until the broker's close-ok for our close, which then frees it
    // silently.
    assert!(!peer.conn.channel_is_open(ch));
    assert_eq!(
        peer.conn.basic_qos(ch, 1, false),
        Err(Error::ChannelNotOpen(ch))
    );
    assert_eq!(peer.conn.open_channel(), Ok(ch + 1));
    peer.expect_method(ch + 1);
    peer.send(ch, frames::channel_close_ok());
    peer.expect_no_event();
    peer.expect_silence();
    assert_eq!(peer.conn.open_channel(), Ok(ch));
    // A second close-ok now is for a channel that is not open: a channel error.
    peer.expect_method(ch);
    peer.send(ch + 5, frames::channel_close_ok());
    peer.expect_violation(504);
}

#[test]
fn flow_control_is_acknowledged_and_reported() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    peer.send(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
    );
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
            active: false
        }))
    );
    assert_eq!(
        peer.event(),
        Event::Flow {
            channel: ch,
            active: false
        }
    );
}

#[test]
fn long_names_and_no_wait_without_names_are_refused_before_sending() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let long = "x".repeat(256);
    assert_eq!(
        peer.conn
            .queue_declare(ch, &QueueDeclare::new(long.as_str())),
        Err(Error::ShortStringTooLong {
            field: "queue",
            len: 256
        })
    );
    assert_eq!(
        peer.conn.basic_cancel(ch, &long, false),
        Err(Error::ShortStringTooLong {
            field: "consumer tag",
            len: 256
        })
    );
    assert_eq!(
        peer.conn.close_channel(ch, 200, &long),
        Err(Error::ShortStringTooLong {
            field: "reply text",
            len: 256
        })
    );
    assert_eq!(
        peer.conn.queue_declare(
            ch,
            &QueueDeclare {
                no_wait: true,
                ..QueueDeclare::new("")
            }
        ),
        Err(Error::NoWaitNeedsName("queue"))
    );
    assert_eq!(
        peer.conn.basic_qos(9, 1, false),
        Err(Error::ChannelNotOpen(9))
    );
    peer.expect_silence();
}
