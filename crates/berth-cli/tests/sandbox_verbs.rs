//! `berth sandbox ...` end to end: create (own, adopted and host namespaces), ls, inspect, exec,
//! rm, and a published port fetched from a LAN peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Netns;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::Fixture;
use serde_json::Value;

#[test]
fn create_ls_inspect_exec_rm() {
    let f = Fixture::new();
    f.ok(&[
        "network",
        "create",
        "--subnet",
        "10.70.0.0/24",
        "isolated_nw",
    ]);
    let id = f.ok(&[
        "sandbox",
        "create",
        "--name",
        "web",
        "--hostname",
        "webhost",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "db",
        "--network",
        "isolated_nw",
        "--ip",
        "10.70.0.5",
        "--alias",
        "database",
        "--alias",
        "pg",
        "--mac-address",
        "02:42:0a:46:00:05",
    ]);

    // inspect: the network part of `docker inspect`.
    let out = f.ok(&["sandbox", "inspect", "db"]);
    assert!(
        out.starts_with("[\n    {\n        \"Name\": \"db\",\n        \"Id\": "),
        "{out}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let n = &v[0]["Networks"]["isolated_nw"];
    assert_eq!(n["IPAddress"], "10.70.0.5");
    assert_eq!(n["IPPrefixLen"], 24);
    assert_eq!(n["Gateway"], "10.70.0.1");
    assert_eq!(n["IPv6Address"], "");
    assert_eq!(n["MacAddress"], "02:42:0a:46:00:05");
    assert_eq!(n["Aliases"], serde_json::json!(["database", "pg"]));
    assert!(v[0]["Ports"].as_object().unwrap().is_empty());
    let web: Value = serde_json::from_str(&f.ok(&["sandbox", "inspect", "web"])).unwrap();
    assert_eq!(web[0]["Id"], id);
    assert!(
        web[0]["Networks"]["bridge"]["IPAddress"]
            .as_str()
            .unwrap()
            .starts_with("172.17.")
    );
    assert_eq!(
        f.ok(&[
            "sandbox",
            "inspect",
            "--format",
            "{{.Name}}:{{range $n, $e := .Networks}}{{$n}}={{$e.IPAddress}}{{end}}",
            "db"
        ]),
        "db:isolated_nw=10.70.0.5\n"
    );
    let out = f.berth(&["sandbox", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(common::stdout(&out), "[]\n");
    assert!(common::stderr(&out).contains("no such sandbox: nosuch"));

    // ls: default table, -q, --format.
    let ls = f.ok(&["sandbox", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["SANDBOX", "ID", "NAME", "NETWORKS", "PORTS", "STATUS"]
    );
    assert!(
        lines[1].contains(" db ") && lines[1].contains("isolated_nw"),
        "{ls}"
    );
    assert!(
        lines[2].starts_with(&id[..12]) && lines[2].contains(" web "),
        "{ls}"
    );
    assert_eq!(
        f.ok(&["sandbox", "ls", "-q", "--no-trunc"]).lines().nth(1),
        Some(id)
    );
    assert_eq!(
        f.ok(&[
            "sandbox",
            "ls",
            "--format",
            "{{.Name}} {{.Networks}} {{.IPAddresses}}"
        ]),
        format!(
            "db isolated_nw 10.70.0.5\nweb bridge {}\n",
            f.ip_of("web", "bridge")
        )
    );

    // exec: the sandbox's network namespace, its own /sys, the command's exit code.
    let sys_mounts = || -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - sysfs ") || l.contains(" /etc/"))
            .map(str::to_owned)
            .collect()
    };
    let mounts_before = sys_mounts();
    let links = f.ok(&[
        "sandbox", "exec", "db", "--", "ip", "-o", "addr", "show", "eth0",
    ]);
    assert!(links.contains("inet 10.70.0.5/24"), "{links}");
    let sys = f.ok(&["sandbox", "exec", "db", "--", "ls", "/sys/class/net"]);
    assert_eq!(
        sys.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "lo"],
        "/sys shows the sandbox's interfaces"
    );
    let out = f.berth(&[
        "sandbox",
        "exec",
        "db",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(common::stdout(&out), "out\n");
    assert_eq!(common::stderr(&out), "err\n");
    f.fails(&["sandbox", "exec", "db", "--", "/nonexistent/cmd"], 127);
    f.fails(&["sandbox", "exec", "nosuch", "--", "true"], 1);
    // The mount namespace is private: the sysfs and bind mounts of exec never reach ours.
    let mounts_after = sys_mounts();
    assert_eq!(
        mounts_before, mounts_after,
        "exec left mounts behind in the caller's namespace"
    );

    // Traffic between the two networks is isolated; within a network it flows.
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "app",
        "--network",
        "isolated_nw",
    ]);
    assert!(f.ping("app", "10.70.0.5"));
    assert!(
        !f.ping("web", "10.70.0.5"),
        "bridge and isolated_nw are isolated"
    );

    // Errors.
    let e = f.fails(&["sandbox", "create", "--name", "db"], 1);
    assert!(e.contains("already in use"), "{e}");
    let e = f.fails(&["sandbox", "create", "--name", "bad name"], 1);
    assert!(e.contains("invalid sandbox name"), "{e}");
    let e = f.fails(
        &["sandbox", "create", "--name", "x", "--network", "nonet"],
        1,
    );
    assert!(e.contains("network nonet not found"), "{e}");

    // rm: prints names; the namespace goes away.
    let key = f.ok(&["sandbox", "inspect", "-f", "{{.SandboxKey}}", "db"]);
    assert!(std::path::Path::new(key.trim()).exists());
    assert_eq!(f.ok(&["sandbox", "rm", "db", "app"]), "db\napp\n");
    assert!(!std::path::Path::new(key.trim()).exists());
    let e = f.fails(&["sandbox", "rm", "db"], 1);
    assert!(e.contains("no such sandbox: db"), "{e}");
    assert_eq!(f.ok(&["sandbox", "rm", "-f", "db"]), "");
    assert_eq!(f.ok(&["sandbox", "ls", "-q"]), format!("{}\n", &id[..12]));
}

#[test]
fn adopted_host_and_none_namespaces() {
    let f = Fixture::new();
    // Adopt a namespace berth did not make (a stand-in for /proc/PID/ns/net).
    let outside = TestHost::new().unwrap();
    let path = outside.path();
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "adopted",
        "--netns",
        path.to_str().unwrap(),
    ]);
    let links = outside.ip(&["-o", "addr", "show", "eth0"]).unwrap();
    let ip = f.ip_of("adopted", "bridge");
    assert!(links.contains(&format!("inet {ip}/16")), "{links}");
    let key = f.ok(&["sandbox", "inspect", "-f", "{{.SandboxKey}}", "adopted"]);
    assert_eq!(key.trim(), path.to_str().unwrap());
    // A process's namespace by /proc/PID/ns/net.
    let sleeper = outside.spawn("sleep", &["60"]).unwrap();
    let proc_ns = format!("/proc/{}/ns/net", sleeper.id());
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "byproc",
        "--network",
        "none",
        "--netns",
        &proc_ns,
    ]);
    assert!(f.ok(&["sandbox", "inspect", "byproc"]).contains(&proc_ns));
    f.ok(&["sandbox", "rm", "byproc"]);
    drop(sleeper);
    // Removing an adopted sandbox leaves the namespace (berth never deletes what it did not make).
    f.ok(&["sandbox", "rm", "adopted"]);
    assert!(path.exists());
    assert!(!outside.ip(&["-o", "link"]).unwrap().contains("eth0"));

    // --network host: the host's own namespace.
    f.ok(&["sandbox", "create", "--name", "h", "--network", "host"]);
    let v: Value = serde_json::from_str(&f.ok(&["sandbox", "inspect", "h"])).unwrap();
    assert!(v[0]["Networks"]["host"].is_object());
    let same = Netns::open(v[0]["SandboxKey"].as_str().unwrap())
        .unwrap()
        .same_as(f.host.netns())
        .unwrap();
    assert!(
        same,
        "a host-network sandbox lives in the test host's namespace"
    );
    let e = f.fails(
        &[
            "sandbox",
            "create",
            "--name",
            "h2",
            "--network",
            "host",
            "--netns",
            "/proc/1/ns/net",
        ],
        1,
    );
    assert!(e.contains("host"), "{e}");
    // --network none: loopback only.
    f.ok(&["sandbox", "create", "--name", "n", "--network", "none"]);
    let links = f.ok(&["sandbox", "exec", "n", "--", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    // Name settings reach the sandbox's own /etc files, as its processes see them.
    f.ok(&["network", "create", "isolated_nw"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "named",
        "--network",
        "isolated_nw",
        "--hostname",
        "app",
        "--domainname",
        "example.org",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "db:192.0.2.9",
    ]);
    let hosts = f.ok(&["sandbox", "exec", "named", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains("192.0.2.9\tdb\n"), "{hosts}");
    assert!(hosts.contains("\tapp.example.org app\n"), "{hosts}");
    let resolv = f.ok(&["sandbox", "exec", "named", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11\n"), "{resolv}");
    assert!(resolv.contains("search corp.example\n"), "{resolv}");
    assert!(resolv.contains("options ndots:3\n"), "{resolv}");
    let got = f.ok(&["sandbox", "exec", "named", "--", "getent", "hosts", "db"]);
    assert!(got.starts_with("192.0.2.9"), "{got}");
    // Bad values are refused with the value named, and nothing is made.
    for (flags, named) in [
        (vec!["--add-host", "nocolon"], "nocolon"),
        (vec!["--dns-option", "ndots:x"], "ndots"),
        (vec!["--hostname", "bad_host"], "bad_host"),
    ] {
        let mut args = vec!["sandbox", "create", "--name", "pending"];
        args.extend(flags);
        let e = f.fails(&args, 1);
        assert!(e.contains(named), "{e}");
        f.fails(&["sandbox", "inspect", "pending"], 1);
    }

    // A legacy link on the default bridge: hosts line and environment in the linking sandbox.
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "web",
        "--hostname",
        "webhost",
    ]);
    f.ok(&["sandbox", "create", "--name", "lk", "--link", "web:w"]);
    let web_ip = f.ok(&[
        "sandbox",
        "inspect",
        "--format",
        "{{.Networks.bridge.IPAddress}}",
        "web",
    ]);
    let web_ip = web_ip.trim();
    let hosts = f.ok(&["sandbox", "exec", "lk", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{web_ip}\tw webhost web\n")),
        "{hosts}"
    );
    let env = f.ok(&["sandbox", "exec", "lk", "--", "env"]);
    assert!(env.contains("W_NAME=/lk/w\n"), "{env}");

    // rename: the new name answers, the old one is gone.
    f.ok(&["sandbox", "rename", "named", "renamed"]);
    f.ok(&["sandbox", "inspect", "renamed"]);
    f.fails(&["sandbox", "inspect", "named"], 1);
    let e = f.fails(&["sandbox", "rename", "renamed", "web"], 1);
    assert!(e.contains("already in use"), "{e}");
}

#[test]
fn published_port_is_reachable_from_a_lan_peer() {
    let f = Fixture::new();
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    f.ok(&["network", "create", "isolated_nw"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "web",
        "--network",
        "isolated_nw",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::81/udp",
        "--expose",
        "90",
    ]);
    let ns = f.sandbox_ns("web");
    let _server = TcpBanner::start(&ns, "0.0.0.0:80".parse().unwrap(), "hello from web").unwrap();
    let got = tcp_fetch(
        peer.netns(),
        "192.0.2.1:8080".parse().unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(got.starts_with("hello from web from 192.0.2.2"), "{got}");
    // Inspect shows the bindings the way `docker inspect` does.
    let v: Value = serde_json::from_str(&f.ok(&["sandbox", "inspect", "web"])).unwrap();
    let ports = &v[0]["Ports"];
    assert_eq!(ports["80/tcp"][0]["HostPort"], "8080", "{ports}");
    assert_eq!(ports["81/udp"][0]["HostIp"], "127.0.0.1", "{ports}");
    assert!(
        ports["81/udp"][0]["HostPort"]
            .as_str()
            .unwrap()
            .parse::<u16>()
            .unwrap()
            > 0
    );
    assert!(ports["90/tcp"].is_array(), "{ports}");
    let ls = f.ok(&["sandbox", "ls", "--format", "{{.Ports}}"]);
    assert!(ls.contains("0.0.0.0:8080->80/tcp"), "{ls}");
    // The same host port twice: Docker's message, and nothing is left of the second sandbox.
    let e = f.fails(
        &[
            "sandbox",
            "create",
            "--name",
            "web2",
            "--network",
            "isolated_nw",
            "-p",
            "8080:80",
        ],
        1,
    );
    assert!(e.contains("8080") && e.contains("already allocated"), "{e}");
    f.fails(&["sandbox", "inspect", "web2"], 1);
    let e = f.fails(&["sandbox", "create", "--name", "web3", "-p", "80/icmp"], 1);
    assert!(e.contains("protocol"), "{e}");
    // Removing the sandbox unpublishes the port.
    f.ok(&["sandbox", "rm", "web"]);
    assert!(
        tcp_fetch(
            peer.netns(),
            "192.0.2.1:8080".parse().unwrap(),
            Duration::from_millis(500)
        )
        .is_err()
    );
}
