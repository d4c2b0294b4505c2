//! Creating and deleting virtual hosts through RabbitMQ's management HTTP API, as Python NuroPb's
//! `create_virtual_host` does: list the vhosts, create the one wanted if missing; and reading a
//! queue's figures (depth, consumers, rates).

use crate::settings::ConnectionSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nuropb_proto::mesh::management::{HttpCall, VhostSetup, percent_encode};
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

/// The management API base URL of each of the cluster's nodes, in the order they are tried.
fn apis(settings: &ConnectionSettings) -> impl Iterator<Item = String> + '_ {
    settings
        .nodes()
        .map(|(host, port)| settings.management_api_at(host, Some(port)))
}

fn setup_at(settings: &ConnectionSettings, api: &str) -> VhostSetup {
    VhostSetup::new(api, &settings.username, &settings.password, &settings.vhost)
}

/// Makes `call` on the first node whose management API answers: that node's API base URL, the
/// call made, and the answer.
fn first_answer(
    settings: &ConnectionSettings,
    call: impl Fn(&str) -> HttpCall,
) -> Result<(String, HttpCall, (u16, String)), NuropbError> {
    let mut unanswered = Vec::new();
    for api in apis(settings) {
        let made = call(&api);
        match perform(&made) {
            Ok(answer) => return Ok((api, made, answer)),
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
    let (api, list, (status, body)) = first_answer(settings, |api| setup_at(settings, api).list())?;
    if status != 200 {
        return Err(http_error(&list, format!("status {status}: {body}")));
    }
    let setup = setup_at(settings, &api);
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
    match first_answer(settings, |api| setup_at(settings, api).delete())? {
        (_, _, (200..=204, _)) => Ok(true),
        (_, _, (404, _)) => Ok(false),
        (_, delete, (status, body)) => Err(http_error(&delete, format!("status {status}: {body}"))),
    }
}

/// The management API's view of `queue` in the vhost of `settings` (`GET
/// /api/queues/{vhost}/{queue}`: `messages`, `consumers`, `message_stats`, …), or `None` when
/// there is no such queue. Asks the first node whose management API answers. Blocking.
pub fn queue_blocking(
    settings: &ConnectionSettings,
    queue: &str,
) -> Result<Option<serde_json::Value>, NuropbError> {
    let (_, call, (status, body)) = first_answer(settings, |api| HttpCall {
        method: "GET",
        url: format!(
            "{api}/queues/{}/{}",
            percent_encode(&settings.vhost),
            percent_encode(queue)
        ),
        username: settings.username.clone(),
        password: settings.password.clone(),
        body: None,
    })?;
    match status {
        200 => serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| http_error(&call, format!("unreadable answer: {e}"))),
        404 => Ok(None),
        _ => Err(http_error(&call, format!("status {status}: {body}"))),
    }
}
