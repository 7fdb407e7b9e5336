//! Sysctl key validation: whatever the key, an accepted one maps to a file strictly under
//! /proc/sys/net, with no `.`/`..` or empty component, and a refused one is InvalidArgument.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|key: &str| {
    match berth_netlink::sysctl_path(key) {
        Ok(path) => {
            let rest = path
                .strip_prefix(Path::new("/proc/sys/net"))
                .expect("an accepted key stays under /proc/sys/net");
            assert!(rest.components().count() >= 1, "{key:?} names a file, not the root");
            for c in rest.components() {
                assert!(
                    matches!(c, Component::Normal(_)),
                    "{key:?} produced the component {c:?}"
                );
            }
        }
        Err(e) => assert!(
            matches!(e, berth_netlink::Error::InvalidArgument { .. }),
            "{key:?}: {e:?}"
        ),
    }
});
