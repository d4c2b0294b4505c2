//! Creating a virtual host through RabbitMQ's management HTTP API, described as data.
//!
//! Python NuroPb's `create_virtual_host` (NUROPB-WIRE.md §1.5) lists the vhosts, and creates the
//! one it wants when it is missing. [`VhostSetup`] says which HTTP calls to make; an adapter makes
//! them with its HTTP client.

/// An HTTP call for an adapter to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    /// `GET`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The URL, without credentials.
    pub url: String,
    /// Basic-auth user.
    pub username: String,
    /// Basic-auth password.
    pub password: String,
    /// The JSON body, if any (sent with `content-type: application/json`).
    pub body: Option<String>,
}

/// Why a URL could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad AMQP URL: {0}")]
pub struct UrlError(pub String);

/// The parts of an `amqp://` or `amqps://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpUrl {
    /// Whether the scheme is `amqps` (TLS).
    pub tls: bool,
    /// User name (`guest` when absent).
    pub username: String,
    /// Password (`guest` when absent).
    pub password: String,
    /// Host.
    pub host: String,
    /// Port, if the URL names one.
    pub port: Option<u16>,
    /// Further nodes of a cluster, with their ports if named: the URL's authority may list
    /// several, `host1:5672,host2,host3:5673`, tried in turn.
    pub other_nodes: Vec<(String, Option<u16>)>,
    /// Virtual host: the path's last segment, percent-decoded (`/` when absent).
    pub vhost: String,
}

impl AmqpUrl {
    /// Parses `amqp[s]://[user[:password]@]host[:port][,host[:port]…][/vhost]`.
    ///
    /// ```
    /// use nuropb_proto::mesh::management::AmqpUrl;
    /// let url = AmqpUrl::parse("amqp://guest:secret@127.0.0.1:5672/nuropb-example").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.vhost.as_str()), ("127.0.0.1", Some(5672), "nuropb-example"));
    /// assert_eq!(AmqpUrl::parse("amqps://h/%2f").unwrap().vhost, "/");
    /// let cluster = AmqpUrl::parse("amqp://u:p@node1,node2:5673,[::1]:5674,[::2]/v").unwrap();
    /// assert_eq!((cluster.host.as_str(), cluster.port), ("node1", None));
    /// assert_eq!(
    ///     cluster.other_nodes,
    ///     [
    ///         ("node2".to_owned(), Some(5673)),
    ///         ("[::1]".to_owned(), Some(5674)),
    ///         ("[::2]".to_owned(), None),
    ///     ]
    /// );
    /// assert!(AmqpUrl::parse("amqp://u:p@node1,/v").is_err());
    /// assert!(AmqpUrl::parse("amqp://u:p@node1:x/v").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<AmqpUrl, UrlError> {
        let bad = || UrlError(redact(url));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("amqps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("amqp://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    percent_decode(user).ok_or_else(bad)?,
                    percent_decode(pass).ok_or_else(bad)?,
                )
            }
        };
        let mut nodes = hostport
            .split(',')
            .map(|node| host_port(node).ok_or_else(bad));
        let (host, port) = nodes.next().ok_or_else(bad)??;
        let other_nodes = nodes.collect::<Result<Vec<_>, _>>()?;
        let vhost = match path.rsplit('/').next() {
            None | Some("") => "/".to_owned(),
            Some(segment) => {
                percent_decode(segment.split('?').next().unwrap_or("")).ok_or_else(bad)?
            }
        };
        Ok(AmqpUrl {
            tls,
            username,
            password,
            host,
            port,
            other_nodes,
            vhost,
        })
    }

    /// The port to connect to: the URL's, else 5671 with TLS, 5672 without.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 5671 } else { 5672 })
    }

    /// The management API base URL, as Python's `rmq_api_url_from_amqp_url` maps it: `https` for
    /// `amqps`, port + 10000 when the URL has a port, else 15671 (https) or 15672.
    ///
    /// ```
    /// use nuropb_proto::mesh::management::AmqpUrl;
    /// let url = AmqpUrl::parse("amqp://guest:guest@localhost:5672/v").unwrap();
    /// assert_eq!(url.management_api(), "http://localhost:15672/api");
    /// assert_eq!(AmqpUrl::parse("amqps://h/v").unwrap().management_api(), "https://h:15671/api");
    /// ```
    pub fn management_api(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = match self.port {
            Some(p) => p as u32 + 10_000,
            None if self.tls => 15671,
            None => 15672,
        };
        format!("{scheme}://{}:{port}/api", self.host)
    }
}

/// `host[:port]` (an IPv6 address in brackets); `None` when the host is empty or the port is not
/// a number.
fn host_port(node: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if node.starts_with('[') {
        let (host, rest) = node.split_at(node.find(']')? + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match node.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (node, None),
        }
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The URL with its password replaced by `***`, for logs and errors.
///
/// ```
/// assert_eq!(nuropb_proto::mesh::management::redact("amqp://u:secret@h/v"), "amqp://u:***@h/v");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `s` percent-encoded for a URL path segment: every byte but RFC 3986's unreserved characters
/// becomes `%XX`, so a virtual host such as `/` or `my vhost` fits in an AMQP or management URL.
///
/// ```
/// use nuropb_proto::mesh::management::percent_encode;
/// assert_eq!(percent_encode("/"), "%2F");
/// assert_eq!(percent_encode("my vhost-1"), "my%20vhost-1");
/// ```
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The calls that make sure a virtual host exists: list the vhosts, then create it if missing.
///
/// ```
/// use nuropb_proto::mesh::management::VhostSetup;
/// let setup = VhostSetup::new("http://127.0.0.1:15672/api", "guest", "guest", "my vhost");
/// assert_eq!(setup.list().url, "http://127.0.0.1:15672/api/vhosts");
/// assert!(setup.exists(r#"[{"name": "/"}, {"name": "my vhost"}]"#));
/// assert_eq!(setup.create().url, "http://127.0.0.1:15672/api/vhosts/my%20vhost");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostSetup {
    api: String,
    username: String,
    password: String,
    vhost: String,
}

impl VhostSetup {
    /// The setup of `vhost` through the API at `api` (e.g. from [`AmqpUrl::management_api`]).
    pub fn new(api: &str, username: &str, password: &str, vhost: &str) -> Self {
        VhostSetup {
            api: api.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            vhost: vhost.to_owned(),
        }
    }

    fn call(&self, method: &'static str, url: String, body: Option<String>) -> HttpCall {
        HttpCall {
            method,
            url,
            username: self.username.clone(),
            password: self.password.clone(),
            body,
        }
    }

    /// First: `GET {api}/vhosts`.
    pub fn list(&self) -> HttpCall {
        self.call("GET", format!("{}/vhosts", self.api), None)
    }

    /// Whether the answer to [`VhostSetup::list`] names the vhost.
    pub fn exists(&self, list_body: &str) -> bool {
        serde_json::from_str::<Vec<serde_json::Value>>(list_body)
            .map(|vhosts| vhosts.iter().any(|v| v["name"] == self.vhost.as_str()))
            .unwrap_or(false)
    }

    /// Then, when missing: `PUT {api}/vhosts/{vhost}` with Python's body (the vhost URL-encoded,
    /// where Python does not encode it).
    pub fn create(&self) -> HttpCall {
        self.call(
            "PUT",
            format!("{}/vhosts/{}", self.api, percent_encode(&self.vhost)),
            Some(r#"{"configure": ".*", "write": ".*", "read": ".*"}"#.to_owned()),
        )
    }

    /// Removes the vhost: `DELETE {api}/vhosts/{vhost}`.
    pub fn delete(&self) -> HttpCall {
        self.call(
            "DELETE",
            format!("{}/vhosts/{}", self.api, percent_encode(&self.vhost)),
            None,
        )
    }
}
