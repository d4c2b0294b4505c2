//! Creating and deleting virtual hosts through RabbitMQ's management HTTP API, as Python NuroPb's
//! `create_virtual_host` does: list the vhosts, create the one wanted if missing.

use crate::settings::ConnectionSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nuropb_proto::mesh::management::{HttpCall, VhostSetup};
use nuropb_proto::{ErrorKind, NuropbError};

fn http_error(call: &HttpCall, e: impl std::fmt::Display) -> NuropbError {
    NuropbError::new(
        ErrorKind::Transport,
        format!("{} {}: {e}", call.method, call.url),
    )
}

/// Makes one call with `ureq`; returns the status and body.
fn perform(call: &HttpCall) -> Result<(u16, String), NuropbError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", call.username, call.password))
    );
    let response = match (call.method, &call.body) {
        ("PUT", Some(body)) => agent
            .put(&call.url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(body.as_str()),
        ("DELETE", _) => agent
            .delete(&call.url)
            .header("authorization", &auth)
            .call(),
        _ => agent.get(&call.url).header("authorization", &auth).call(),
    };
    let mut response = response.map_err(|e| http_error(call, e))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| http_error(call, e))?;
    Ok((status, body))
}

/// The management API of each of the cluster's nodes, in the order they are tried.
fn setups(settings: &ConnectionSettings) -> impl Iterator<Item = VhostSetup> + '_ {
    settings.nodes().map(|(host, port)| {
        VhostSetup::new(
            &settings.management_api_at(host, Some(port)),
            &settings.username,
            &settings.password,
            &settings.vhost,
        )
    })
}

/// Makes `call` on the first node whose management API answers: that node's setup, the call
/// made, and the answer.
fn first_answer(
    settings: &ConnectionSettings,
    call: impl Fn(&VhostSetup) -> HttpCall,
) -> Result<(VhostSetup, HttpCall, (u16, String)), NuropbError> {
    let mut unanswered = Vec::new();
    for setup in setups(settings) {
        let made = call(&setup);
        match perform(&made) {
            Ok(answer) => return Ok((setup, made, answer)),
            Err(e) => unanswered.push(e.description),
        }
    }
    Err(NuropbError::new(
        ErrorKind::Transport,
        unanswered.join("; "),
    ))
}

/// Makes sure the vhost of `settings` exists; true when it was created. Asks the first node
/// whose management API answers. Blocking: run it on a thread where blocking is allowed.
pub fn create_vhost_blocking(settings: &ConnectionSettings) -> Result<bool, NuropbError> {
    let (setup, list, (status, body)) = first_answer(settings, VhostSetup::list)?;
    if status != 200 {
        return Err(http_error(&list, format!("status {status}: {body}")));
    }
    if setup.exists(&body) {
        return Ok(false);
    }
    let create = setup.create();
    match perform(&create)? {
        (200..=204, _) => Ok(true),
        (status, body) => Err(http_error(&create, format!("status {status}: {body}"))),
    }
}

/// Deletes the vhost of `settings`; true when it existed. Blocking.
pub fn delete_vhost_blocking(settings: &ConnectionSettings) -> Result<bool, NuropbError> {
    match first_answer(settings, VhostSetup::delete)? {
        (_, _, (200..=204, _)) => Ok(true),
        (_, _, (404, _)) => Ok(false),
        (_, delete, (status, body)) => Err(http_error(&delete, format!("status {status}: {body}"))),
    }
}
