//! Writing a property list: from [`Properties`], or from borrowed parts with [`PropertiesRef`].

use amq_protocol::frame::{GenError, WriteContext};
use amq_protocol::types::generation::{gen_short_string, gen_value};

#[cfg(doc)]
use super::Properties;
use super::flag::*;
use super::{Headers, PropertiesError};

/// The header table of a [`PropertiesRef`].
#[derive(Clone, Copy, Debug)]
pub enum HeadersRef<'a> {
    /// A table of any values.
    Table(&'a Headers),
    /// Keys with long-string values, or void where `None`: the shape NuroPb's headers have.
    LongStrings(&'a [(&'a str, Option<&'a [u8]>)]),
}

/// Content properties borrowed from wherever they are, written without building a
/// [`Properties`]: for paths that publish the same shape again and again. Strings longer than
/// an AMQP short string allows are a [`PropertiesError::ShortStringTooLong`].
///
/// ```
/// use nuropb_proto::amqp::{HeadersRef, Properties, PropertiesRef};
///
/// let headers = [("nuropb_type", Some(&b"event"[..])), ("trace_id", None)];
/// let props = PropertiesRef {
///     content_type: Some("application/json"),
///     headers: Some(HeadersRef::LongStrings(&headers)),
///     ..PropertiesRef::default()
/// };
/// let mut bytes = Vec::new();
/// props.encode(&mut bytes).unwrap();
/// let decoded = Properties::decode(&bytes).unwrap();
/// assert_eq!(decoded.headers.unwrap().keys().collect::<Vec<_>>(), ["nuropb_type", "trace_id"]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PropertiesRef<'a> {
    /// MIME content type.
    pub content_type: Option<&'a str>,
    /// MIME content encoding.
    pub content_encoding: Option<&'a str>,
    /// Application headers, in order.
    pub headers: Option<HeadersRef<'a>>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Priority.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<&'a str>,
    /// Address to reply to.
    pub reply_to: Option<&'a str>,
    /// Expiration, milliseconds as a decimal string.
    pub expiration: Option<&'a str>,
    /// Application message identifier.
    pub message_id: Option<&'a str>,
    /// Timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type name.
    pub kind: Option<&'a str>,
    /// Creating user id.
    pub user_id: Option<&'a str>,
    /// Creating application id.
    pub app_id: Option<&'a str>,
    /// Deprecated cluster id.
    pub cluster_id: Option<&'a str>,
}

impl PropertiesRef<'_> {
    /// The property flag word: one bit per present property.
    pub fn flags(&self) -> u16 {
        let bit = |present: bool, bit: u16| if present { bit } else { 0 };
        bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.content_encoding.is_some(), CONTENT_ENCODING)
            | bit(self.headers.is_some(), HEADERS)
            | bit(self.delivery_mode.is_some(), DELIVERY_MODE)
            | bit(self.priority.is_some(), PRIORITY)
            | bit(self.correlation_id.is_some(), CORRELATION_ID)
            | bit(self.reply_to.is_some(), REPLY_TO)
            | bit(self.expiration.is_some(), EXPIRATION)
            | bit(self.message_id.is_some(), MESSAGE_ID)
            | bit(self.timestamp.is_some(), TIMESTAMP)
            | bit(self.kind.is_some(), KIND)
            | bit(self.user_id.is_some(), USER_ID)
            | bit(self.app_id.is_some(), APP_ID)
            | bit(self.cluster_id.is_some(), CLUSTER_ID)
    }

    /// Appends the flag word and the present properties to `out`; on an error `out` is as it
    /// was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PropertiesError> {
        let strings = [
            self.content_type,
            self.content_encoding,
            self.correlation_id,
            self.reply_to,
            self.expiration,
            self.message_id,
            self.kind,
            self.user_id,
            self.app_id,
            self.cluster_id,
        ];
        if let Some(long) = strings.into_iter().flatten().find(|s| s.len() > 255) {
            return Err(PropertiesError::ShortStringTooLong(long.len()));
        }
        if let Some(HeadersRef::LongStrings(entries)) = self.headers
            && entries.iter().any(|(key, _)| key.len() > 255)
        {
            return Err(PropertiesError::KeyTooLong);
        }
        self.write(out);
        Ok(())
    }

    /// Writes what [`PropertiesRef::encode`] checked (or what [`Properties`] guarantees).
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags().to_be_bytes());
        let short = |out: &mut Vec<u8>, s: Option<&str>| {
            if let Some(s) = s {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
        };
        short(out, self.content_type);
        short(out, self.content_encoding);
        match self.headers {
            Some(HeadersRef::Table(headers)) => encode_table(headers, out),
            Some(HeadersRef::LongStrings(entries)) => encode_long_strings(entries, out),
            None => {}
        }
        if let Some(mode) = self.delivery_mode {
            out.push(mode);
        }
        if let Some(priority) = self.priority {
            out.push(priority);
        }
        short(out, self.correlation_id);
        short(out, self.reply_to);
        short(out, self.expiration);
        short(out, self.message_id);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        short(out, self.kind);
        short(out, self.user_id);
        short(out, self.app_id);
        short(out, self.cluster_id);
    }
}

/// Writes a field table of long strings (type `S`) and voids (type `V`).
fn encode_long_strings(entries: &[(&str, Option<&[u8]>)], out: &mut Vec<u8>) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in entries {
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        match value {
            Some(bytes) => {
                out.push(b'S');
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.push(b'V'),
        }
    }
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}
/// Writes `headers` as a field table: its byte length, then each key and typed value in order.
fn encode_table(headers: &Headers, out: &mut Vec<u8>) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in headers.iter() {
        let buf = std::mem::take(out);
        *out = write_with(buf, |ctx| {
            let ctx = gen_short_string(key)(ctx)?;
            gen_value(value)(ctx)
        });
    }
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Runs a cookie-factory serializer over a growable buffer, which cannot fail for lack of space.
pub(super) fn write_with<F>(buf: Vec<u8>, f: F) -> Vec<u8>
where
    F: FnOnce(WriteContext<Vec<u8>>) -> Result<WriteContext<Vec<u8>>, GenError>,
{
    match f(WriteContext::from(buf)) {
        Ok(ctx) => ctx.write,
        // A Vec grows on demand; amq-protocol's value generators have no other failure.
        Err(e) => unreachable!("serializing into a Vec failed: {e:?}"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::{AMQPValue, Properties};
    use proptest::prelude::*;

    proptest! {
        /// The borrowed writer of long-string headers writes what the general encoder writes
        /// for the same table.
        #[test]
        fn long_string_headers_encode_as_the_general_table_does(
            entries in proptest::collection::vec(
                ("[a-z_]{1,20}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
                0..8,
            ),
            correlation in proptest::option::of("[a-f0-9]{0,40}"),
            expiration in proptest::option::of("[0-9]{1,9}"),
        ) {
            let borrowed: Vec<(&str, Option<&[u8]>)> =
                entries.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let mut ours = Vec::new();
            PropertiesRef {
                content_type: Some("application/json"),
                headers: Some(HeadersRef::LongStrings(&borrowed)),
                correlation_id: correlation.as_deref(),
                expiration: expiration.as_deref(),
                ..PropertiesRef::default()
            }
            .encode(&mut ours)
            .unwrap();
            let mut table = Headers::default();
            for (k, v) in &entries {
                // A repeated key: the general table replaces, the list repeats; skip those.
                if table.get(k).is_some() {
                    return Ok(());
                }
                table.insert(k, v.clone().map_or(AMQPValue::Void, |b| AMQPValue::LongString(b.into())));
            }
            let general = Properties {
                content_type: Some("application/json".into()),
                headers: Some(table),
                correlation_id: correlation.as_deref().map(Into::into),
                expiration: expiration.as_deref().map(Into::into),
                ..Properties::default()
            };
            let mut theirs = Vec::new();
            general.encode(&mut theirs);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn over_long_strings_are_refused_and_nothing_is_written() {
        let long = "x".repeat(256);
        let mut out = vec![1, 2];
        let props = PropertiesRef {
            reply_to: Some(&long),
            ..PropertiesRef::default()
        };
        assert_eq!(
            props.encode(&mut out),
            Err(PropertiesError::ShortStringTooLong(256))
        );
        assert_eq!(out, [1, 2]);
    }
}
