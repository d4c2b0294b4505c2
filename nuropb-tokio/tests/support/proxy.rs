//! A TCP proxy in front of the broker that can cut the way back: what the broker sends on the
//! connections open at the cut is dropped, and when their clients give up, the broker is not
//! told — it keeps a half-open connection until its own heartbeat timer gives up on it, as when
//! a link, a NAT or a firewall fails silently. Connections made after the cut pass normally.
//!
//! It can also pause the way there: it stops reading what clients send, so that their writes
//! back up as they do when the broker is slower than a publisher, or has blocked it. And it can
//! die, as a cluster node does: its connections reset, new ones refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; it runs until the test's runtime ends.
pub struct Proxy {
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    /// The cut flag of each connection made so far.
    open: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    /// While set, nothing is read from the clients.
    paused: Arc<AtomicBool>,
    /// Its tasks: the listener's and each connection's two.
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `host:port`.
    pub async fn start(host: &str, port: u16) -> Proxy {
        Proxy::start_on(host, port, 0).await
    }

    /// Listens on port `listen` of 127.0.0.1 (a free one when 0) and forwards to `host:port`.
    pub async fn start_on(host: &str, port: u16, listen: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", listen))
            .await
            .expect("the port is free");
        let proxy = Proxy {
            port: listener.local_addr().expect("bound").port(),
            accepted: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Mutex::new(Vec::new())),
            paused: Arc::new(AtomicBool::new(false)),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        let (accepted, open, paused, tasks, upstream) = (
            proxy.accepted.clone(),
            proxy.open.clone(),
            proxy.paused.clone(),
            proxy.tasks.clone(),
            (host.to_owned(), port),
        );
        let listening = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let cut = Arc::new(AtomicBool::new(false));
                open.lock().unwrap().push(cut.clone());
                let (client_read, client_write) = client.into_split();
                let (broker_read, broker_write) = broker.into_split();
                let never = Arc::new(AtomicBool::new(false));
                let there = tokio::spawn(pipe(
                    client_read,
                    broker_write,
                    cut.clone(),
                    paused.clone(),
                    false,
                ));
                let back = tokio::spawn(pipe(broker_read, client_write, cut, never, true));
                tasks.lock().unwrap().extend([there, back]);
            }
        });
        proxy.tasks.lock().unwrap().push(listening);
        proxy
    }

    /// Dies: every connection through it is dropped at once, and new ones are refused.
    pub fn kill(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Cuts the way back on every connection made so far.
    pub fn cut(&self) {
        for cut in self.open.lock().unwrap().iter() {
            cut.store(true, Ordering::SeqCst);
        }
    }

    /// `settings` that reach the broker through this proxy.
    pub fn in_front(
        &self,
        settings: &nuropb_tokio::ConnectionSettings,
    ) -> nuropb_tokio::ConnectionSettings {
        let mut through = settings.clone();
        through.host = "127.0.0.1".into();
        through.port = Some(self.port);
        through.other_nodes.clear();
        through
    }

    /// Stops reading what the clients send (`true`), or reads on (`false`).
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// How many connections it has made to the broker.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, reading nothing while `paused`. Once `cut`, bytes on the way back are
/// dropped, and the end of either side is kept from the other: the writing half stays open,
/// silent, for ever.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    way_back: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            if cut.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let _ = to.shutdown().await;
            return;
        }
        if way_back && cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
