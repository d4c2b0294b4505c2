//! What the gateway knows of the services it fronts: their descriptions, kept for a while, and
//! so which methods may be called — those a service describes. A hidden method is left out of
//! describe, so the gateway refuses it, whether the service would or not (Python NuroPb's
//! services would call it).

use crate::error::Refusal;
use crate::mesh::Mesh;
use axum::http::StatusCode;
use nuropb_proto::describe::ServiceDescription;
use nuropb_tokio::ErrorKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most services whose descriptions are kept.
const MAX_SERVICES: usize = 1024;

/// A description is asked for again on an unknown method at most this often.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Descriptions by service name.
#[derive(Debug)]
pub(crate) struct Catalog {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Debug)]
struct Entry {
    description: Arc<ServiceDescription>,
    fetched: Instant,
}

/// Refuses a service or method name a client could not mean: empty, over 255 bytes, or with
/// control characters.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), Refusal> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(Refusal::invalid(format!(
            "the {what} name must be 1 to 255 bytes of text without control characters"
        )));
    }
    Ok(())
}

impl Catalog {
    /// Descriptions kept for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Catalog {
        Catalog {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, service: &str) -> Option<Entry> {
        self.entries.lock().ok()?.get(service).cloned()
    }

    /// The description of `service`: kept, or asked for when absent, older than the ttl, or
    /// `fresh` is asked for.
    pub(crate) async fn describe(
        &self,
        mesh: &Mesh,
        service: &str,
        fresh: bool,
    ) -> Result<Arc<ServiceDescription>, Refusal> {
        check_name("service", service)?;
        if !fresh
            && let Some(entry) = self.cached(service)
            && entry.fetched.elapsed() < self.ttl
        {
            return Ok(entry.description);
        }
        let description = Arc::new(mesh.describe(service).await?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_SERVICES && !entries.contains_key(service) {
                let ttl = self.ttl;
                entries.retain(|_, e| e.fetched.elapsed() < ttl);
                if entries.len() >= MAX_SERVICES {
                    entries.clear();
                }
            }
            entries.insert(
                service.to_owned(),
                Entry {
                    description: description.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        Ok(description)
    }

    /// Whether `method` of `service` may be called, and if so whether it requires encryption.
    /// An unknown (or hidden) method is refused with the `NuropbHandlingError` a service answers
    /// for it, and status 404.
    pub(crate) async fn method(
        &self,
        mesh: &Mesh,
        service: &str,
        method: &str,
    ) -> Result<bool, Refusal> {
        check_name("method", method)?;
        check_name("service", service)?;
        let description = match self.cached(service) {
            Some(entry) if entry.fetched.elapsed() < self.ttl => entry.description,
            _ => Box::pin(self.describe(mesh, service, false)).await?,
        };
        if let Some(m) = description.methods.get(method) {
            return Ok(m.requires_encryption);
        }
        // A service may have been upgraded since it was described.
        let recent = self
            .cached(service)
            .is_some_and(|e| e.fetched.elapsed() < REFRESH_AT_MOST_EVERY);
        if !recent {
            // Boxed: the rare path, kept out of every request's future.
            let description = Box::pin(self.describe(mesh, service, true)).await?;
            if let Some(m) = description.methods.get(method) {
                return Ok(m.requires_encryption);
            }
        }
        Err(Refusal::new(
            StatusCode::NOT_FOUND,
            ErrorKind::Handling,
            format!("Unknown method {method}"),
        ))
    }
}
