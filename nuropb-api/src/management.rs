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

fn setup(settings: &ConnectionSettings) -> VhostSetup {
    VhostSetup::new(
        &settings.management_api(),
        &settings.username,
        &settings.password,
        &settings.vhost,
    )
}

/// Makes sure the vhost of `settings` exists; true when it was created. Blocking: run it on a
/// thread where blocking is allowed.
pub fn create_vhost_blocking(settings: &ConnectionSettings) -> Result<bool, NuropbError> {
    let setup = setup(settings);
    let list = setup.list();
    let (status, body) = perform(&list)?;
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
    let delete = setup(settings).delete();
    match perform(&delete)? {
        (200..=204, _) => Ok(true),
        (404, _) => Ok(false),
        (status, body) => Err(http_error(&delete, format!("status {status}: {body}"))),
    }
}
