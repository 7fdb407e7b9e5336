//! Arbitrary bytes as a CNI network configuration on berth-cni's stdin
//! (`berth_cni::NetConf::parse`) and through the pure planning that follows it: a configuration
//! or a CNI error, never a panic. An error has one of the spec's codes (or berth-cni's 100+)
//! and prints as the spec's JSON object; a configuration plans a network create, the connect's
//! options and a result without panicking, and its `prevResult` renders in every supported
//! version to JSON that reads back to the same addresses.
//!
//! Input layout: the whole input is the configuration.
#![no_main]

use berth::{NetworkInspect, SandboxNetworkInspect};
use berth_cni::env::CniArgs;
use berth_cni::naming;
use berth_cni::plan::{self, NetworkFacts};
use berth_cni::{CniError, CniResult, NetConf, SUPPORTED};
use libfuzzer_sys::fuzz_target;

/// The codes an error may carry.
const CODES: [u32; 14] = [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103];

fn check_error(e: &CniError) {
    assert!(CODES.contains(&e.code.number()), "{e}");
    let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).expect("error JSON");
    assert_eq!(v["code"].as_u64(), Some(u64::from(e.code.number())));
    assert!(v["msg"].is_string());
}

fn network() -> NetworkInspect {
    serde_json::from_value(serde_json::json!({
        "Name": "n", "Id": "0", "Created": "", "Scope": "local", "Driver": "bridge",
        "EnableIPv6": false, "Internal": false, "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {}, "Labels": {},
        "Options": {"com.docker.network.bridge.name": "br0"},
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.88.0.0/24"}]}
    }))
    .expect("a sample network")
}

fn endpoint() -> SandboxNetworkInspect {
    serde_json::from_value(serde_json::json!({
        "NetworkID": "n", "EndpointID": "e", "IPAddress": "10.88.0.2", "IPPrefixLen": 24,
        "Gateway": "10.88.0.1", "IPv6Address": "", "IPv6PrefixLen": 0, "IPv6Gateway": "",
        "MacAddress": "02:42:0a:58:00:02", "Aliases": [], "Interface": "eth0"
    }))
    .expect("a sample endpoint")
}

fuzz_target!(|data: &[u8]| {
    let conf = match NetConf::parse(data) {
        Ok(c) => c,
        Err(e) => return check_error(&e),
    };
    let _ = plan::network_create(&conf);
    let _ = plan::dns_of(&conf);
    let facts = NetworkFacts {
        subnet: conf.network.subnet.or("10.88.0.0/24".parse().ok()),
        used: Default::default(),
    };
    match plan::endpoint_options(&conf, "net1", &CniArgs::default(), &facts) {
        Ok(opts) => assert_eq!(opts.ifname.as_deref(), Some("net1")),
        Err(e) => check_error(&e),
    }
    if let Ok(name) = naming::sandbox_name(&conf.name) {
        let back = naming::container_id(&name).expect("our own name reads back");
        assert_eq!(back, conf.name);
    }
    let _ = plan::network_mismatch(&conf, &network());
    match plan::add_result(&conf, "/run/netns/fuzz", &endpoint(), true) {
        Ok(result) => {
            for v in SUPPORTED {
                let json = result.to_json(v);
                let back = CniResult::from_value(&json).expect("our result reads back");
                assert_eq!(back.ips, result.ips, "{v}");
            }
        }
        Err(e) => check_error(&e),
    }
});
