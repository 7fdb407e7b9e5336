//! The daemon's cluster settings as the operator writes them: arbitrary `--cluster-store`,
//! `--cluster-advertise` and `--cluster-store-opt` strings into `berth_cli::cluster::parse`.
//! Always `Ok` or a usage error that names the cluster flag at fault, never a panic. Settings
//! that parse, written back as flags (the store URL from the endpoints and root, the
//! advertise address or interface, the same options), parse to the same settings.
//!
//! Input layout: `arbitrary` splits the input into the three arguments (see `Flags`).
#![no_main]

use arbitrary::Arbitrary;
use berth_cli::Error;
use berth_cli::cluster::{Advertise, ClusterSettings, parse};
use libfuzzer_sys::fuzz_target;

/// The three flags: the store URL, the advertise address, and the store options (any number).
#[derive(Debug, Arbitrary)]
struct Flags {
    store: Option<String>,
    advertise: Option<String>,
    opts: Vec<String>,
}

/// The `--cluster-store` and `--cluster-advertise` values that ask for `s`.
fn written_back(s: &ClusterSettings) -> (String, String) {
    let hosts: Vec<&str> = s
        .endpoints
        .iter()
        .map(|e| {
            e.strip_prefix("https://")
                .or_else(|| e.strip_prefix("http://"))
                .expect("an endpoint is an http(s) URL")
        })
        .collect();
    let store = format!("etcd://{}/{}", hosts.join(","), s.root);
    let advertise = match &s.advertise {
        Advertise::Addr(a) => a.to_string(),
        Advertise::Interface(name) => name.clone(),
    };
    (store, advertise)
}

fuzz_target!(|flags: Flags| {
    let Flags {
        store,
        advertise,
        opts,
    } = flags;
    match parse(store.as_deref(), advertise.as_deref(), &opts) {
        Ok(None) => assert!(store.is_none() && advertise.is_none() && opts.is_empty()),
        Ok(Some(s)) => {
            assert!(!s.endpoints.is_empty(), "{s:?}");
            assert!(s.root.ends_with('/') && s.root != "/", "{s:?}");
            let (store, advertise) = written_back(&s);
            match parse(Some(&store), Some(&advertise), &opts) {
                Ok(Some(again)) => assert_eq!(again, s, "{store:?} {advertise:?}"),
                other => panic!("{store:?} {advertise:?} {opts:?} written back: {other:?}"),
            }
        }
        Err(Error::Usage(message)) => assert!(message.contains("cluster"), "{message}"),
        Err(e) => panic!("not a usage error: {e:?}"),
    }
});
