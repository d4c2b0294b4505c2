//! A client connection: the server side of the handshake (protocol header, `start`/`start-ok`
//! with PLAIN or AMQPLAIN login, `tune`/`tune-ok`, `open`), the connection class once open, and
//! closing — by the client, by an error, or forced.

use crate::broker::channel::Channel;
use crate::broker::error::{AmqpError, reply_code};
use crate::broker::queue::QueueId;
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use nuropb_proto::amqp::frame::{FrameReader, MIN_FRAME_MAX, PROTOCOL_HEADER};
use std::collections::BTreeMap;
use std::time::Instant;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the 8-byte protocol header.
    Header,
    /// `connection.start` sent; waiting for `start-ok`.
    StartOk,
    /// `connection.tune` sent; waiting for `tune-ok`.
    TuneOk,
    /// Tuned; waiting for `connection.open`.
    Open,
    /// Open for business.
    Running,
    /// The broker sent `connection.close`; waiting for `close-ok`, ignoring everything else.
    Closing,
    /// Finished: once its output is written, the socket should be closed.
    Closed,
}

/// One client connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) phase: Phase,
    header: Vec<u8>,
    /// The frame reader; taken out while input is being handled.
    pub(crate) reader: Option<FrameReader>,
    /// Bytes for the client, not yet taken by `poll_transmit`.
    pub(crate) out: Vec<u8>,
    /// Bytes taken by `poll_transmit` so far.
    pub(crate) out_taken: u64,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    /// The negotiated heartbeat, seconds; 0 = none.
    pub(crate) heartbeat: u16,
    pub(crate) last_recv: Instant,
    /// When the broker last looked at its output, and the output total then.
    pub(crate) send_mark: (Instant, u64),
    /// The handshake deadline, or the close-ok deadline while closing.
    pub(crate) deadline: Option<Instant>,
    pub(crate) user: String,
    pub(crate) vhost: Option<usize>,
    /// The client announced `consumer_cancel_notify`: it gets `basic.cancel` when a queue goes.
    pub(crate) cancel_notify: bool,
    pub(crate) client_properties: FieldTable,
    pub(crate) channels: BTreeMap<u16, Channel>,
    /// Queues it declared exclusive.
    pub(crate) exclusive_queues: Vec<QueueId>,
    /// Deliveries to it paused because its output was over the budget.
    pub(crate) starved: bool,
}

impl Connection {
    pub(crate) fn new(now: Instant, handshake_deadline: Option<Instant>) -> Self {
        Connection {
            phase: Phase::Header,
            header: Vec::with_capacity(8),
            reader: Some(FrameReader::new(MIN_FRAME_MAX)),
            out: Vec::new(),
            out_taken: 0,
            frame_max: MIN_FRAME_MAX,
            channel_max: 0,
            heartbeat: 0,
            last_recv: now,
            send_mark: (now, 0),
            deadline: handshake_deadline,
            user: String::new(),
            vhost: None,
            cancel_notify: false,
            client_properties: FieldTable::default(),
            channels: BTreeMap::new(),
            exclusive_queues: Vec::new(),
            starved: false,
        }
    }

    /// Every byte ever produced for the client.
    pub(crate) fn out_total(&self) -> u64 {
        self.out_taken + self.out.len() as u64
    }

    /// Feeds protocol-header bytes; returns how many were used and, once 8 are in, whether they
    /// were AMQP 0-9-1's.
    pub(crate) fn take_header(&mut self, input: &[u8]) -> (usize, Option<bool>) {
        let used = (8 - self.header.len()).min(input.len());
        self.header.extend_from_slice(&input[..used]);
        if self.header.len() < 8 {
            return (used, None);
        }
        (used, Some(self.header[..] == PROTOCOL_HEADER))
    }
}

fn conn_method(m: connection::AMQPMethod) -> AMQPClass {
    AMQPClass::Connection(m)
}

impl Broker {
    /// The protocol header arrived: right → `connection.start`; wrong → our header, then close.
    pub(crate) fn protocol_header(&mut self, c: ConnectionId, ok: bool) {
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        if !ok {
            conn.out.extend_from_slice(&PROTOCOL_HEADER);
            conn.phase = Phase::Closed;
            return;
        }
        let t = |b: bool| AMQPValue::Boolean(b);
        let s = |v: &str| AMQPValue::LongString(LongString::from(v));
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
        ] {
            caps.insert(ShortString::from(cap), t(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        props.insert("cluster_name".into(), s("nuropb-testkit@localhost"));
        props.insert(
            "copyright".into(),
            s("The NuroPb for Rust authors; an in-memory broker for tests"),
        );
        props.insert(
            "information".into(),
            s("In-memory AMQP 0-9-1 broker with RabbitMQ semantics, for testing NuroPb"),
        );
        props.insert("platform".into(), s("Rust"));
        props.insert("product".into(), s("nuropb-testkit"));
        props.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
        let start = conn_method(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: props,
            mechanisms: "PLAIN AMQPLAIN".into(),
            locales: "en_US".into(),
        }));
        wire::method(&mut conn.out, 0, &start);
        conn.phase = Phase::StartOk;
    }

    /// A method on channel 0 during the handshake. Anything unexpected ends the connection
    /// silently, as RabbitMQ does before a connection is open.
    pub(crate) fn handshake_method(&mut self, c: ConnectionId, method: AMQPClass) {
        let Some(phase) = self.connections.get(&c).map(|conn| conn.phase) else {
            return;
        };
        let result = match (phase, method) {
            (Phase::StartOk, AMQPClass::Connection(connection::AMQPMethod::StartOk(m))) => {
                self.start_ok(c, m)
            }
            (Phase::TuneOk, AMQPClass::Connection(connection::AMQPMethod::TuneOk(m))) => {
                self.tune_ok(c, m)
            }
            (Phase::Open, AMQPClass::Connection(connection::AMQPMethod::Open(m))) => {
                self.open(c, m.virtual_host.as_str())
            }
            (_, AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                self.send_close_ok(c);
                Ok(())
            }
            _ => {
                self.close_silently(c);
                Ok(())
            }
        };
        if let Err(err) = result {
            self.connection_error(c, err);
            if let Some(conn) = self.connections.get_mut(&c) {
                // Handshake failures do not wait for close-ok.
                conn.phase = Phase::Closed;
            }
        }
    }

    fn start_ok(&mut self, c: ConnectionId, m: connection::StartOk) -> Result<(), AmqpError> {
        let login = match m.mechanism.as_str() {
            "PLAIN" => parse_plain(m.response.as_bytes()),
            "AMQPLAIN" => parse_amqplain(m.response.as_bytes()),
            _ => None,
        };
        let Some(login) = login else {
            // Unknown mechanism or unreadable response: RabbitMQ drops the socket.
            self.close_silently(c);
            return Ok(());
        };
        let caps = match m.client_properties.inner().get("capabilities") {
            Some(AMQPValue::FieldTable(t)) => t.clone(),
            _ => FieldTable::default(),
        };
        let cap = |name: &str| matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)));
        let (heartbeat, frame_max, channel_max) = (
            self.config.heartbeat,
            self.config.frame_max,
            self.config.channel_max,
        );
        let ok =
            login.0 == self.config.user.as_bytes() && login.1 == self.config.password.as_bytes();
        let conn = self.conn_mut(c)?;
        conn.cancel_notify = cap("consumer_cancel_notify");
        conn.client_properties = m.client_properties;
        if !ok {
            if cap("authentication_failure_close") {
                return Err(AmqpError::access_refused(format_args!(
                    "Login was refused using authentication mechanism {}. For details see the \
                     broker logfile.",
                    m.mechanism.as_str()
                ))
                .at(0, 0));
            }
            conn.phase = Phase::Closed;
            return Ok(());
        }
        conn.user = String::from_utf8_lossy(&login.0).into_owned();
        let tune = conn_method(connection::AMQPMethod::Tune(connection::Tune {
            channel_max,
            frame_max,
            heartbeat,
        }));
        wire::method(&mut conn.out, 0, &tune);
        conn.phase = Phase::TuneOk;
        Ok(())
    }

    fn tune_ok(&mut self, c: ConnectionId, m: connection::TuneOk) -> Result<(), AmqpError> {
        let (frame_max, channel_max) = (self.config.frame_max, self.config.channel_max);
        negotiate("frame_max", MIN_FRAME_MAX, frame_max, m.frame_max)?;
        negotiate("channel_max", 1, channel_max as u32, m.channel_max as u32)?;
        let conn = self.conn_mut(c)?;
        conn.frame_max = m.frame_max;
        conn.channel_max = m.channel_max;
        conn.heartbeat = m.heartbeat;
        conn.phase = Phase::Open;
        Ok(())
    }

    fn open(&mut self, c: ConnectionId, vhost: &str) -> Result<(), AmqpError> {
        let vid = match self.vhost_index.get(vhost) {
            Some(&v) => v,
            None if self.config.auto_create_vhosts
                && self.vhosts.len() < self.config.max_vhosts =>
            {
                self.add_vhost(vhost);
                self.vhost_index[vhost]
            }
            None => {
                return Err(
                    AmqpError::not_allowed(format_args!("vhost {vhost} not found")).at(10, 40),
                );
            }
        };
        let conn = self.conn_mut(c)?;
        conn.vhost = Some(vid);
        conn.deadline = None;
        conn.phase = Phase::Running;
        let open_ok = conn_method(connection::AMQPMethod::OpenOk(connection::OpenOk {}));
        wire::method(&mut conn.out, 0, &open_ok);
        Ok(())
    }

    /// A method on channel 0 of an open connection.
    pub(crate) fn connection_method(
        &mut self,
        c: ConnectionId,
        method: AMQPClass,
    ) -> Result<(), AmqpError> {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.release_connection(c);
                self.send_close_ok(c);
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                let conn = self.conn_mut(c)?;
                let ok = conn_method(connection::AMQPMethod::UpdateSecretOk(
                    connection::UpdateSecretOk {},
                ));
                wire::method(&mut conn.out, 0, &ok);
                Ok(())
            }
            _ => Err(AmqpError::channel_error(
                "unexpected method in connection state running",
            )),
        }
    }

    /// A method on channel 0 while the broker waits for `close-ok`.
    pub(crate) fn closing_method(&mut self, c: ConnectionId, method: AMQPClass) {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                if let Some(conn) = self.connections.get_mut(&c) {
                    conn.phase = Phase::Closed;
                }
            }
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => self.send_close_ok(c),
            _ => {}
        }
    }

    fn send_close_ok(&mut self, c: ConnectionId) {
        if let Some(conn) = self.connections.get_mut(&c) {
            let ok = conn_method(connection::AMQPMethod::CloseOk(connection::CloseOk {}));
            wire::method(&mut conn.out, 0, &ok);
            conn.phase = Phase::Closed;
        }
    }

    /// Ends a connection without a word (handshake failures, dead peers).
    pub(crate) fn close_silently(&mut self, c: ConnectionId) {
        self.release_connection(c);
        if let Some(conn) = self.connections.get_mut(&c) {
            conn.phase = Phase::Closed;
        }
    }

    /// A hard error: send `connection.close`, settle everything the connection held, and wait for
    /// `close-ok`.
    pub(crate) fn connection_error(&mut self, c: ConnectionId, err: AmqpError) {
        let (class_id, method_id) = err.class_method();
        self.send_connection_close(c, err.code, &err.text, class_id, method_id);
    }

    /// Sends `connection.close` and moves to [`Phase::Closing`] (or [`Phase::Closed`] for a
    /// connection not open yet).
    pub(crate) fn send_connection_close(
        &mut self,
        c: ConnectionId,
        code: u16,
        text: &str,
        class_id: u16,
        method_id: u16,
    ) {
        self.release_connection(c);
        let deadline = self
            .now
            .and_then(|n| n.checked_add(self.config.close_timeout));
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        if matches!(conn.phase, Phase::Closing | Phase::Closed | Phase::Header) {
            return;
        }
        let close = conn_method(connection::AMQPMethod::Close(connection::Close {
            reply_code: code,
            reply_text: wire::reply_text(text),
            class_id,
            method_id,
        }));
        wire::method(&mut conn.out, 0, &close);
        conn.phase = if conn.phase == Phase::Running {
            Phase::Closing
        } else {
            Phase::Closed
        };
        conn.deadline = deadline;
    }

    /// Settles everything a connection holds: every channel's consumers are cancelled and its
    /// unacknowledged deliveries requeued, and its exclusive queues are deleted. The connection
    /// entry stays until [`Broker::disconnect`].
    pub(crate) fn release_connection(&mut self, c: ConnectionId) {
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        let channels: Vec<u16> = conn.channels.keys().copied().collect();
        for ch in channels {
            self.release_channel(c, ch);
        }
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        conn.channels.clear();
        for q in std::mem::take(&mut conn.exclusive_queues) {
            self.delete_queue(q);
        }
    }

    /// Forces a connection closed with `code` and `text` (e.g. 320 `CONNECTION_FORCED - …`).
    pub(crate) fn force(&mut self, c: ConnectionId, code: u16, text: &str) -> bool {
        let Some(conn) = self.connections.get(&c) else {
            return false;
        };
        match conn.phase {
            Phase::Running => {
                self.send_connection_close(c, code, text, 0, 0);
                true
            }
            Phase::Closing | Phase::Closed => false,
            _ => {
                self.close_silently(c);
                true
            }
        }
    }

    /// The text RabbitMQ sends every client when it shuts down.
    pub(crate) fn shutdown_text() -> String {
        format!(
            "{} - broker forced connection closure with reason 'shutdown'",
            reply_code::name(reply_code::CONNECTION_FORCED)
        )
    }
}

/// RabbitMQ's `validate_negotiated_integer_value`.
fn negotiate(field: &str, min: u32, server: u32, client: u32) -> Result<(), AmqpError> {
    if client != 0 && client < min {
        return Err(AmqpError::not_allowed(format_args!(
            "negotiated {field} = {client} is lower than the minimum allowed value ({min})"
        ))
        .at(10, 31));
    }
    if server != 0 && (client == 0 || client > server) {
        return Err(AmqpError::not_allowed(format_args!(
            "negotiated {field} = {client} is higher than the maximum allowed value ({server})"
        ))
        .at(10, 31));
    }
    Ok(())
}

/// SASL PLAIN: `[authzid] NUL authcid NUL passwd`.
fn parse_plain(response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((user.to_vec(), pass.to_vec()))
}

/// AMQPLAIN: a field table without its length prefix, with `LOGIN` and `PASSWORD`.
fn parse_amqplain(response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut table = (response.len() as u32).to_be_bytes().to_vec();
    table.extend_from_slice(response);
    let (rest, t) = amq_protocol::types::parsing::parse_field_table(table.as_slice()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let get = |k: &str| match t.inner().get(k)? {
        AMQPValue::LongString(s) => Some(s.as_bytes().to_vec()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes().to_vec()),
        _ => None,
    };
    Some((get("LOGIN")?, get("PASSWORD")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses() {
        assert_eq!(
            parse_plain(b"\0guest\0guest"),
            Some((b"guest".to_vec(), b"guest".to_vec()))
        );
        assert_eq!(parse_plain(b"guest"), None);
        let mut t = FieldTable::default();
        t.insert("LOGIN".into(), AMQPValue::LongString("u".into()));
        t.insert("PASSWORD".into(), AMQPValue::LongString("p".into()));
        let ctx = amq_protocol::types::generation::gen_field_table(&t)(
            amq_protocol::frame::WriteContext::from(Vec::new()),
        );
        let bytes = ctx.unwrap().write;
        assert_eq!(
            parse_amqplain(&bytes[4..]),
            Some((b"u".to_vec(), b"p".to_vec()))
        );
    }

    #[test]
    fn tuning_bounds() {
        assert!(negotiate("frame_max", 4096, 131072, 131072).is_ok());
        assert!(negotiate("frame_max", 4096, 131072, 100).is_err());
        assert!(negotiate("frame_max", 4096, 131072, 0).is_err());
        assert!(negotiate("frame_max", 4096, 131072, 200_000).is_err());
    }
}
