//! Closing from either side, and heartbeats with virtual time.

#[path = "amqp_support/mod.rs"]
mod support;

use std::time::Duration;

use nuropb_proto::amqp::{Config, ConnectionError, Error, Event, Frame, Properties, Publish};
use support::Peer;
use support::frames;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_clean_close_waits_for_close_ok_and_ends_all_channels() {
    let mut peer = Peer::connected(Config::default());
    let a = peer.open_channel();
    let b = peer.open_channel();
    peer.conn.close(200, "Normal shutdown", peer.now).unwrap();
    assert_eq!(
        peer.expect_method(0),
        frames::close(200, "Normal shutdown", 0, 0)
    );
    assert_eq!(peer.conn.close(200, "again", peer.now), Err(Error::Closed));
    assert_eq!(peer.conn.open_channel(), Err(Error::Closed));
    assert_eq!(
        peer.conn
            .basic_publish(a, &Publish::new("", "q"), &Properties::default(), b""),
        Err(Error::Closed)
    );
    // The broker still delivers something before it sees the close: discarded.
    peer.send_content(
        a,
        frames::deliver("t", 1, false, "", "q"),
        &Properties::default(),
        b"x",
    );
    peer.expect_no_event();
    assert!(!peer.conn.is_closed());
    peer.send(0, frames::close_ok());
    let events = peer.events();
    assert_eq!(events.len(), 3);
    assert!(
        matches!(events[0], Event::ChannelClosed { channel, reply_code: 200, by_peer: false, .. } if channel == a)
    );
    assert!(
        matches!(events[1], Event::ChannelClosed { channel, by_peer: false, .. } if channel == b)
    );
    assert_eq!(
        events[2],
        Event::Closed {
            reply_code: 200,
            reply_text: "Normal shutdown".into(),
            by_peer: false,
            error: None
        }
    );
    assert!(peer.conn.is_closed());
    assert_eq!(peer.conn.poll_timeout(), None);
    // Input after the end is ignored.
    peer.send(0, frames::close_ok());
    peer.expect_no_event();
    peer.expect_silence();
}

#[test]
fn a_broker_close_is_answered_and_reported_with_its_code() {
    let mut peer = Peer::connected(Config::default());
    peer.open_channel();
    peer.send(
        0,
        frames::close(320, "CONNECTION_FORCED - research forced close", 0, 0),
    );
    assert_eq!(peer.expect_method(0), frames::close_ok());
    let events = peer.events();
    assert!(matches!(
        events[0],
        Event::ChannelClosed {
            reply_code: 320,
            by_peer: true,
            ..
        }
    ));
    assert_eq!(
        events[1],
        Event::Closed {
            reply_code: 320,
            reply_text: "CONNECTION_FORCED - research forced close".into(),
            by_peer: true,
            error: Some(ConnectionError::ClosedByPeer {
                reply_code: 320,
                reply_text: "CONNECTION_FORCED - research forced close".into()
            })
        }
    );
}

#[test]
fn closes_that_cross_end_the_connection_once() {
    let mut peer = Peer::connected(Config::default());
    peer.conn.close(200, "bye", peer.now).unwrap();
    peer.expect_method(0);
    peer.send(0, frames::close(320, "CONNECTION_FORCED", 0, 0));
    assert_eq!(peer.expect_method(0), frames::close_ok());
    assert!(matches!(
        peer.events()[..],
        [Event::Closed {
            reply_code: 200,
            error: None,
            ..
        }]
    ));
}

#[test]
fn a_close_without_close_ok_ends_after_the_close_timeout() {
    let mut peer = Peer::connected(Config {
        close_timeout: secs(2),
        ..Config::default()
    });
    peer.conn.close(200, "bye", peer.now).unwrap();
    peer.expect_method(0);
    assert_eq!(peer.conn.poll_timeout(), Some(peer.now + secs(2)));
    peer.advance(secs(1));
    peer.expect_no_event();
    peer.advance(secs(1));
    assert!(matches!(peer.event(), Event::Closed { error: None, .. }));
}

#[test]
fn an_eof_while_open_is_a_socket_error() {
    let mut peer = Peer::connected(Config::default());
    peer.conn.handle_eof(peer.now);
    assert!(matches!(
        peer.event(),
        Event::Closed {
            by_peer: true,
            error: Some(ConnectionError::SocketClosed),
            ..
        }
    ));
    peer.conn.handle_eof(peer.now);
    peer.expect_no_event();
}

#[test]
fn heartbeats_go_out_after_an_idle_interval() {
    let mut peer = Peer::connected_with(Config::default(), 2047, 131_072, 10);
    let t0 = peer.now;
    assert_eq!(peer.conn.poll_timeout(), Some(t0 + secs(10)));
    peer.advance(secs(9));
    peer.expect_silence();
    // The broker keeps talking, so it is alive; we have been silent for an interval.
    peer.send_bytes(&[8, 0, 0, 0, 0, 0, 0, 0xCE]);
    peer.advance(secs(1));
    assert_eq!(peer.expect(), Frame::Heartbeat(0));
    peer.expect_silence();
    assert_eq!(peer.conn.poll_timeout(), Some(t0 + secs(20)));
    // Sending something else postpones the next heartbeat.
    let ch = peer.open_channel_at(secs(5));
    assert!(ch > 0);
    assert_eq!(peer.conn.poll_timeout(), Some(t0 + secs(25)));
    peer.advance(secs(9));
    peer.expect_silence();
    peer.advance(secs(1));
    assert_eq!(peer.expect(), Frame::Heartbeat(0));
    peer.expect_no_event();
}

#[test]
fn a_silent_broker_is_dead_after_two_intervals() {
    let mut peer = Peer::connected_with(Config::default(), 2047, 131_072, 10);
    peer.advance(secs(10));
    assert_eq!(peer.expect(), Frame::Heartbeat(0));
    peer.advance(secs(9));
    peer.expect_no_event();
    // Any input, even half a frame, shows it is alive.
    peer.send_bytes(&[8, 0, 0]);
    let alive_at = peer.now;
    peer.advance(secs(10));
    assert_eq!(peer.expect(), Frame::Heartbeat(0));
    peer.advance(secs(9));
    peer.expect_silence();
    peer.expect_no_event();
    // Two intervals after the last input.
    assert_eq!(peer.conn.poll_timeout(), Some(alive_at + secs(20)));
    peer.advance(secs(1));
    assert!(matches!(
        peer.event(),
        Event::Closed {
            by_peer: true,
            error: Some(ConnectionError::HeartbeatTimeout),
            ..
        }
    ));
    assert_eq!(peer.conn.poll_timeout(), None);
}

#[test]
fn no_heartbeats_when_both_sides_want_none() {
    let config = Config {
        heartbeat: 0,
        ..Config::default()
    };
    let mut peer = Peer::connected_with(config, 2047, 131_072, 0);
    assert_eq!(peer.conn.poll_timeout(), None);
    peer.advance(secs(3600));
    peer.expect_silence();
    peer.expect_no_event();
}

#[test]
fn time_never_goes_backwards() {
    let mut peer = Peer::connected_with(Config::default(), 2047, 131_072, 10);
    let t0 = peer.now;
    peer.conn.handle_timeout(t0 + secs(10));
    assert_eq!(peer.expect(), Frame::Heartbeat(0));
    // An earlier time is ignored: no second heartbeat, no earlier deadline.
    peer.conn.handle_timeout(t0);
    peer.expect_silence();
    assert_eq!(peer.conn.poll_timeout(), Some(t0 + secs(20)));
}

trait OpenAt {
    fn open_channel_at(&mut self, after: Duration) -> u16;
}

impl OpenAt for Peer {
    /// Opens a channel `after` from now (its frames count as sent then).
    fn open_channel_at(&mut self, after: Duration) -> u16 {
        self.now += after;
        self.conn.handle_timeout(self.now);
        self.open_channel()
    }
}
