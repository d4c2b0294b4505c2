//! The election's etcd requests, on `etcd-client`: opening a session, the campaign, fenced
//! writes, and the watch's changes in the election's terms.
//!
//! Each function does what one [`Action`](crate::election::Action) asks; the driver runs them
//! and hands the answers to the [`Election`](crate::election::Election). They are public so
//! that tools and tests can act on a service's election the way a container does.

use crate::election::{CampaignResult, Change, Entry, Fence, Opened, Snapshot, WriteOutcome};
use crate::keys::Keys;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, Txn, TxnOp, WatchOptions, WatchResponse, WatchStream,
};
use std::time::{Duration, Instant};

/// Values longer than this are cut (an instance id, `True` and a health record are far shorter).
const MAX_VALUE: usize = 1024;

/// Where etcd is, and how long to wait for it.
///
/// ```
/// use nuropb_container::EtcdSettings;
/// let etcd = EtcdSettings::new(["http://127.0.0.1:2379"]);
/// assert_eq!(etcd.request_timeout.as_secs(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSettings {
    /// The etcd endpoints, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// User name and password, when etcd has authentication on.
    pub user: Option<(String, String)>,
    /// How long one request may take (3 s): shorter than the renew margin, so that a hung
    /// request cannot hold a leader past its deadline.
    pub request_timeout: Duration,
    /// How long connecting may take (2 s).
    pub connect_timeout: Duration,
}

impl EtcdSettings {
    /// etcd at `endpoints`.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> EtcdSettings {
        EtcdSettings {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            user: None,
            request_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// Connects a client (lazily: the first request finds out whether etcd answers).
    pub async fn connect(&self) -> Result<Client, etcd_client::Error> {
        let mut options = ConnectOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout)
            // Finds a dead connection within seconds even when no request is out.
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &self.user {
            options = options.with_user(user.clone(), password.clone());
        }
        Client::connect(&self.endpoints, Some(options)).await
    }
}

/// An entry of etcd's, in the election's terms.
fn entry(kv: &KeyValue) -> Entry {
    let value = kv.value();
    let value = &value[..value.len().min(MAX_VALUE)];
    Entry {
        value: String::from_utf8_lossy(value).into_owned(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map(|h| h.revision()).unwrap_or(0)
}

/// Reads `key`: its entry if present, and the revision read at.
pub async fn read(
    client: &mut Client,
    key: &str,
    at: Option<i64>,
) -> Result<(Option<Entry>, i64), etcd_client::Error> {
    let options = at.map(|revision| GetOptions::new().with_revision(revision));
    let response = client.get(key, options).await?;
    let revision = revision_of(response.header());
    Ok((response.kvs().first().map(entry), revision))
}

/// The leader key and the flag, read at one revision.
pub async fn snapshot(client: &mut Client, keys: &Keys) -> Result<Snapshot, etcd_client::Error> {
    let (leader, revision) = read(client, &keys.leader(), None).await?;
    let (config_ok, _) = read(client, &keys.config_ok(), Some(revision)).await?;
    Ok(Snapshot {
        leader,
        config_ok,
        revision,
    })
}

/// A session's lease, kept alive by its keeper; the answers come on its stream.
pub struct SessionLease {
    /// What the election needs to know.
    pub opened: Opened,
    /// Sends keep-alives.
    pub keeper: LeaseKeeper,
    /// Their answers, in order.
    pub answers: LeaseKeepAliveStream,
}

impl std::fmt::Debug for SessionLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLease")
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

/// Opens a session as [`Action::Open`](crate::election::Action::Open) says: resigns `resign`
/// and revokes `revoke` (best effort), grants a lease of `ttl`, starts keeping it alive, and
/// reads the keys. The watch is started by [`watch`] from the snapshot's revision.
pub async fn open(
    client: &mut Client,
    keys: &Keys,
    ttl: Duration,
    resign: Option<&Fence>,
    revoke: Option<i64>,
) -> Result<SessionLease, etcd_client::Error> {
    let resigned = match resign {
        Some(fence) => Some(fenced_delete(client, fence).await),
        None => None,
    };
    if let Some(lease) = revoke {
        // The lease may be gone already; either way it holds nothing of ours afterwards.
        let _ = client.lease_revoke(lease).await;
    }
    let granted_at = Instant::now();
    let grant = client
        .lease_grant(ttl.as_secs().max(1) as i64, None)
        .await?;
    let (keeper, answers) = client.lease_keep_alive(grant.id()).await?;
    let snapshot = snapshot(client, keys).await?;
    Ok(SessionLease {
        opened: Opened {
            lease: grant.id(),
            ttl: Duration::from_secs(grant.ttl().max(1).unsigned_abs()),
            granted_at,
            snapshot,
            resigned,
        },
        keeper,
        answers,
    })
}

/// Watches the service's keys from `from_revision` on.
pub async fn watch(
    client: &mut Client,
    keys: &Keys,
    from_revision: i64,
) -> Result<WatchStream, etcd_client::Error> {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(from_revision);
    client.watch(keys.prefix(), Some(options)).await
}

/// The changes of a watch answer that concern the election (other keys under the prefix are
/// left out); `Err` when etcd cancelled the watch.
pub fn changes(keys: &Keys, response: &WatchResponse) -> Result<Vec<Change>, String> {
    if response.canceled() {
        return Err(format!(
            "etcd cancelled the watch: {} (compacted at {})",
            response.cancel_reason(),
            response.compact_revision()
        ));
    }
    Ok(response
        .events()
        .iter()
        .filter_map(|event| {
            let kv = event.kv()?;
            let key = keys.name_of(kv.key())?;
            // A delete carries a tombstone: version 0, the revision of the delete. (Read this way
            // rather than through the event type, which panics on a type it does not know.)
            Some(if kv.version() == 0 {
                Change::Delete {
                    key,
                    revision: kv.mod_revision(),
                }
            } else {
                Change::Put {
                    key,
                    entry: entry(kv),
                }
            })
        })
        .collect())
}

/// The campaign, as Python's `nominate_as_leader`:
/// `IF version(leader) == 0 THEN put(leader, instance_id, lease)`; when it does not go through,
/// the leader key as it is now.
pub async fn campaign(
    client: &mut Client,
    keys: &Keys,
    instance_id: &str,
    lease: i64,
) -> Result<CampaignResult, etcd_client::Error> {
    let key = keys.leader();
    let txn = Txn::new()
        .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key.clone(),
            instance_id,
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let response = client.txn(txn).await?;
    let revision = revision_of(response.header());
    if response.succeeded() {
        return Ok(CampaignResult {
            won: true,
            leader: Some(Entry {
                value: instance_id.to_owned(),
                create_revision: revision,
                mod_revision: revision,
                lease,
            }),
            revision,
        });
    }
    let (leader, revision) = read(client, &key, None).await?;
    Ok(CampaignResult {
        won: false,
        leader,
        revision,
    })
}

/// The comparisons every leader-only write makes: the leader key is still the one `fence`
/// holds (same create revision, same value).
fn fenced(fence: &Fence) -> [Compare; 2] {
    [
        Compare::create_revision(
            fence.leader_key.clone(),
            CompareOp::Equal,
            fence.create_revision,
        ),
        Compare::value(
            fence.leader_key.clone(),
            CompareOp::Equal,
            fence.instance_id.clone(),
        ),
    ]
}

async fn fenced_txn(client: &mut Client, fence: &Fence, op: TxnOp) -> WriteOutcome {
    let txn = Txn::new().when(fenced(fence)).and_then([op]);
    match client.txn(txn).await {
        Ok(response) if response.succeeded() => WriteOutcome::Written {
            revision: revision_of(response.header()),
        },
        Ok(_) => WriteOutcome::Refused,
        Err(e) => WriteOutcome::Failed(e.to_string()),
    }
}

/// Puts `value` under `key` if `fence` still holds the leadership; under `lease` when given.
pub async fn fenced_put(
    client: &mut Client,
    fence: &Fence,
    key: &str,
    value: &str,
    lease: Option<i64>,
) -> WriteOutcome {
    let options = lease.map(|lease| PutOptions::new().with_lease(lease));
    fenced_txn(client, fence, TxnOp::put(key, value, options)).await
}

/// Resigns: deletes the leader key if `fence` still holds it.
pub async fn fenced_delete(client: &mut Client, fence: &Fence) -> WriteOutcome {
    let key = fence.leader_key.clone();
    fenced_txn(client, fence, TxnOp::delete(key, None)).await
}
