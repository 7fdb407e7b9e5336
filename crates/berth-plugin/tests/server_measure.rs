//! Measurements for the report (ignored by default; run them on a quiet machine):
//!
//! ```text
//! cargo test -p berth-plugin --test server_measure -- --ignored --nocapture --test-threads=1
//! ```
//!
//! - `container_start_through_dockerd`: `docker run -d` and `docker rm -f` of a container on a
//!   network of berth's plugin (dockerd's IPAM, and berth's) against the same on dockerd's own
//!   bridge driver, interleaved in one run of one dockerd; medians of 20.
//! - `join_and_hand_over`: what the server's join costs beyond the controller's: the bridge
//!   driver's join straight into a sandbox (the controller's path), its join into a staging
//!   namespace, and the hand-over of the sandbox end to the host namespace
//!   (`berth_netlink::detach`); medians of 200.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use berth_bridge::{BridgeDefaults, BridgeDriver};
use berth_driver::{
    EndpointId, EndpointSpec, IpamInfo, JoinRequest, NetnsRef, NetworkDriver, NetworkId,
    NetworkSpec, RawOptions, SandboxId, SandboxRef,
};
use berth_netlink::{Handle, Netns, detach};
use berth_testhost::TestHost;
use common::engine::{Engine, IMAGE};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn container_start_through_dockerd() {
    const RUNS: usize = 20;
    let e = Engine::start();
    let name = e.name.clone();
    e.ok(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.96.0.0/24",
        "dockers",
    ]);
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--subnet",
        "10.97.0.0/24",
        "berths",
    ]);
    e.ok(&[
        "network",
        "create",
        "-d",
        &name,
        "--ipam-driver",
        &name,
        "--subnet",
        "10.98.0.0/24",
        "berths-ipam",
    ]);
    let networks = ["dockers", "berths", "berths-ipam"];
    let mut run = vec![Vec::new(); networks.len()];
    let mut rm = vec![Vec::new(); networks.len()];
    // One warm-up round each, then interleaved rounds so that drift hits every network alike.
    for round in 0..=RUNS {
        for (i, net) in networks.iter().enumerate() {
            let t = Instant::now();
            let id = e.ok(&[
                "run",
                "-d",
                "--init",
                "--network",
                net,
                IMAGE,
                "sleep",
                "1000",
            ]);
            let started = t.elapsed();
            let t = Instant::now();
            e.ok(&["rm", "-f", &id]);
            let removed = t.elapsed();
            if round > 0 {
                run[i].push(started);
                rm[i].push(removed);
            }
        }
    }
    let base_run = median(run[0].clone());
    let base_rm = median(rm[0].clone());
    println!("median of {RUNS} (dockerd 20.10, one engine, interleaved):");
    for (i, net) in networks.iter().enumerate() {
        let (r, d) = (median(run[i].clone()), median(rm[i].clone()));
        println!(
            "  {net:<12} docker run -d {:>9} ({:.2}x)   docker rm -f {:>9} ({:.2}x)",
            ms(r),
            r.as_secs_f64() / base_run.as_secs_f64(),
            ms(d),
            d.as_secs_f64() / base_rm.as_secs_f64()
        );
    }
    for net in networks {
        e.ok(&["network", "rm", net]);
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn join_and_hand_over() {
    const RUNS: usize = 200;
    let host = TestHost::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Netns::create_in(dir.path(), "sandbox").unwrap();
    let staging = Netns::create_in(dir.path(), "staging").unwrap();
    let staging_nl = Handle::open(&staging).unwrap();
    let bridge = BridgeDriver::new(host.netns(), None, BridgeDefaults::default())
        .unwrap()
        .with_instance("measure");
    let net = NetworkId::from_bytes([0x4d; 32]);
    let spec = NetworkSpec {
        id: net.clone(),
        name: "measure".into(),
        ipv4: vec![IpamInfo {
            pool: "10.99.0.0/16".parse().unwrap(),
            gateway: Some("10.99.0.1/16".parse().unwrap()),
            aux_addresses: Default::default(),
        }],
        ipv6: vec![],
        internal: false,
        enable_ipv6: false,
    };
    let options = NetworkDriver::parse_options(&bridge, &RawOptions::new()).unwrap();
    NetworkDriver::create_network(&bridge, &spec, &options).unwrap();
    let (mut direct, mut staged, mut handed, mut downed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS * 2 {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&u32::try_from(i).unwrap().to_be_bytes());
        bytes[4] = 0xe0;
        let ep = EndpointId::from_bytes(bytes);
        let sb_id: SandboxId = ep.as_str().parse().unwrap();
        let addr = format!("10.99.{}.{}/16", 1 + i / 250, 2 + i % 250);
        NetworkDriver::create_endpoint(
            &bridge,
            &EndpointSpec {
                network: net.clone(),
                endpoint: ep.clone(),
                ipv4: Some(addr.parse().unwrap()),
                ipv6: None,
                mac: None,
                options: RawOptions::new(),
            },
        )
        .unwrap();
        // Even rounds: the controller's path (into the sandbox as eth0); odd: the server's.
        let into_staging = i % 2 == 1;
        let ifname = if into_staging {
            berth_plugin::server::peer_name(&ep)
        } else {
            "eth0".to_owned()
        };
        let target = if into_staging { &staging } else { &sandbox };
        let req = JoinRequest {
            network: &net,
            endpoint: &ep,
            sandbox: SandboxRef {
                id: &sb_id,
                netns: NetnsRef {
                    path: dir.path(),
                    fd: Some(target.as_fd()),
                },
            },
            ifname: &ifname,
        };
        let t = Instant::now();
        NetworkDriver::join(&bridge, &req).unwrap();
        let joined = t.elapsed();
        if into_staging {
            staged.push(joined);
            let t = Instant::now();
            staging_nl
                .link_update(ifname.as_str(), &berth_netlink::LinkUpdate::new().down())
                .unwrap();
            downed.push(t.elapsed());
            let t = Instant::now();
            detach(&staging_nl, &ifname, host.netns(), &ifname).unwrap();
            handed.push(t.elapsed());
        } else {
            direct.push(joined);
        }
        NetworkDriver::leave(&bridge, &net, &ep).unwrap();
        NetworkDriver::delete_endpoint(&bridge, &net, &ep).unwrap();
    }
    NetworkDriver::delete_network(&bridge, &net).unwrap();
    let (d, s, h) = (median(direct), median(staged), median(handed));
    println!("median of {RUNS}, bridge driver without firewall, one network:");
    println!("  join into the sandbox (controller)        {}", us(d));
    println!("  join into the staging namespace (server)  {}", us(s));
    println!("  hand-over to the host namespace (detach)  {}", us(h));
    println!(
        "    of which taking it down first           {}",
        us(median(downed))
    );
    println!(
        "  server's join / controller's join         {:.2}x",
        (s + h).as_secs_f64() / d.as_secs_f64()
    );
    drop(staging_nl);
    staging.delete().unwrap();
    sandbox.delete().unwrap();
}
