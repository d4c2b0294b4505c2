//! The broker served over TCP, on standard threads (no async runtime).
//!
//! [`spawn`] binds a listener (port 0 picks a free one), and runs one [`Broker`] behind a mutex:
//! an acceptor thread, a reader and a writer thread per connection, and a timer thread that
//! sleeps until [`Broker::poll_timeout`]. Readers stop reading from a client whose output piles
//! up (TCP back-pressure, as RabbitMQ has), writers write one coalesced chunk at a time, and a
//! connection the broker is done with is shut down once its last bytes are written.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let server = nuropb_testkit::server::spawn("127.0.0.1:0").unwrap();
//! let mut client = std::net::TcpStream::connect(server.addr).unwrap();
//! client.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
//! let mut frame_type = [0u8; 1];
//! client.read_exact(&mut frame_type).unwrap();
//! assert_eq!(frame_type[0], 1, "connection.start is a method frame");
//! server.shutdown();
//! ```

use crate::broker::{Broker, BrokerConfig, ConnectionId};
use nuropb_proto::mesh::management::percent_encode;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A reader stops reading while this many output bytes wait for its client.
const BACKPRESSURE: usize = 4 * 1024 * 1024;
/// The timer thread wakes at least this often (to notice shutdown).
const TICK: Duration = Duration::from_millis(200);

/// A running server: its address, a way into its broker, and a way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    conn_threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    broker: Broker,
    conns: HashMap<ConnectionId, Io>,
    shutdown: bool,
}

#[derive(Debug)]
struct Io {
    stream: TcpStream,
    /// Bytes handed to the writer thread.
    outbox: Vec<u8>,
    /// The writer thread is writing a chunk.
    writing: bool,
    /// The broker is done with it: shut the socket once the outbox is written.
    closing: bool,
}

impl State {
    /// Moves broker output to the writers, and shuts connections the broker is done with.
    fn pump(&mut self) {
        for (&c, io) in self.conns.iter_mut() {
            if io.outbox.is_empty() {
                self.broker.poll_transmit(c, &mut io.outbox);
            }
            if self.broker.is_closed(c) && io.outbox.is_empty() && !io.writing && !io.closing {
                io.closing = true;
                let _ = io.stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves a broker with the default configuration on `addr` (e.g. `"127.0.0.1:0"`).
pub fn spawn(addr: impl ToSocketAddrs) -> io::Result<ServerHandle> {
    spawn_with(addr, BrokerConfig::default())
}

/// Serves a broker with `config` on `addr`. The broker's wall clock origin is set to now.
pub fn spawn_with(addr: impl ToSocketAddrs, mut config: BrokerConfig) -> io::Result<ServerHandle> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    if config.unix_time_origin == 0 {
        config.unix_time_origin = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            broker: Broker::new(config),
            conns: HashMap::new(),
            shutdown: false,
        }),
        changed: Condvar::new(),
        conn_threads: Mutex::new(Vec::new()),
    });
    let acceptor = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("nuropb-broker-accept".into())
            .spawn(move || accept_loop(listener, &shared))?
    };
    let timer = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("nuropb-broker-timer".into())
            .spawn(move || timer_loop(&shared))?
    };
    Ok(ServerHandle {
        addr,
        shared,
        threads: Mutex::new(vec![acceptor, timer]),
    })
}

impl ServerHandle {
    /// Runs `f` on the broker (introspection, [`Broker::force_close`], [`Broker::restart`]),
    /// then sends whatever it produced.
    pub fn with_broker<R>(&self, f: impl FnOnce(&mut Broker) -> R) -> R {
        let mut state = lock(&self.shared);
        let r = f(&mut state.broker);
        state.pump();
        drop(state);
        self.shared.changed.notify_all();
        r
    }

    /// The server's AMQP URL for `vhost` with the configured credentials.
    pub fn amqp_url(&self, vhost: &str) -> String {
        let state = lock(&self.shared);
        let config = state.broker.config();
        format!(
            "amqp://{}:{}@{}/{}",
            config.user,
            config.password,
            self.addr,
            percent_encode(vhost)
        )
    }

    /// Stops accepting, closes every connection and waits for the server's threads.
    pub fn shutdown(&self) {
        {
            let mut state = lock(&self.shared);
            if state.shutdown {
                return;
            }
            state.shutdown = true;
            for io in state.conns.values() {
                let _ = io.stream.shutdown(Shutdown::Both);
            }
        }
        self.shared.changed.notify_all();
        // Wake the acceptor.
        let _ = TcpStream::connect(self.addr);
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        let conn_threads: Vec<_> = std::mem::take(
            &mut *self
                .shared
                .conn_threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for t in conn_threads {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if lock(shared).shutdown {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let (Ok(read_half), Ok(write_half)) = (stream.try_clone(), stream.try_clone()) else {
            continue;
        };
        let c = {
            let mut state = lock(shared);
            let c = state.broker.accept(Instant::now());
            state.conns.insert(
                c,
                Io {
                    stream,
                    outbox: Vec::new(),
                    writing: false,
                    closing: false,
                },
            );
            state.pump();
            c
        };
        shared.changed.notify_all();
        let reader = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("nuropb-broker-read-{}", c.as_u64()))
                .spawn(move || read_loop(c, read_half, &shared))
        };
        let writer = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("nuropb-broker-write-{}", c.as_u64()))
                .spawn(move || write_loop(c, write_half, &shared))
        };
        let mut threads = shared
            .conn_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.extend(reader.ok());
        threads.extend(writer.ok());
    }
}

fn read_loop(c: ConnectionId, mut stream: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let mut state = lock(shared);
        if n == 0 || state.shutdown {
            state.broker.disconnect(c, Instant::now());
            if let Some(io) = state.conns.remove(&c) {
                let _ = io.stream.shutdown(Shutdown::Both);
            }
            state.pump();
            drop(state);
            shared.changed.notify_all();
            return;
        }
        state.broker.handle_input(c, &buf[..n], Instant::now());
        state.pump();
        shared.changed.notify_all();
        // Back-pressure: stop reading while the client does not read what it is sent.
        while !state.shutdown
            && !state.broker.is_closed(c)
            && state
                .conns
                .get(&c)
                .is_some_and(|io| io.outbox.len() + state.broker.pending_output(c) > BACKPRESSURE)
        {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn write_loop(c: ConnectionId, mut stream: TcpStream, shared: &Shared) {
    let mut chunk = Vec::new();
    let mut wrote = false;
    loop {
        {
            let mut state = lock(shared);
            if wrote {
                if let Some(io) = state.conns.get_mut(&c) {
                    io.writing = false;
                }
                state.pump();
                shared.changed.notify_all();
            }
            loop {
                if state.shutdown {
                    return;
                }
                let Some(io) = state.conns.get_mut(&c) else {
                    return;
                };
                if !io.outbox.is_empty() {
                    chunk.clear();
                    std::mem::swap(&mut chunk, &mut io.outbox);
                    io.writing = true;
                    // Refill the outbox at once, so the next write can follow this one.
                    state.pump();
                    break;
                }
                if io.closing {
                    return;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        shared.changed.notify_all();
        if stream.write_all(&chunk).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        wrote = true;
    }
}

fn timer_loop(shared: &Shared) {
    let mut state = lock(shared);
    loop {
        if state.shutdown {
            return;
        }
        let now = Instant::now();
        match state.broker.poll_timeout() {
            Some(t) if t <= now => {
                state.broker.handle_timeout(now);
                state.pump();
                shared.changed.notify_all();
                continue;
            }
            Some(t) => {
                let wait = t.saturating_duration_since(now).min(TICK);
                state = shared
                    .changed
                    .wait_timeout(state, wait)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            None => {
                state = shared
                    .changed
                    .wait_timeout(state, TICK)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
    }
}
