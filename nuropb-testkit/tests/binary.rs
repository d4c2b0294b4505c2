//! The `nuropb-broker` command line: its help says how virtual hosts come to exist, and it
//! serves AMQP on the port it is given.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_nuropb-broker");

#[test]
fn help_explains_virtual_hosts_and_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "any virtual host a client opens exists",
        "--port",
        "--user",
        "--password",
        "--mesh",
        "nuropb-rpc-exchange",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

#[test]
fn it_listens_on_loopback_and_speaks_amqp() {
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--mesh"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("nuropb-broker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut head = [0u8; 7];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..3], &[1, 0, 0], "connection.start on channel 0");
    child.kill().unwrap();
    child.wait().unwrap();
}
