//! `berth daemon --cluster-store etcd://.. --cluster-advertise ..`, as root: a real etcd in its
//! own namespace on an underlay switch, two daemons on two hosts of the same underlay, and the
//! overlay driven from the command line: a network made on one host is listed on the other
//! with scope global, and sandboxes on the two hosts reach each other by name.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use berth_testhost::cluster::{Underlay, UnderlayHost};
use berth_testhost::etcd::Etcd;
use common::*;
use common::{docker_clients, stderr};

fn eventually(what: &str, cond: impl Fn() -> bool) {
    eventually_within(what, 10, cond);
}

fn eventually_within(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_daemons_share_an_overlay_through_etcd() {
    let underlay = Underlay::new().unwrap();
    let store_host = underlay.add_host().unwrap();
    let etcd = Etcd::start(store_host.host.name(), store_host.addr).unwrap();
    let store = format!("--cluster-store=etcd://{}:2379", store_host.addr);
    let start = || {
        let h = underlay.add_host().unwrap();
        // The interface form of --cluster-advertise, with Docker's port (which berth ignores).
        Fixture::on_host(h.host, &[&store, "--cluster-advertise=eth0:2376"])
    };
    let a = start();
    let b = start();

    let id = a.ok(&["network", "create", "-d", "overlay", "ov"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    eventually("host b lists ov", || {
        b.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ])
        .lines()
        .any(|l| l == "ov overlay global")
    });
    let vni = b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}",
        "ov",
    ]);
    assert_eq!(vni.trim(), "4096");

    a.ok(&["sandbox", "create", "--name", "sa", "--network", "ov"]);
    b.ok(&["sandbox", "create", "--name", "sb", "--network", "ov"]);
    let ip_b = b.ip_of("sb", "ov");
    eventually("sa reaches sb by address", || a.ping("sa", &ip_b));
    eventually("sa reaches sb by name", || a.ping("sa", "sb"));
    assert!(b.ping("sb", "sa"), "and back by name");

    // Removal needs every host's endpoints gone.
    let refused = a.fails(&["network", "rm", "ov"], 1);
    assert!(refused.contains("active endpoints"), "{refused}");
    b.ok(&["sandbox", "rm", "sb"]);
    a.ok(&["sandbox", "rm", "sa"]);
    a.ok(&["network", "rm", "ov"]);
    eventually("host b forgets ov", || {
        !b.ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .any(|l| l == "ov")
    });
    drop((a, b));
    drop(etcd);
}

/// A cluster: an underlay switch, etcd on its own host, and `n` daemons on hosts of their own,
/// started with `extra` arguments besides the store and advertise ones. Fields drop in order:
/// the daemons (their sandboxes and overlay namespaces with them), etcd, the hosts, the switch.
struct Cluster {
    hosts: Vec<Fixture>,
    /// The switch-side port of each daemon's host link, for cutting it.
    ports: Vec<String>,
    etcd: Etcd,
    _store_host: UnderlayHost,
    underlay: Underlay,
}

impl Cluster {
    fn new(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start(n, extra, false)
    }

    /// With etcd serving TLS only, and every daemon given Docker's kv.* files for it.
    fn new_tls(n: usize) -> Cluster {
        Cluster::start(n, &[], true)
    }

    fn start(n: usize, extra: &[&str], tls: bool) -> Cluster {
        let underlay = Underlay::new().unwrap();
        let store_host = underlay.add_host().unwrap();
        let etcd = if tls {
            Etcd::start_tls(store_host.host.name(), store_host.addr).unwrap()
        } else {
            Etcd::start(store_host.host.name(), store_host.addr).unwrap()
        };
        let store = format!("--cluster-store=etcd://{}:2379", store_host.addr);
        let tls_opts: Vec<String> = etcd
            .tls()
            .map(|t| {
                vec![
                    format!("--cluster-store-opt=kv.cacertfile={}", t.ca.display()),
                    format!("--cluster-store-opt=kv.certfile={}", t.cert.display()),
                    format!("--cluster-store-opt=kv.keyfile={}", t.key.display()),
                ]
            })
            .unwrap_or_default();
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..n {
            let h = underlay.add_host().unwrap();
            let mut args = vec![store.as_str(), "--cluster-advertise=eth0"];
            args.extend(tls_opts.iter().map(String::as_str));
            args.extend_from_slice(extra);
            ports.push(h.port.clone());
            hosts.push(Fixture::on_host(h.host, &args));
        }
        Cluster {
            hosts,
            ports,
            etcd,
            _store_host: store_host,
            underlay,
        }
    }

    /// `etcdctl ARGS` against the cluster's etcd: its stdout (asserted a success).
    fn etcdctl(&self, args: &[&str]) -> String {
        let out = self
            .etcd
            .netns()
            .command("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd.client_url()])
            .args(self.etcd.tls().map_or_else(Vec::new, |t| {
                vec![
                    format!("--cacert={}", t.ca.display()),
                    format!("--cert={}", t.cert.display()),
                    format!("--key={}", t.key.display()),
                ]
            }))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The keys under `prefix` (below the daemons' root), as etcd lists them.
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.etcdctl(&["get", "--prefix", "--keys-only", &format!("berth/{prefix}")])
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// How many leases etcd holds (`found N leases`).
    fn leases(&self) -> usize {
        let out = self.etcdctl(&["lease", "list"]);
        out.lines()
            .find_map(|l| {
                l.strip_prefix("found ")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no lease count in {out:?}"))
    }

    fn cut(&self, i: usize) {
        let port = &self.ports[i];
        self.underlay
            .switch()
            .ip(&["link", "set", port, "down"])
            .unwrap();
    }

    fn restore(&self, i: usize) {
        let port = &self.ports[i];
        self.underlay
            .switch()
            .ip(&["link", "set", port, "up"])
            .unwrap();
    }
}

/// `{{index .Options "..vxlanid_list"}} {{(index .IPAM.Config 0).Subnet}}` of a network.
fn vni_and_subnet(f: &Fixture, net: &str) -> (String, String) {
    let out = f.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}} {{(index .IPAM.Config 0).Subnet}}",
        net,
    ]);
    let (vni, subnet) = out.trim().split_once(' ').unwrap();
    (vni.to_owned(), subnet.to_owned())
}

#[test]
fn concurrent_creates_on_three_hosts_never_hand_out_the_same_thing_twice() {
    let c = Cluster::new(3, &[]);
    // Four networks per host, all hosts at once.
    std::thread::scope(|s| {
        for (i, f) in c.hosts.iter().enumerate() {
            s.spawn(move || {
                for j in 0..4 {
                    f.ok(&["network", "create", "-d", "overlay", &format!("h{i}n{j}")]);
                }
            });
        }
    });
    // The same name from three hosts at once: one network.
    let same: Vec<bool> = std::thread::scope(|s| {
        let runs: Vec<_> = c
            .hosts
            .iter()
            .map(|f| {
                s.spawn(move || {
                    f.berth(&["network", "create", "-d", "overlay", "same"])
                        .status
                        .success()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        same.iter().filter(|ok| **ok).count(),
        1,
        "one create of a global name wins: {same:?}"
    );
    let a = &c.hosts[0];
    let mut names: Vec<String> = (0..3)
        .flat_map(|i| (0..4).map(move |j| format!("h{i}n{j}")))
        .collect();
    names.push("same".into());
    eventually("host a knows all 13 networks", || {
        let ls = a.ok(&["network", "ls", "--filter", "driver=overlay", "-q"]);
        ls.lines().count() == 13
    });
    let mut vnis = std::collections::BTreeSet::new();
    let mut subnets = std::collections::BTreeSet::new();
    for n in &names {
        let (vni, subnet) = vni_and_subnet(a, n);
        assert!(vni.parse::<u32>().is_ok_and(|v| v >= 4096), "{n}: {vni}");
        assert!(vnis.insert(vni.clone()), "VXLAN id {vni} twice");
        assert!(subnets.insert(subnet.clone()), "subnet {subnet} twice");
    }
    assert_eq!(c.keys("overlay/vni/").len(), 13, "one claim per network");

    // Sandboxes on one network from three hosts at once: no address twice.
    std::thread::scope(|s| {
        for (i, f) in c.hosts.iter().enumerate() {
            s.spawn(move || {
                for j in 0..4 {
                    let name = format!("s{i}{j}");
                    f.ok(&["sandbox", "create", "--name", &name, "--network", "same"]);
                }
            });
        }
    });
    let mut ips = std::collections::BTreeSet::new();
    for (i, f) in c.hosts.iter().enumerate() {
        for j in 0..4 {
            let ip = f.ip_of(&format!("s{i}{j}"), "same");
            assert!(ips.insert(ip.clone()), "address {ip} twice");
        }
    }
    // And every host reaches the others' sandboxes.
    let far = c.hosts[2].ip_of("s23", "same");
    eventually("s00 on a reaches s23 on c", || a.ping("s00", &far));
    assert_eq!(
        c.keys("overlay/peer/").len(),
        12,
        "one peer entry per endpoint"
    );
}

#[test]
fn the_cluster_rides_out_an_etcd_restart_and_a_cut_link() {
    // Two-second leases, so that a cut host's entries expire within the test.
    let mut c = Cluster::new(3, &["--cluster-store-opt=discovery.ttl=2"]);
    let (a, b, h3) = (&c.hosts[0], &c.hosts[1], &c.hosts[2]);
    a.ok(&["network", "create", "-d", "overlay", "ov"]);
    eventually("every host knows ov", || {
        [b, h3]
            .iter()
            .all(|f| f.berth(&["network", "inspect", "ov"]).status.success())
    });
    a.ok(&["sandbox", "create", "--name", "sa", "--network", "ov"]);
    b.ok(&["sandbox", "create", "--name", "sb", "--network", "ov"]);
    h3.ok(&["sandbox", "create", "--name", "sc1", "--network", "ov"]);
    h3.ok(&["sandbox", "create", "--name", "sc2", "--network", "ov"]);
    let ip_b = b.ip_of("sb", "ov");
    let ip_c1 = h3.ip_of("sc1", "ov");
    eventually("sa reaches sb and sc1 by name", || {
        a.ping("sa", "sb") && a.ping("sa", "sc1")
    });
    // One lease per host: the overlay's peer entries and the controller's marks and names
    // share it (two leases per host before).
    assert_eq!(c.leases(), 3, "one lease per host");

    // etcd down: the data path that exists keeps forwarding (names too, from what each host
    // knows); an operation that needs the store fails, naming it; local ones still work.
    c.etcd.kill().unwrap();
    assert!(a.ping("sa", &ip_b), "forwarding without the store");
    assert!(a.ping("sa", "sc1"), "names without the store");
    let started = Instant::now();
    let err = a.fails(&["network", "create", "-d", "overlay", "ov2"], 1);
    eprintln!(
        "with etcd down, after {:?}: {}",
        started.elapsed(),
        err.trim()
    );
    assert!(
        err.contains("etcd") || err.contains("cluster store"),
        "the error names the store: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the failure comes within the store's timeouts ({:?})",
        started.elapsed()
    );
    a.ok(&["network", "create", "local1"]);

    // etcd back: operations resume, the watches pick up where they were.
    c.etcd.restart().unwrap();
    let restarted = Instant::now();
    eventually_within("a global create works again", 20, || {
        a.berth(&["network", "create", "-d", "overlay", "ov2"])
            .status
            .success()
    });
    eprintln!(
        "a global create works {:?} after etcd is back",
        restarted.elapsed()
    );
    b.ok(&["sandbox", "create", "--name", "sd", "--network", "ov"]);
    eventually("sa reaches the new sd by name", || a.ping("sa", "sd"));
    eventually("h3 learns of ov2", || {
        h3.berth(&["network", "inspect", "ov2"]).status.success()
    });
    assert_eq!(
        c.keys("overlay/peer/").len(),
        5,
        "one peer entry per endpoint after the restart"
    );

    // Host 3's link cut past its lease: its local traffic continues; the others forget its
    // endpoints; what changes meanwhile reaches it when the link is back, and it comes back.
    c.cut(2);
    let cut = Instant::now();
    assert!(h3.ping("sc1", "sc2"), "local traffic on the cut host");
    eventually_within("the store drops the cut host's entries", 15, || {
        c.keys("overlay/peer/").len() == 3
            && c.keys("network-endpoint/").len() == 3
            && c.keys("network-dns/").len() == 3
    });
    eprintln!(
        "the cut host's entries gone {:?} after the cut",
        cut.elapsed()
    );
    eventually("a no longer reaches sc1", || !a.ping("sa", &ip_c1));
    a.ok(&["sandbox", "create", "--name", "se", "--network", "ov"]);
    assert!(h3.ping("sc2", "sc1"), "still local traffic on the cut host");
    c.restore(2);
    let restored = Instant::now();
    eventually_within("sa reaches sc1 again", 20, || a.ping("sa", "sc1"));
    eventually_within("sc1 reaches se, made during the cut, by name", 20, || {
        h3.ping("sc1", "se")
    });
    eprintln!(
        "the cut host converged {:?} after the link came back",
        restored.elapsed()
    );
    assert!(b.ping("sb", "sc2"), "b reaches sc2");
    for prefix in ["overlay/peer/", "network-endpoint/", "network-dns/"] {
        eventually(&format!("each endpoint once under {prefix}"), || {
            c.keys(prefix).len() == 6
        });
    }

    // Host 2's daemon killed (-9) and started again: its sandboxes keep working throughout,
    // and its keys are put once under its new lease (the old lease's expiry takes nothing).
    let ip_sd = c.hosts[1].ip_of("sd", "ov");
    c.hosts[1].kill9();
    assert!(
        c.hosts[0].ping("sa", &ip_sd),
        "forwarding with host 2's daemon dead"
    );
    c.hosts[1].start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        c.hosts[0].ping("sa", "sd"),
        "sd by name after host 2's restart"
    );
    assert!(
        c.hosts[1].ping("sb", "sc1"),
        "host 2's sandboxes reach host 3"
    );
    for prefix in ["overlay/peer/", "network-endpoint/", "network-dns/"] {
        assert_eq!(c.keys(prefix).len(), 6, "each endpoint once under {prefix}");
    }
    eventually(
        "one lease per host again (the killed daemon's expired)",
        || c.leases() == 3,
    );
}

#[test]
fn the_stock_docker_cli_drives_an_overlay_across_two_daemons() {
    let c = Cluster::new(2, &[]);
    let (a, b) = (&c.hosts[0], &c.hosts[1]);
    for (i, docker) in docker_clients().iter().enumerate() {
        let tag = docker.display().to_string();
        let ok = |f: &Fixture, args: &[&str]| {
            let o = f.docker(docker, args);
            assert!(
                o.status.success(),
                "{tag} {args:?}: {}\n{}",
                stdout(&o),
                stderr(&o)
            );
            stdout(&o)
        };
        let (net, x, y) = (format!("dov{i}"), format!("x{i}"), format!("y{i}"));
        a.ok(&["sandbox", "create", "--name", &x, "--network", "none"]);
        a.ok(&["network", "disconnect", "none", &x]);
        b.ok(&["sandbox", "create", "--name", &y, "--network", "none"]);
        b.ok(&["network", "disconnect", "none", &y]);

        let id = ok(
            a,
            &[
                "network",
                "create",
                "-d",
                "overlay",
                "--subnet",
                "10.90.0.0/24",
                &net,
            ],
        );
        assert_eq!(id.trim().len(), 64, "{tag}: {id}");
        eventually("b lists the overlay, scope global", || {
            let ls = ok(b, &["network", "ls", "--filter", &format!("name={net}")]);
            ls.lines().any(|l| {
                l.split_whitespace().collect::<Vec<_>>()[1..] == [&net, "overlay", "global"]
            })
        });
        let inspect: serde_json::Value =
            serde_json::from_str(&ok(b, &["network", "inspect", &net])).unwrap();
        let n = &inspect[0];
        assert_eq!(n["Id"].as_str(), Some(id.trim()), "{tag}: {n}");
        assert_eq!(n["Scope"], "global", "{tag}");
        assert_eq!(n["Driver"], "overlay", "{tag}");
        assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.90.0.0/24", "{tag}");
        assert!(
            n["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
                .as_str()
                .is_some_and(|v| v.parse::<u32>().is_ok_and(|v| v >= 4096)),
            "{tag}: {n}"
        );

        // connect on each host, with an alias on one: names and traffic across hosts.
        ok(a, &["network", "connect", &net, &x]);
        ok(b, &["network", "connect", "--alias", "yy", &net, &y]);
        eventually("x reaches y's alias across hosts", || a.ping(&x, "yy"));
        let on_b = ok(
            b,
            &[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}} {{end}}",
                &net,
            ],
        );
        assert_eq!(
            on_b.trim(),
            y,
            "{tag}: inspect lists the host's own endpoints"
        );

        // rm is refused while either host has an endpoint, then works from the other host.
        let o = b.docker(docker, &["network", "rm", &net]);
        assert!(!o.status.success(), "{tag}: rm with endpoints");
        assert!(
            stderr(&o).contains("active endpoints"),
            "{tag}: {}",
            stderr(&o)
        );
        ok(a, &["network", "disconnect", &net, &x]);
        ok(b, &["network", "disconnect", &net, &y]);
        assert_eq!(ok(b, &["network", "rm", &net]).trim(), net);
        eventually("a forgets the overlay", || {
            !ok(a, &["network", "ls", "--format", "{{.Name}}"])
                .lines()
                .any(|l| l == net)
        });
    }
}

#[test]
fn two_daemons_share_an_overlay_through_etcd_over_tls() {
    let c = Cluster::new_tls(2);
    let (a, b) = (&c.hosts[0], &c.hosts[1]);
    a.ok(&["network", "create", "-d", "overlay", "ov"]);
    eventually("b knows ov", || {
        b.berth(&["network", "inspect", "ov"]).status.success()
    });
    // -p on an overlay-only sandbox: published through docker_gwbridge.
    a.ok(&[
        "sandbox",
        "create",
        "--name",
        "sa",
        "--network",
        "ov",
        "-p",
        "8080:80",
    ]);
    let ports = a.ok(&["sandbox", "inspect", "-f", "{{json .Ports}}", "sa"]);
    assert!(ports.contains("\"HostPort\":\"8080\""), "{ports}");
    b.ok(&["sandbox", "create", "--name", "sb", "--network", "ov"]);
    eventually("sa reaches sb by name", || a.ping("sa", "sb"));
    assert_eq!(c.keys("overlay/peer/").len(), 2, "read back over TLS");
    assert!(
        a.log().contains("https://"),
        "the daemon's store is the TLS endpoint: {}",
        a.log()
    );
}
