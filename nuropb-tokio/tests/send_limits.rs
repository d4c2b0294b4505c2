//! A publisher faster than its connection: the broker stops taking what a client sends (a proxy
//! stops reading, as RabbitMQ does when it blocks a publishing connection), the client's writes
//! back up, and past its send limits `publish_event` is refused with a clear error instead of
//! queueing without end. Once the way is free again everything accepted arrives, none lost, and
//! publishing works again. The same while the connection is down.

mod support;

use nuropb_tokio::{ConnectionSettings, ConnectionState, ErrorKind, SendLimits, Service};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::proxy::Proxy;

/// A service counting the events on `pattern`, served on `settings`: its handle and the count.
async fn counting_sink(
    settings: &ConnectionSettings,
    pattern: &str,
) -> (nuropb_tokio::Client, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let service = Service::new("sink")
        .subscribe(pattern)
        .on_event(move |_event, _ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
    let served = support::serve(settings, service).await;
    (served, seen)
}

/// Waits until `seen` reaches `n`, at most `limit`.
async fn arrive(seen: &AtomicU64, n: u64, limit: Duration) {
    let arrived = async {
        while seen.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(limit, arrived)
        .await
        .unwrap_or_else(|_| panic!("{} of {n} events arrived", seen.load(Ordering::SeqCst)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_faster_than_its_connection_is_refused_past_its_limits_and_loses_nothing() {
    let settings = support::mesh("send-limits").await;
    let (served, seen) = counting_sink(&settings, "flood.#").await;
    let proxy = Proxy::start(&settings.host, settings.port()).await;
    let limits = SendLimits {
        messages: 5_000,
        bytes: 1 << 20,
    };
    let client = nuropb_tokio::connector(proxy.in_front(&settings))
        .send_limits(limits)
        .client()
        .await
        .expect("the client connects through the proxy");

    proxy.pause(true);
    let event = json!({"payload": "x".repeat(200)});
    let mut accepted = 0u64;
    let refused = loop {
        match client.publish_event("flood.one", &event, json!({}), None) {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        if accepted.is_multiple_of(500) {
            // Let the driver write: the socket, not the queue, must fill first.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            accepted < 1_000_000,
            "never refused: the backlog is not bounded"
        );
    };
    assert_eq!(refused.kind, ErrorKind::Transport, "{refused}");
    // Refused at one limit or the other (the driver may have written a little since).
    assert!(
        refused.description.starts_with("not sent: ")
            && (refused.description.contains("5000 messages")
                || refused.description.contains("bytes wait to be written")),
        "{refused}"
    );
    let held = client.unsent().bytes;
    assert!(held < 4 * limits.bytes, "{held} bytes held");

    proxy.pause(false);
    arrive(&seen, accepted, Duration::from_secs(60)).await;
    assert_eq!(client.unsent(), nuropb_tokio::Unsent::default());
    client
        .publish_event("flood.one", &event, json!({}), None)
        .expect("accepted again once written");
    arrive(&seen, accepted + 1, Duration::from_secs(10)).await;
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_whose_connection_is_down_is_refused_past_its_limits_and_loses_nothing() {
    let settings = support::mesh("send-limits-down").await;
    let (served, seen) = counting_sink(&settings, "down.#").await;
    let proxy = Proxy::start(&settings.host, settings.port()).await;
    let client = nuropb_tokio::connector(proxy.in_front(&settings))
        .send_limits(SendLimits {
            messages: 100,
            ..SendLimits::default()
        })
        .client()
        .await
        .expect("the client connects through the proxy");

    proxy.kill();
    let down = async {
        while client.state() == ConnectionState::Ready {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), down)
        .await
        .expect("the client notices");
    let mut accepted = 0u64;
    let refused = loop {
        match client.publish_event("down.one", json!({"n": accepted}), json!({}), None) {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        // Let the driver take each into its outbox.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(accepted <= 100, "never refused while down");
    };
    assert_eq!(refused.kind, ErrorKind::Transport, "{refused}");
    assert!(refused.description.contains("100 messages"), "{refused}");
    assert_eq!(accepted, 100, "refused exactly at the limit");

    // The node is back: what was accepted goes out.
    let _back = Proxy::start_on(&settings.host, settings.port(), proxy.port).await;
    arrive(&seen, accepted, Duration::from_secs(60)).await;
    assert_eq!(client.state(), ConnectionState::Ready);
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
