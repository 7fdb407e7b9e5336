//! Serves the embedded DNS server for one sandbox namespace, for load tests (benches/dns-compare.sh).
//!
//! ```text
//! serve NETNS_PATH NAMES
//! ```
//!
//! Registers sandboxes `c0` .. `c<NAMES-1>` (addresses 10.77.x.y) on one user-defined network
//! `benchnet`, attaches the sandbox in NETNS_PATH to it as `client`, prints `ready` and serves
//! until its standard input is closed.

use std::io::Read;
use std::net::Ipv4Addr;

use berth_dns::{EndpointDns, NetworkDns, Resolver, ResolverConfig};
use berth_netlink::Netns;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, names] = args.as_slice() else {
        return Err("usage: serve NETNS_PATH NAMES".into());
    };
    let names: u32 = names.parse()?;
    let netns = Netns::open(path)?;
    let mut config = ResolverConfig::default();
    if let Ok(w) = std::env::var("BERTH_DNS_WORKERS") {
        config.worker_threads = w.parse()?;
    }
    let resolver = Resolver::new(config)?;
    resolver.add_network(&NetworkDns {
        id: "benchnet".into(),
        name: "benchnet".into(),
        internal: false,
        embedded_dns: true,
    })?;
    for i in 0..names {
        let id = format!("c{i}");
        resolver.names().add_sandbox(&id, &id, &[])?;
        resolver.names().connect(
            &id,
            "benchnet",
            &EndpointDns {
                endpoint_id: id.clone(),
                ipv4: Some(Ipv4Addr::from(0x0a4d_0000 + i + 2)),
                ..EndpointDns::default()
            },
        )?;
    }
    resolver.add_sandbox("client", "client", &netns, &[])?;
    let ports = resolver.connect(
        "client",
        "benchnet",
        &EndpointDns {
            endpoint_id: "client".into(),
            ipv4: Some(Ipv4Addr::new(10, 77, 255, 254)),
            ..EndpointDns::default()
        },
    )?;
    println!("ready {ports:?} pid {}", std::process::id());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    resolver.remove_sandbox("client")?;
    Ok(())
}
