//! Arbitrary bytes as a Docker client `config.json` into `berth::proxy::ClientProxies::parse`:
//! a configuration or an error naming the file, never a panic. What parses gives, for a fixed
//! daemon host and for every host it has an entry for, an environment of the ten proxy names
//! only, each once, both cases of a setting together; with all ten names set explicitly,
//! nothing is added.
//!
//! Input layout: the whole input is the file.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use berth::proxy::{ClientProxies, PROXY_ENV_NAMES};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "/home/fuzz/.docker/config.json";
const DAEMON_HOST: &str = "unix:///run/berth/berth.sock";

/// The invariants of one `env_for` answer with no explicit environment.
fn check(proxies: &ClientProxies, host: &str) {
    let added = proxies.env_for(host, &[] as &[&str]);
    let mut seen = HashSet::new();
    for entry in &added {
        let (name, value) = entry.split_once('=').expect("KEY=VALUE");
        assert!(PROXY_ENV_NAMES.contains(&name), "{name} in {added:?}");
        assert!(seen.insert(name), "{name} twice in {added:?}");
        assert!(!value.is_empty(), "{entry} added with an empty value");
    }
    // Nothing explicit: every setting comes in both cases, upper first, with the same value.
    assert_eq!(added.len() % 2, 0, "{added:?}");
    for pair in added.chunks(2) {
        let (upper, value) = pair[0].split_once('=').expect("KEY=VALUE");
        assert_eq!(
            pair[1],
            format!("{}={value}", upper.to_lowercase()),
            "{added:?}"
        );
    }
    // Something is added exactly when the entry that applies has a non-empty setting.
    let sets_something = proxies.for_host(host).is_some_and(|c| {
        [
            &c.http_proxy,
            &c.https_proxy,
            &c.ftp_proxy,
            &c.no_proxy,
            &c.all_proxy,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()))
    });
    assert_eq!(added.is_empty(), !sets_something, "{added:?}");
    assert!(proxies.env_for(host, &PROXY_ENV_NAMES).is_empty());
}

fuzz_target!(|data: &[u8]| {
    match ClientProxies::parse(data, Path::new(FILE)) {
        Ok(proxies) => {
            check(&proxies, DAEMON_HOST);
            for (host, _) in proxies.iter().take(8) {
                check(&proxies, host);
            }
        }
        Err(e) => {
            assert_eq!(e.path(), Path::new(FILE));
            assert!(e.to_string().contains(FILE), "{e}");
        }
    }
});
