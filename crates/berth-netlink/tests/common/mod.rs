//! Helpers shared by the kernel tests: fresh test hosts, and independent views of kernel state
//! through iproute2's JSON output (never through berth-netlink itself).

#![allow(dead_code, unreachable_pub)]

use std::process::Command;

use berth_netlink::Handle;
use berth_testhost::TestHost;
use serde_json::Value;

/// A fresh test host; fails loudly (never skips) when namespaces cannot be made.
pub fn host() -> TestHost {
    TestHost::new().expect("creating a test namespace (run the kernel tests as root)")
}

/// A berth-netlink handle inside a test host.
pub fn handle(host: &TestHost) -> Handle {
    Handle::open(host.netns()).expect("opening an rtnetlink socket in the test namespace")
}

/// Runs `ip -n HOST -j ARGS...` and parses its JSON output.
pub fn ip_json(host: &TestHost, args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = host.ip(&full).expect("ip -j");
    if out.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ip -j {args:?} printed bad JSON: {e}: {out}"))
}

/// `ip -n HOST -d -j link show dev NAME`, the one object; `None` if the link does not exist.
pub fn link_json(host: &TestHost, name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-n", host.name(), "-d", "-j", "link", "show", "dev", name])
        .output()
        .expect("running ip");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j link printed bad JSON");
    v.as_array().and_then(|a| a.first()).cloned()
}

/// Names of every link in the namespace, as iproute2 sees them.
pub fn ip_link_names(host: &TestHost) -> Vec<String> {
    ip_json(host, &["link", "show"])
        .as_array()
        .expect("an array of links")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_owned())
        .collect()
}

/// `ip -j addr show dev NAME`: the `addr_info` entries.
pub fn ip_addrs(host: &TestHost, dev: &str) -> Vec<Value> {
    let v = ip_json(host, &["addr", "show", "dev", dev]);
    v.as_array()
        .and_then(|a| a.first())
        .and_then(|l| l["addr_info"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// `bridge -j fdb show dev NAME`, run inside the namespace.
pub fn bridge_fdb(host: &TestHost, dev: &str) -> Vec<Value> {
    let out = host
        .run("bridge", &["-j", "fdb", "show", "dev", dev])
        .expect("bridge fdb show");
    if out.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out).expect("bridge -j printed bad JSON");
    v.as_array().cloned().unwrap_or_default()
}

/// Reads a sysctl independently: `ip netns exec HOST sysctl -n KEY`.
pub fn ip_netns_sysctl(host: &TestHost, key: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", host.name(), "sysctl", "-n", key])
        .output()
        .expect("running ip netns exec sysctl");
    assert!(
        out.status.success(),
        "sysctl -n {key} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Pings until answered, at most `tries` times (each try waits up to 1 s): links need a moment
/// after coming up. Use a single [`TestHost::ping`] for "must not answer".
pub fn ping_eventually(host: &TestHost, addr: &str, tries: usize) -> bool {
    (0..tries).any(|_| host.ping(addr))
}

/// Runs `ip -batch -` inside the host with the given commands (one per line).
pub fn ip_batch(host: &TestHost, lines: &str) {
    if let Err(e) = host.run_with_input("ip", &["-batch", "-"], lines) {
        panic!("ip -batch failed: {e}");
    }
}

/// Whether the kernel knows a link kind, checked with iproute2 in a throwaway link.
pub fn kernel_supports_kind(host: &TestHost, kind: &str) -> bool {
    let probe = "kindprobe0";
    let ok = host.ip(&["link", "add", probe, "type", kind]).is_ok();
    if ok {
        host.ip(&["link", "del", probe])
            .expect("deleting the probe link");
    }
    ok
}
