//! Kernel tests of namespaced sysctls: written and read by berth inside a test namespace, checked
//! with `ip netns exec NAME sysctl`, and proven not to touch the machine's own values.

mod common;

use berth_netlink::{Error, sysctl_get, sysctl_set};
use common::*;

/// The machine's own value, read (never written) from this process's namespace.
fn own_value(key: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path)
        .ok()
        .map(|v| v.trim().to_owned())
}

#[test]
fn sysctls_are_set_and_read_inside_the_namespace_only() {
    let h = host();
    let ns = h.netns();
    // For each key: a value that differs from both the namespace's default and the machine's.
    let keys = [
        ("net.ipv4.ip_forward", ["1", "0"]),
        ("net.ipv4.conf.all.route_localnet", ["1", "0"]),
        ("net.ipv6.conf.all.disable_ipv6", ["1", "0"]),
        ("net.ipv6.conf.default.accept_dad", ["0", "2"]),
        ("net.ipv4.ip_default_ttl", ["77", "78"]),
    ];
    for (key, candidates) in keys {
        let machine_before = own_value(key);
        let ns_before = sysctl_get(ns, key).unwrap();
        assert_eq!(
            ns_before,
            ip_netns_sysctl(&h, key),
            "{key}: berth reads what sysctl reads"
        );
        let value = candidates
            .into_iter()
            .find(|v| Some(*v) != machine_before.as_deref() && *v != ns_before)
            .unwrap_or(candidates[0]);
        sysctl_set(ns, key, value).unwrap();
        assert_eq!(
            ip_netns_sysctl(&h, key),
            value,
            "{key} as seen by ip netns exec sysctl"
        );
        assert_eq!(sysctl_get(ns, key).unwrap(), value);
        assert_eq!(
            own_value(key),
            machine_before,
            "{key}: the machine's value must not change"
        );
    }
    // The slashed form reaches the same files (and allows names with dots).
    assert_eq!(
        sysctl_get(ns, "net/ipv4/ip_forward").unwrap(),
        sysctl_get(ns, "net.ipv4.ip_forward").unwrap()
    );
}

#[test]
fn bridge_nf_call_iptables_when_present() {
    let h = host();
    let key = "net.bridge.bridge-nf-call-iptables";
    let present = h
        .output(
            "test",
            &["-e", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
        )
        .expect("running test -e in the namespace")
        .status
        .success();
    if present {
        let machine_before = own_value(key);
        let before = sysctl_get(h.netns(), key).unwrap();
        let value = if before == "1" { "0" } else { "1" };
        sysctl_set(h.netns(), key, value).unwrap();
        assert_eq!(ip_netns_sysctl(&h, key), value);
        assert_eq!(
            own_value(key),
            machine_before,
            "the machine's value must not change"
        );
    } else {
        eprintln!("NOTE: no br_netfilter in this kernel; checking the NotFound error instead");
        let e = sysctl_get(h.netns(), key).unwrap_err();
        assert!(e.is_not_found() && e.to_string().contains(key), "{e}");
    }
}

#[test]
fn bad_keys_missing_keys_and_bad_values_are_typed_errors() {
    let h = host();
    let ns = h.netns();
    for bad in [
        "",
        "/proc/sys/net/ipv4/ip_forward",
        "net/../kernel/hostname",
        "kernel.hostname",
        "net..ipv4",
        "net/./ipv4/ip_forward",
    ] {
        let e = sysctl_get(ns, bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad:?}: {e:?}");
        let e = sysctl_set(ns, bad, "1").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad:?}: {e:?}");
    }
    let e = sysctl_get(ns, "net.ipv4.no_such_key").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("net.ipv4.no_such_key"), "{e}");
    let e = sysctl_set(ns, "net.ipv4.conf.nosuchdev0.forwarding", "1").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let e = sysctl_set(ns, "net.ipv4.ip_forward", "yes").unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("net.ipv4.ip_forward"), "{e}");
    let e = sysctl_set(ns, "net.ipv4.ip_forward", "1\n0").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert_eq!(
        ip_netns_sysctl(&h, "net.ipv4.ip_forward"),
        "0",
        "nothing was written"
    );
}

/// A handle keeps its namespace's directories under `/proc/sys/net` open after the first key:
/// keys of interfaces made later are still found, and each handle reaches its own namespace
/// only, whichever handle was used first.
#[test]
fn kept_directories_see_later_interfaces_and_only_their_own_namespace() {
    let (h1, h2) = (host(), host());
    // Opens (and keeps) the ipv6 and ipv4 directories of each namespace.
    for h in [&h1, &h2] {
        assert_eq!(
            sysctl_get(h.netns(), "net.ipv6.conf.all.disable_ipv6").unwrap(),
            "0"
        );
        sysctl_get(h.netns(), "net.ipv4.ip_default_ttl").unwrap();
    }
    let e = sysctl_set(h1.netns(), "net.ipv6.conf.later0.disable_ipv6", "1").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    handle(&h1)
        .link_add(&berth_netlink::LinkSpec::bridge("later0"))
        .unwrap();
    sysctl_set(h1.netns(), "net.ipv6.conf.later0.disable_ipv6", "1").unwrap();
    assert_eq!(
        ip_netns_sysctl(&h1, "net.ipv6.conf.later0.disable_ipv6"),
        "1"
    );
    // The other namespace has no such interface, and its own values.
    let e = sysctl_get(h2.netns(), "net.ipv6.conf.later0.disable_ipv6").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    sysctl_set(h1.netns(), "net.ipv4.ip_default_ttl", "71").unwrap();
    sysctl_set(h2.netns(), "net.ipv4.ip_default_ttl", "72").unwrap();
    assert_eq!(ip_netns_sysctl(&h1, "net.ipv4.ip_default_ttl"), "71");
    assert_eq!(ip_netns_sysctl(&h2, "net.ipv4.ip_default_ttl"), "72");
    assert_eq!(
        sysctl_get(h1.netns(), "net.ipv4.ip_default_ttl").unwrap(),
        "71"
    );
    assert_eq!(
        sysctl_get(h2.netns(), "net.ipv4.ip_default_ttl").unwrap(),
        "72"
    );
    // A duplicated handle starts without kept directories and reaches the same namespace.
    let dup = h1.netns().try_clone().unwrap();
    assert_eq!(sysctl_get(&dup, "net.ipv4.ip_default_ttl").unwrap(), "71");
}
