//! The etcd v3 backend: [`EtcdStore`], a [`KvStore`] kept in an etcd cluster shared by hosts.
//!
//! See [`EtcdStore`].

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, KvClient,
    LeaseClient, PutOptions, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};
use tokio::sync::oneshot;

use crate::{
    Entry, Error, Expect, KvStore, LeaseId, Listing, Op, Result, Txn, Watch, check_key,
    check_lease_ttl,
};

mod runtime;
mod tls;
mod wire;

use runtime::{Failure, Runtime};
use wire::{
    Forward, detail, failure, header_revision, is_compacted, is_lease_not_found, last_op_per_key,
    lease_i64, lease_of, prefix_end, strip_root, to_i64, to_u64,
};

/// The key prefix berth's keys go under unless told otherwise.
pub const DEFAULT_ROOT: &str = "berth/";
/// How long one request may take unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a connection may take unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most entries one read of a listing asks for; longer listings are read in pages at one
/// revision.
const LIST_PAGE: i64 = 1000;
/// The largest gRPC message accepted from etcd (a page of a listing, a watch response).
const MAX_MESSAGE: usize = 64 << 20;
/// A key no berth key can be (keys are under the root and never hold NUL): cheap reads of
/// revisions use it.
const PROBE_KEY: &[u8] = b"\0";

/// TLS material for the connections to etcd (PEM files). The endpoints must be `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that signed the servers' certificates.
    pub ca_file: PathBuf,
    /// This client's certificate (for servers that require client certificates).
    pub cert_file: PathBuf,
    /// The key of `cert_file`.
    pub key_file: PathBuf,
}

impl EtcdTls {
    /// TLS with the CA file, and this client's certificate and key files.
    pub fn new(
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> EtcdTls {
        EtcdTls {
            ca_file: ca_file.into(),
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }
}

/// Where and how [`EtcdStore::connect`] reaches etcd.
#[derive(Debug)]
pub struct EtcdConfig {
    /// The client URLs of the cluster's members (`http://10.0.0.1:2379`, `https://...`).
    pub endpoints: Vec<String>,
    /// TLS material, for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// The prefix every berth key goes under in etcd ([`DEFAULT_ROOT`]). Stores with different
    /// roots on one cluster do not see each other's keys (they share its revisions).
    pub root: String,
    /// The longest one request may take before it fails with [`Error::Unavailable`]
    /// ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// The longest opening a connection may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// The network namespace whose network the connections use (the calling thread's when
    /// `None`): the store's thread enters it before it opens any socket.
    pub netns: Option<OwnedFd>,
}

impl EtcdConfig {
    /// A configuration for these endpoints, with the defaults for everything else.
    pub fn new<I, S>(endpoints: I) -> EtcdConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            root: DEFAULT_ROOT.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            netns: None,
        }
    }

    /// Uses TLS with this material.
    pub fn with_tls(mut self, tls: EtcdTls) -> EtcdConfig {
        self.tls = Some(tls);
        self
    }

    /// Puts every key under `root` instead of [`DEFAULT_ROOT`].
    pub fn with_root(mut self, root: impl Into<String>) -> EtcdConfig {
        self.root = root.into();
        self
    }

    /// Bounds each request by `timeout` instead of [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> EtcdConfig {
        self.request_timeout = timeout;
        self
    }

    /// Bounds opening a connection by `timeout` instead of [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> EtcdConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Connects from inside the network namespace `netns` (an open `/run/netns/NAME` or
    /// `/proc/PID/ns/net`).
    pub fn with_netns(mut self, netns: OwnedFd) -> EtcdConfig {
        self.netns = Some(netns);
        self
    }
}

/// A [`KvStore`] kept in etcd (v3 API, 3.4 or later).
///
/// Every berth key lives under a root prefix ([`EtcdConfig::root`], `berth/` by default) in
/// etcd; revisions, leases and watches are etcd's own, so two hosts using the same cluster and
/// root see one store. The API is synchronous over etcd's asynchronous gRPC client: the store owns
/// one thread running a single-threaded tokio runtime, which every request is handed to (and which
/// first enters [`EtcdConfig::netns`], when given, so that every connection lives in that network
/// namespace). Each request is bounded by [`EtcdConfig::request_timeout`]: a server that is down
/// or unreachable fails it with [`Error::Unavailable`], never hangs it.
///
/// How the [`KvStore`] contract maps onto etcd:
///
/// - a [`Txn`] is one etcd transaction. `Absent` is `create_revision == 0`, `Present` is
///   `create_revision > 0`, `Revision(r)` is `mod_revision == r`; when they fail, the else branch
///   reads every condition key so that the [`Error::Conflict`] names the first that failed, as
///   the local backends do. etcd refuses two writes to one key in a transaction, so only the last
///   op on each key is sent (the same final state; a put with a lease that a later op on the same
///   key replaces is therefore not checked against that lease).
/// - [`KvStore::compact_revision`] is etcd's compact revision (the oldest revision still
///   readable) minus one. etcd 3.4 has no request that tells it: it is found by a binary search of
///   readable revisions (a few dozen small reads at most; it is rarely called).
/// - a watch is an etcd watch from `after_revision + 1`. A compacted start ends it with
///   [`Event::Compacted`]; a broken stream or a server gone ends it with [`Event::Error`] (it is
///   not reconnected: watch again from the last revision seen).
/// - leases are etcd leases: a time to live is rounded up to whole seconds, and etcd raises it to
///   its minimum (one and a half election timeouts, at least one second).
///
/// Dropping the store stops its thread: its open watches end.
///
/// ```no_run
/// use berth_store::{EtcdConfig, EtcdStore, KvStore};
/// use std::time::Duration;
///
/// let config = EtcdConfig::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
///     .with_root("berth/")
///     .with_request_timeout(Duration::from_secs(3));
/// let store = EtcdStore::connect(config)?;
/// let rev = store.put("networks/abc", b"{}")?;
/// let watch = store.watch("networks/", rev)?;
/// # drop(watch);
/// # Ok::<(), berth_store::Error>(())
/// ```
///
/// [`Event::Compacted`]: crate::Event::Compacted
/// [`Event::Error`]: crate::Event::Error
pub struct EtcdStore {
    describe: String,
    /// The TLS files, to explain failures with.
    tls: Option<EtcdTls>,
    root: String,
    request_timeout: Duration,
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    /// The time to live etcd granted each lease this store granted (keep-alive answers it).
    granted: Mutex<HashMap<i64, Duration>>,
    // Declared last: dropped (its thread stopped) after the clients.
    runtime: Runtime,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("store", &self.describe)
            .field("root", &self.root)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers (one read); fails with
    /// [`Error::Unavailable`] when it does not within the request timeout (retry later), and
    /// [`Error::Backend`] when the configuration is wrong (no endpoint, a TLS file that cannot be
    /// read or holds no PEM block of its kind, a key that does not match its certificate, TLS
    /// files with an `http://` endpoint, the namespace cannot be entered; the error names the
    /// file). Over TLS, a server certificate the CA file did not sign, or a client certificate
    /// etcd refuses, fails with [`Error::Unavailable`] saying so.
    pub fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        let describe = format!("etcd {}", config.endpoints.join(","));
        let backend = |message: String| Error::Backend {
            store: describe.clone(),
            message,
        };
        if config.endpoints.is_empty() {
            return Err(backend("no endpoint given".to_owned()));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), config.request_timeout);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls::options(tls).map_err(backend)?);
        }
        let runtime = Runtime::start(config.netns).map_err(backend)?;
        let endpoints = config.endpoints.clone();
        // The client connects lazily: what fails here is the configuration (the URLs, the TLS
        // material), not etcd.
        let client = match runtime.run(config.request_timeout, async move {
            Client::connect(endpoints, Some(options)).await
        }) {
            Ok(client) => client,
            Err(Failure::Etcd(e)) => {
                return Err(backend(tls::setup_failed(config.tls.as_ref(), &detail(&e))));
            }
            Err(f) => {
                return Err(failure(
                    &describe,
                    config.tls.as_ref(),
                    config.request_timeout,
                    f,
                ));
            }
        };
        let store = EtcdStore {
            tls: config.tls,
            root: config.root,
            request_timeout: config.request_timeout,
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            lease: client.lease_client(),
            granted: Mutex::new(HashMap::new()),
            runtime,
            describe,
        };
        store.revision()?;
        Ok(store)
    }

    /// `etcd ENDPOINT,ENDPOINT...`: how errors name the store.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The prefix berth's keys go under in etcd.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Compacts etcd's history up to `revision` and waits until the compacted entries are gone
    /// from its database: revisions before `revision` are no longer readable, watches from before
    /// it get [`Event::Compacted`], and [`KvStore::compact_revision`] becomes `revision - 1`. This
    /// compacts the whole cluster, every root (for tests and operators; etcd usually compacts
    /// itself, see its `--auto-compaction-*` flags).
    ///
    /// [`Event::Compacted`]: crate::Event::Compacted
    pub fn compact(&self, revision: u64) -> Result<()> {
        let rev = to_i64(revision);
        let mut kv = self.kv.clone();
        self.run(async move {
            kv.compact(rev, Some(CompactionOptions::new().with_physical()))
                .await
        })?;
        Ok(())
    }

    /// Runs a request on the store's thread, within the request timeout.
    fn run<T, F>(&self, request: F) -> Result<T>
    where
        F: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .run(self.request_timeout, request)
            .map_err(|f| self.error(f))
    }

    fn error(&self, f: Failure) -> Error {
        failure(&self.describe, self.tls.as_ref(), self.request_timeout, f)
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.root.len() + key.len());
        k.extend_from_slice(self.root.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The etcd key range of every key under `prefix`: (first key, range end).
    fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(prefix);
        if start.is_empty() {
            // etcd refuses an empty key; "\0" to "\0" is every key.
            return (vec![0], vec![0]);
        }
        let end = prefix_end(&start);
        (start, end)
    }

    fn entry(&self, kv: &KeyValue) -> Result<Entry> {
        Ok(Entry {
            key: strip_root(&self.root, kv.key(), &self.describe)?,
            value: kv.value().to_vec(),
            create_revision: to_u64(kv.create_revision()),
            mod_revision: to_u64(kv.mod_revision()),
            lease: lease_of(kv),
        })
    }

    /// Whether etcd can still read at `revision` (not compacted).
    fn readable(&self, revision: u64) -> Result<bool> {
        let mut kv = self.kv.clone();
        let rev = to_i64(revision);
        let read = self.runtime.run(self.request_timeout, async move {
            let options = GetOptions::new().with_count_only().with_revision(rev);
            kv.get(PROBE_KEY, Some(options)).await
        });
        match read {
            Ok(_) => Ok(true),
            Err(Failure::Etcd(e)) if is_compacted(&e) => Ok(false),
            Err(f) => Err(self.error(f)),
        }
    }

    /// Which of `leases` etcd does not know (the first, in order), after a transaction failed
    /// for an unknown lease.
    fn missing_lease(&self, leases: &[LeaseId]) -> LeaseId {
        for &lease in leases {
            let mut client = self.lease.clone();
            let id = lease_i64(lease);
            match self.runtime.run(self.request_timeout, async move {
                client.time_to_live(id, None).await
            }) {
                Ok(r) if r.ttl() < 0 => return lease,
                Err(Failure::Etcd(e)) if is_lease_not_found(&e) => return lease,
                _ => {}
            }
        }
        // Every lease lives now (granted again in between?): name the first.
        leases.first().copied().unwrap_or(LeaseId(0))
    }

    fn forget_lease(&self, id: i64) {
        self.granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

impl KvStore for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        check_key(key)?;
        let mut kv = self.kv.clone();
        let k = self.key(key);
        let resp = self.run(async move { kv.get(k, None).await })?;
        resp.kvs().first().map(|kv| self.entry(kv)).transpose()
    }

    fn list(&self, prefix: &str) -> Result<Listing> {
        let (mut from, end) = self.range(prefix);
        let mut listing = Listing::default();
        loop {
            let mut kv = self.kv.clone();
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if listing.revision != 0 {
                // Later pages are read at the first page's revision: one consistent listing.
                options = options.with_revision(to_i64(listing.revision));
            }
            let key = from.clone();
            let resp = self.run(async move { kv.get(key, Some(options)).await })?;
            if listing.revision == 0 {
                listing.revision = header_revision(resp.header());
            }
            for kv in resp.kvs() {
                listing.entries.push(self.entry(kv)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(listing),
            }
        }
    }

    fn commit(&self, txn: Txn) -> Result<u64> {
        for (key, _) in &txn.conditions {
            check_key(key)?;
        }
        for op in &txn.ops {
            check_key(op.key())?;
        }
        let ops = last_op_per_key(txn.ops);
        let mut compares = Vec::with_capacity(txn.conditions.len());
        let mut reads = Vec::with_capacity(txn.conditions.len());
        for (key, expect) in &txn.conditions {
            let k = self.key(key);
            compares.push(match *expect {
                Expect::Absent => Compare::create_revision(k.clone(), CompareOp::Equal, 0),
                Expect::Present => Compare::create_revision(k.clone(), CompareOp::Greater, 0),
                Expect::Revision(r) => match i64::try_from(r) {
                    // An absent key's mod revision is 0: `Revision(0)` holds for no key.
                    Ok(r) if r > 0 => Compare::mod_revision(k.clone(), CompareOp::Equal, r),
                    _ => Compare::create_revision(k.clone(), CompareOp::Less, 0),
                },
            });
            reads.push(TxnOp::get(k, Some(GetOptions::new().with_keys_only())));
        }
        let mut leases = Vec::new();
        let writes: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put(key, value) => TxnOp::put(self.key(&key), value, None),
                Op::PutWithLease(key, value, lease) => {
                    if !leases.contains(&lease) {
                        leases.push(lease);
                    }
                    let options = PutOptions::new().with_lease(lease_i64(lease));
                    TxnOp::put(self.key(&key), value, Some(options))
                }
                Op::Delete(key) => TxnOp::delete(self.key(&key), None),
            })
            .collect();
        let request = etcd_client::Txn::new()
            .when(compares)
            .and_then(writes)
            .or_else(reads);
        let mut kv = self.kv.clone();
        let resp = match self
            .runtime
            .run(self.request_timeout, async move { kv.txn(request).await })
        {
            Ok(resp) => resp,
            Err(Failure::Etcd(e)) if is_lease_not_found(&e) => {
                return Err(Error::LeaseNotFound {
                    lease: self.missing_lease(&leases),
                });
            }
            Err(f) => return Err(self.error(f)),
        };
        if resp.succeeded() {
            return Ok(header_revision(resp.header()));
        }
        let found = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| to_u64(kv.mod_revision())),
            _ => None,
        });
        for ((key, expect), found) in txn.conditions.iter().zip(found) {
            let holds = match (expect, found) {
                (Expect::Absent, None) | (Expect::Present, Some(_)) => true,
                (Expect::Revision(r), Some(f)) => *r == f,
                _ => false,
            };
            if !holds {
                return Err(Error::Conflict {
                    key: key.clone(),
                    expected: *expect,
                    found: found.map_or_else(|| "absent".to_owned(), |r| format!("revision {r}")),
                });
            }
        }
        Err(Error::Backend {
            store: self.describe.clone(),
            message: "etcd refused the transaction's conditions, but every condition held in \
                      what it read"
                .to_owned(),
        })
    }

    fn watch(&self, prefix: &str, after_revision: u64) -> Result<Watch> {
        let (key, end) = self.range(prefix);
        let start = to_i64(after_revision.saturating_add(1));
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(start);
        let (events, rx) = mpsc::channel();
        let (guard, dropped) = oneshot::channel::<()>();
        let mut client = self.watch.clone();
        let root = self.root.clone();
        let describe = self.describe.clone();
        // The watch is created (etcd answered) before this returns, so that a server that is
        // down fails the call rather than the stream.
        let stream = self.run(async move {
            let mut stream = client.watch(key, Some(options)).await?;
            let created = stream.message().await?;
            Ok((stream, created))
        })?;
        self.runtime.spawn(async move {
            let (mut stream, created) = stream;
            let forward = Forward {
                root,
                describe,
                events,
            };
            match created {
                Some(resp) => {
                    if !forward.deliver(resp) {
                        return;
                    }
                }
                None => {
                    forward.fail("etcd closed the watch stream as it was created".to_owned());
                    return;
                }
            }
            let mut dropped = dropped;
            loop {
                tokio::select! {
                    // The caller dropped its `Watch`: dropping the stream cancels etcd's watch.
                    _ = &mut dropped => return,
                    message = stream.message() => match message {
                        Ok(Some(resp)) => {
                            if !forward.deliver(resp) {
                                return;
                            }
                        }
                        Ok(None) => {
                            forward.fail("etcd closed the watch stream".to_owned());
                            return;
                        }
                        Err(e) => {
                            forward.fail(format!("the watch stream broke: {e}"));
                            return;
                        }
                    },
                }
            }
        });
        Ok(Watch::with_guard(rx, Box::new(guard)))
    }

    fn revision(&self) -> Result<u64> {
        let mut kv = self.kv.clone();
        let resp = self.run(async move {
            kv.get(PROBE_KEY, Some(GetOptions::new().with_count_only()))
                .await
        })?;
        Ok(header_revision(resp.header()))
    }

    fn compact_revision(&self) -> Result<u64> {
        // Revision 1 readable: nothing was compacted.
        if self.readable(1)? {
            return Ok(0);
        }
        // The current revision is always readable; find the oldest readable one.
        let (mut unreadable, mut readable) = (1, self.revision()?);
        while readable - unreadable > 1 {
            let mid = unreadable + (readable - unreadable) / 2;
            if self.readable(mid)? {
                readable = mid;
            } else {
                unreadable = mid;
            }
        }
        Ok(readable - 1)
    }

    fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        check_lease_ttl(ttl)?;
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let mut client = self.lease.clone();
        let resp = self.run(async move { client.grant(to_i64(secs), None).await })?;
        if !resp.error().is_empty() {
            return Err(Error::Backend {
                store: self.describe.clone(),
                message: format!("granting a lease: {}", resp.error()),
            });
        }
        let granted = Duration::from_secs(to_u64(resp.ttl()));
        self.granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(resp.id(), granted);
        Ok(LeaseId(to_u64(resp.id())))
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let id = lease_i64(lease);
        let mut client = self.lease.clone();
        // One keep-alive round trip: the client sends one request and reads its answer (ttl 0
        // for a lease etcd does not know).
        let renewed = self.runtime.run(self.request_timeout, async move {
            client.keep_alive(id).await.map(drop)
        });
        match renewed {
            Ok(()) => {}
            Err(Failure::Etcd(e)) if is_lease_not_found(&e) => {
                self.forget_lease(id);
                return Err(Error::LeaseNotFound { lease });
            }
            Err(f) => return Err(self.error(f)),
        }
        let known = self
            .granted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        if let Some(ttl) = known {
            return Ok(ttl);
        }
        // A lease granted by another store: ask etcd.
        let mut client = self.lease.clone();
        let resp = self.run(async move { client.time_to_live(id, None).await })?;
        if resp.ttl() < 0 {
            return Err(Error::LeaseNotFound { lease });
        }
        Ok(Duration::from_secs(to_u64(resp.granted_ttl())))
    }

    fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let id = lease_i64(lease);
        let mut client = self.lease.clone();
        let revoked = self
            .runtime
            .run(self.request_timeout, async move { client.revoke(id).await });
        self.forget_lease(id);
        match revoked {
            Ok(_) => Ok(()),
            Err(Failure::Etcd(e)) if is_lease_not_found(&e) => Err(Error::LeaseNotFound { lease }),
            Err(f) => Err(self.error(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_config_without_endpoints_is_refused() {
        let err = EtcdStore::connect(EtcdConfig::new(Vec::<String>::new())).unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let config = EtcdConfig::new(["https://127.0.0.1:1"]).with_tls(EtcdTls::new(
            "/nonexistent/ca.pem",
            "/nonexistent/c.pem",
            "/k.pem",
        ));
        let err = EtcdStore::connect(config).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
