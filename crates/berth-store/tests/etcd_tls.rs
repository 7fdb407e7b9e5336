//! The etcd backend over TLS (Docker's `--cluster-store-opt kv.cacertfile=.. kv.certfile=..
//! kv.keyfile=..`) against a real etcd (Debian's etcd-server) serving client TLS in a test
//! namespace, with client certificates required (`--client-cert-auth`): certificates made at
//! start with `openssl` (berth_testhost's `Etcd::start_tls`). A client with the CA and the client
//! certificate works (the conformance suite, and an etcd killed and restarted); a plain-text
//! client, a CA that did not sign etcd's certificate, and a client certificate etcd does not trust
//! fail at once with errors that say why and name the endpoint; TLS files that are missing or of
//! the wrong kind fail naming the file. Run as root.
//!
//! Each test starts an etcd of its own (a fraction of a second), in a namespace of its own, so
//! the tests run in parallel; each etcd is killed and its namespace and files deleted when its
//! test ends, also on panic.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_store::{
    Error, EtcdConfig, EtcdStore, EtcdTls, Event, Expect, KvStore, Poll, Txn, conformance,
};
use berth_testhost::TestHost;
use berth_testhost::etcd::{Etcd, EtcdTlsFiles};

/// The request timeout of the stores these tests make.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The connect timeout of the stores these tests make.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How late after the request timeout a failure may come.
const SLACK: Duration = Duration::from_secs(1);

/// An etcd serving TLS in a test host. Fields drop in order: etcd before its namespace.
struct Server {
    etcd: Etcd,
    host: TestHost,
}

impl Server {
    fn start() -> Server {
        let (host, etcd) = Etcd::in_new_host_tls().unwrap();
        assert!(etcd.client_url().starts_with("https://"));
        Server { etcd, host }
    }

    fn files(&self) -> &EtcdTlsFiles {
        self.etcd.tls().expect("etcd serves TLS")
    }

    fn url(&self) -> String {
        self.etcd.client_url()
    }

    /// TLS with etcd's CA and its client certificate.
    fn good_tls(&self) -> EtcdTls {
        let f = self.files();
        EtcdTls::new(&f.ca, &f.cert, &f.key)
    }

    /// A configuration for `url` (without TLS), connecting from inside the server's namespace.
    fn config(&self, url: &str) -> EtcdConfig {
        static ROOTS: AtomicUsize = AtomicUsize::new(0);
        let netns = std::fs::File::open(self.host.path()).unwrap();
        EtcdConfig::new([url.to_owned()])
            .with_netns(netns.into())
            .with_root(format!("tls-{}/", ROOTS.fetch_add(1, Ordering::Relaxed)))
            .with_request_timeout(TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
    }

    /// A store over TLS with etcd's CA and client certificate, under a root of its own.
    fn store(&self) -> EtcdStore {
        EtcdStore::connect(self.config(&self.url()).with_tls(self.good_tls())).unwrap()
    }
}

/// Connects with `config` and returns the error, checking that it came within the timeouts.
fn connect_fails(what: &str, config: EtcdConfig) -> Error {
    let t = Instant::now();
    let r = EtcdStore::connect(config);
    let took = t.elapsed();
    let err = match r {
        Ok(s) => panic!("{what}: connected to {}", s.describe()),
        Err(e) => e,
    };
    assert!(
        took <= TIMEOUT + SLACK,
        "{what}: failed after {took:?}, more than the request timeout {TIMEOUT:?} + {SLACK:?}"
    );
    eprintln!("{what}: after {took:?}: {err}");
    err
}

/// The store and message of an `Unavailable`, which names `url`.
fn unavailable(what: &str, err: &Error, url: &str) -> String {
    match err {
        Error::Unavailable { store, message } => {
            assert!(store.contains(url), "{what}: the error names {url}: {err}");
            message.clone()
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

/// The message of a `Backend` error.
fn backend(what: &str, err: &Error) -> String {
    match err {
        Error::Backend { message, .. } => message.clone(),
        other => panic!("{what}: expected Backend, got {other:?}"),
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn next(w: &berth_store::Watch) -> Event {
    w.recv_timeout(Duration::from_secs(5))
        .expect("an event within 5 s")
}

#[test]
fn with_the_ca_and_a_client_certificate_puts_gets_commits_watches_and_leases_work() {
    let server = Server::start();
    let s = server.store();
    assert!(s.describe().contains(&server.url()), "{}", s.describe());
    let start = s.revision().unwrap();
    let w = s.watch("n/", start).unwrap();

    let r1 = s.put("n/a", b"1").unwrap();
    let got = s.get("n/a").unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.mod_revision), (&b"1"[..], r1));

    let r2 = s
        .commit(
            Txn::new()
                .when("n/a", Expect::Revision(r1))
                .when("n/b", Expect::Absent)
                .put("n/a", b"2".to_vec())
                .put("n/b", b"x".to_vec()),
        )
        .unwrap();
    let conflict = s
        .commit(Txn::new().when("n/a", Expect::Revision(r1)).delete("n/a"))
        .unwrap_err();
    assert!(
        matches!(&conflict, Error::Conflict { key, .. } if key == "n/a"),
        "{conflict:?}"
    );
    let listing = s.list("n/").unwrap();
    let keys: Vec<&str> = listing.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["n/a", "n/b"]);

    let lease = s.grant_lease(Duration::from_secs(5)).unwrap();
    let r3 = s
        .commit(Txn::new().put_with_lease("n/leased", b"l".to_vec(), lease))
        .unwrap();
    assert_eq!(s.get("n/leased").unwrap().unwrap().lease, Some(lease));
    assert_eq!(s.keep_alive(lease).unwrap(), Duration::from_secs(5));
    s.revoke_lease(lease).unwrap();
    assert_eq!(s.get("n/leased").unwrap(), None, "revoking deletes the key");

    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(match next(&w) {
            Event::Put(e) => (e.key, e.mod_revision, "put"),
            Event::Delete { key, revision } => (key, revision, "delete"),
            other => panic!("unexpected {other:?}"),
        });
    }
    let r4 = seen[4].1;
    assert!(r4 > r3);
    let want = [
        ("n/a", r1, "put"),
        ("n/a", r2, "put"),
        ("n/b", r2, "put"),
        ("n/leased", r3, "put"),
        ("n/leased", r4, "delete"),
    ];
    let seen: Vec<(&str, u64, &str)> = seen.iter().map(|(k, r, e)| (k.as_str(), *r, *e)).collect();
    assert_eq!(seen, want, "the watch sees every change over TLS");
    assert_eq!(w.poll(Duration::from_millis(200)), Poll::Idle);
}

#[test]
fn the_conformance_suite_passes_over_tls() {
    let server = Server::start();
    for (name, check) in conformance::CHECKS {
        eprintln!("conformance check {name} over TLS");
        check(&|| Arc::new(server.store()) as Arc<dyn KvStore>);
    }
}

#[test]
fn a_killed_tls_etcd_fails_requests_and_a_restarted_one_serves_again() {
    let server = Server::start();
    let url = server.url();
    let files = server.files().clone();
    let s = server.store();
    let before = s.put("k/before", b"1").unwrap();

    server.etcd.kill().unwrap();
    assert!(!server.etcd.healthy());
    let t = Instant::now();
    let err = s.get("k/before").unwrap_err();
    assert!(t.elapsed() <= TIMEOUT + SLACK, "{:?}", t.elapsed());
    unavailable("get from a killed etcd", &err, &url);

    server.etcd.restart().unwrap();
    assert!(server.etcd.healthy(), "the health check passes over TLS");
    assert_eq!(server.etcd.client_url(), url);
    assert_eq!(server.etcd.tls(), Some(&files), "the same certificates");
    // The store reconnects by itself, over TLS again.
    assert_eq!(s.get("k/before").unwrap().unwrap().mod_revision, before);
    let after = s.put("k/after", b"2").unwrap();
    assert!(after > before);
    // A new store with the same files trusts the restarted server.
    assert_eq!(
        server.store().revision().unwrap(),
        after,
        "a new store sees the same etcd"
    );
}

#[test]
fn a_plain_text_client_fails_at_once_and_is_told_about_tls() {
    let server = Server::start();
    let url = server.url();
    let http = url.replacen("https://", "http://", 1);

    let err = connect_fails("http:// to etcd serving TLS", server.config(&http));
    let message = unavailable("http:// to etcd serving TLS", &err, &http);
    assert!(
        message.contains("TLS") && message.contains("https://"),
        "the error says etcd may serve TLS: {message}"
    );

    let err = connect_fails("https:// without TLS files", server.config(&url));
    let message = unavailable("https:// without TLS files", &err, &url);
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "the error says TLS refused etcd's certificate: {message}"
    );

    // TLS files with an http:// endpoint: a configuration error, before any connection.
    let err = connect_fails(
        "TLS files with http://",
        server.config(&http).with_tls(server.good_tls()),
    );
    assert!(err.to_string().contains(&http), "{err}");
    let message = backend("TLS files with http://", &err);
    assert!(message.contains("HTTPS"), "{message}");
    assert!(message.contains(&shown(&server.files().cert)), "{message}");
}

#[test]
fn a_ca_that_did_not_sign_etcds_certificate_fails_saying_so() {
    let server = Server::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    // Another CA, with a server certificate of its own for the same IP: it did not sign etcd's.
    let other = EtcdTlsFiles::create(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    let own = server.files();
    let tls = EtcdTls::new(&other.ca, &own.cert, &own.key);

    let err = connect_fails("another CA", server.config(&url).with_tls(tls));
    let message = unavailable("another CA", &err, &url);
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "the error says TLS refused etcd's certificate: {message}"
    );
    assert!(
        message.contains(&shown(&other.ca)),
        "it names the CA file: {message}"
    );
}

/// A plain etcd client of etcd_client with these TLS options, inside the server's namespace:
/// the result of one read.
fn raw_read(server: &Server, tls: etcd_client::TlsOptions) -> Result<(), etcd_client::Error> {
    let url = server.url();
    server
        .host
        .exec(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let options = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout(TIMEOUT)
                    .with_tls(tls);
                let mut client = etcd_client::Client::connect([url], Some(options)).await?;
                client.get("probe", None).await.map(drop)
            })
        })
        .unwrap()
}

#[test]
fn a_client_without_a_certificate_etcd_trusts_is_refused() {
    use etcd_client::{Certificate, Identity, TlsOptions};

    let server = Server::start();
    let url = server.url();
    let own = server.files().clone();
    let pem = |p: &Path| std::fs::read(p).unwrap();
    let ca = || Certificate::from_pem(pem(&own.ca));

    // EtcdTls always carries a client certificate; a bare etcd client shows etcd refuses a
    // client without one (and takes one with the certificate: the refusal is the missing one).
    let bare = raw_read(&server, TlsOptions::new().ca_certificate(ca()));
    assert!(bare.is_err(), "etcd served a client without certificate");
    let with = TlsOptions::new()
        .ca_certificate(ca())
        .identity(Identity::from_pem(pem(&own.cert), pem(&own.key)));
    raw_read(&server, with).unwrap();

    // A client certificate of another CA, which etcd's --trusted-ca-file does not hold.
    let dir = tempfile::tempdir().unwrap();
    let other = EtcdTlsFiles::create(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    let tls = EtcdTls::new(&own.ca, &other.cert, &other.key);
    let err = connect_fails(
        "a client certificate of another CA",
        server.config(&url).with_tls(tls),
    );
    let message = unavailable("a client certificate of another CA", &err, &url);
    assert!(
        message.contains("certificate") && message.contains(&shown(&other.cert)),
        "the error says etcd may have refused the client certificate, naming it: {message}"
    );
    let log = server.etcd.log_tail(20_000);
    assert!(
        log.contains("rejected connection") && log.contains("certificate"),
        "etcd refused the certificate: {log}"
    );
}

#[test]
fn missing_or_wrong_tls_files_are_named() {
    let server = Server::start();
    let url = server.url();
    let own = server.files().clone();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let other = EtcdTlsFiles::create(dir.path(), "127.0.0.1".parse().unwrap()).unwrap();
    let dir_path = dir.path().to_path_buf();

    let cases = [
        (
            "a missing CA file",
            EtcdTls::new(&missing, &own.cert, &own.key),
            vec![&missing],
        ),
        (
            "a missing certificate",
            EtcdTls::new(&own.ca, &missing, &own.key),
            vec![&missing],
        ),
        (
            "a missing key",
            EtcdTls::new(&own.ca, &own.cert, &missing),
            vec![&missing],
        ),
        (
            "a directory as CA file",
            EtcdTls::new(dir.path(), &own.cert, &own.key),
            vec![&dir_path],
        ),
        (
            "a key as CA file",
            EtcdTls::new(&own.key, &own.cert, &own.key),
            vec![&own.key],
        ),
        (
            "a key as certificate",
            EtcdTls::new(&own.ca, &own.key, &own.key),
            vec![&own.key],
        ),
        (
            "a certificate as key",
            EtcdTls::new(&own.ca, &own.cert, &own.cert),
            vec![&own.cert],
        ),
        (
            "a key of another certificate",
            EtcdTls::new(&own.ca, &own.cert, &other.key),
            vec![&own.cert, &other.key],
        ),
    ];
    for (what, tls, named) in cases {
        let err = connect_fails(what, server.config(&url).with_tls(tls));
        assert!(
            err.to_string().contains(&url),
            "{what}: names the store: {err}"
        );
        let message = backend(what, &err);
        for path in named {
            assert!(
                message.contains(&shown(path)),
                "{what}: the error names {}: {message}",
                path.display()
            );
        }
    }
}
