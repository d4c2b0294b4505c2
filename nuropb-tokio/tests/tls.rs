//! TLS against a RabbitMQ TLS listener, with a CA and certificates made by the test.
//!
//! The test makes a CA and a server certificate for `localhost`/127.0.0.1, has the machine's
//! RabbitMQ start a TLS listener on a free port with them (`rabbitmqctl eval`), and connects:
//! verified against the CA, refused without it, accepted with verification off; and with a client
//! certificate against a listener that requires one.

mod support;

use nuropb_tokio::{ConnectionSettings, ErrorKind, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::broker::rabbitmqctl;

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

struct Listener(u16);

impl Listener {
    /// A TLS listener; `client_certs` makes it require a client certificate from the CA.
    fn start(port: u16, ca: &Path, cert: &Path, key: &Path, client_certs: bool) -> Listener {
        let verify = if client_certs {
            "{verify,verify_peer},{fail_if_no_peer_cert,true}"
        } else {
            "{verify,verify_none},{fail_if_no_peer_cert,false}"
        };
        let options = format!(
            "[{{cacertfile,\"{}\"}},{{certfile,\"{}\"}},{{keyfile,\"{}\"}},{verify}]",
            ca.display(),
            cert.display(),
            key.display()
        );
        let eval = format!("rabbit_networking:start_ssl_listener({port}, {options}, 1, 1).");
        let out = rabbitmqctl(&["eval", &eval]);
        assert!(
            out.contains("ok"),
            "RabbitMQ did not start a TLS listener: {out}"
        );
        Listener(port)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let eval = format!("rabbit_networking:stop_tcp_listener({}).", self.0);
        let _ = Command::new("rabbitmqctl").args(["eval", &eval]).output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tls_verified_against_the_test_ca() {
    let dir = std::env::temp_dir().join(format!("nuropb-tls-{}", nuropb_tokio::random_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nuropb test CA");
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let cert_file = write(&dir, "server.pem", &server.pem());
    let key_file = write(&dir, "server.key", &server_key.serialize_pem());
    // RabbitMQ runs as its own user: it must be able to read the files.
    for path in [&dir, &ca_file, &cert_file, &key_file] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let port = free_port();
    let _listener = Listener::start(port, &ca_file, &cert_file, &key_file, false);

    let plain = support::mesh("tls").await;
    let tls = |tls: TlsSettings, host: &str| ConnectionSettings {
        host: host.to_owned(),
        port: Some(port),
        tls: Some(tls),
        ..plain.clone()
    };

    // Verified against the test CA, by host name and by IP address.
    for host in ["localhost", "127.0.0.1"] {
        let settings = tls(
            TlsSettings {
                cafile: Some(ca_file.clone()),
                ..TlsSettings::default()
            },
            host,
        );
        let client = nuropb_tokio::connector(settings).client().await.unwrap();
        let err = client
            .request("nobody", "x", serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::NotDelivered,
            "a round trip over TLS to {host}"
        );
        client.shutdown(Duration::from_secs(1)).await;
    }

    // Without the CA (Mozilla's roots only), the certificate is refused.
    let err = nuropb_tokio::connector(tls(TlsSettings::default(), "localhost"))
        .client()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport);
    assert!(
        err.description.contains("certificate"),
        "{}",
        err.description
    );

    // With verification off, as Python's verify=False.
    let settings = tls(
        TlsSettings {
            verify: false,
            ..TlsSettings::default()
        },
        "localhost",
    );
    let client = nuropb_tokio::connector(settings).client().await.unwrap();
    client.shutdown(Duration::from_secs(1)).await;

    // A listener that requires client certificates: ours, signed by the test CA, is accepted;
    // without one the handshake fails.
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "nuropb test client");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let client_cert_file = write(&dir, "client.pem", &client_cert.pem());
    let client_key_file = write(&dir, "client.key", &client_key.serialize_pem());
    let mutual_port = free_port();
    let _mutual = Listener::start(mutual_port, &ca_file, &cert_file, &key_file, true);
    let mutual = |certfile: Option<PathBuf>, keyfile: Option<PathBuf>| ConnectionSettings {
        port: Some(mutual_port),
        host: "localhost".to_owned(),
        tls: Some(TlsSettings {
            cafile: Some(ca_file.clone()),
            certfile,
            keyfile,
            verify: true,
        }),
        ..plain.clone()
    };
    let client = nuropb_tokio::connector(mutual(
        Some(client_cert_file.clone()),
        Some(client_key_file.clone()),
    ))
    .client()
    .await
    .unwrap();
    let err = client
        .request("nobody", "x", serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::NotDelivered,
        "a round trip with a client certificate"
    );
    client.shutdown(Duration::from_secs(1)).await;
    let err = nuropb_tokio::connector(mutual(None, None))
        .client()
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Transport,
        "refused without a client certificate"
    );

    support::drop_mesh(&plain).await;
    let _ = std::fs::remove_dir_all(&dir);
}
