//! `berth daemon` settings from flags and a daemon.json-like file, and what the client says when
//! there is no daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::{BERTH, Fixture};
use serde_json::Value;

#[test]
fn config_file_settings_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(
        &cfg,
        r#"{
            "bip": "10.200.0.1/24",
            "default-address-pools": [{"base": "10.210.0.0/16", "size": 24}],
            "mtu": 1400,
            "firewall-backend": "nftables",
            "log-level": "debug"
        }"#,
    )
    .unwrap();
    let f = Fixture::with_args(&["--config-file", cfg.to_str().unwrap()]);
    let bridge: Value = serde_json::from_str(&f.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(bridge[0]["IPAM"]["Config"][0]["Subnet"], "10.200.0.0/24");
    assert_eq!(
        bridge[0]["Options"]["com.docker.network.driver.mtu"],
        "1400"
    );
    assert!(
        f.host
            .ip(&["addr", "show", "docker0"])
            .unwrap()
            .contains("inet 10.200.0.1/24")
    );
    f.ok(&["network", "create", "pooled"]);
    let sub = f.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "pooled",
    ]);
    assert_eq!(sub.trim(), "10.210.0.0/24");
    // The nftables backend is in use (berth's own table), and traffic on the user network flows.
    let nft = f.host.run("nft", &["list", "tables"]).unwrap();
    assert!(nft.contains("berth"), "{nft}");
    f.ok(&["sandbox", "create", "--name", "a", "--network", "pooled"]);
    f.ok(&["sandbox", "create", "--name", "b", "--network", "pooled"]);
    let ip = f.ip_of("b", "pooled");
    assert!(f.ping("a", &ip));
    f.ok(&["sandbox", "create", "--name", "c"]);
    f.ok(&["sandbox", "create", "--name", "d"]);
    let ip = f.ip_of("d", "bridge");
    assert!(
        f.ping("c", &ip),
        "icc is on by default on the default bridge"
    );
}

#[test]
fn icc_flag_applies_to_the_default_bridge() {
    let f = Fixture::with_args(&["--icc=false", "--ip-masq=false"]);
    let opts = f.ok(&["network", "inspect", "-f", "{{json .Options}}", "bridge"]);
    assert!(
        opts.contains("\"com.docker.network.bridge.enable_icc\":\"false\""),
        "{opts}"
    );
    assert!(
        opts.contains("\"com.docker.network.bridge.enable_ip_masquerade\":\"false\""),
        "{opts}"
    );
    f.ok(&["sandbox", "create", "--name", "c"]);
    f.ok(&["sandbox", "create", "--name", "d"]);
    let ip = f.ip_of("d", "bridge");
    assert!(
        !f.ping("c", &ip),
        "icc=false blocks traffic on the default bridge"
    );
}

#[test]
fn bad_settings_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], file: Option<&str>| {
        let mut cmd = Command::new(BERTH);
        cmd.arg("daemon")
            .arg("--host")
            .arg(format!("unix://{}/b.sock", dir.path().display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .arg("--netns")
            .arg("/nonexistent/netns")
            .args(args)
            .stdin(Stdio::null());
        if let Some(json) = file {
            let p = dir.path().join("d.json");
            std::fs::write(&p, json).unwrap();
            cmd.arg("--config-file").arg(p);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, e) = run(&["--bip", "10.1.0.1/24"], Some(r#"{"bip":"10.2.0.1/24"}"#));
    assert_eq!(code, Some(1));
    assert!(
        e.contains("specified both as a flag and in the configuration file") && e.contains("bip"),
        "{e}"
    );
    let (code, e) = run(&[], Some(r#"{"bogus-key": true}"#));
    assert_eq!(code, Some(1));
    assert!(
        e.contains("don't match any configuration option: bogus-key"),
        "{e}"
    );
    let (code, e) = run(&[], Some(r#"{"mtu": "big"}"#));
    assert_eq!(code, Some(1));
    assert!(e.contains("\"mtu\" must be a whole number"), "{e}");
    let (code, e) = run(&[], Some("{not json"));
    assert_eq!(code, Some(1));
    assert!(e.contains("not valid JSON"), "{e}");
    let (code, e) = run(&["--firewall-backend", "pf"], None);
    assert_eq!(code, Some(1));
    assert!(e.contains("use iptables or nftables"), "{e}");
    let (code, e) = run(&["--bip", "10.1.0.0/24"], None);
    assert_eq!(code, Some(1));
    assert!(e.contains("gateway"), "{e}");
    let (code, e) = run(&["--default-address-pool", "base=10.0.0.0/8,size=4"], None);
    assert_eq!(code, Some(1));
    assert!(e.contains("size"), "{e}");
    let (code, e) = run(&[], None);
    assert_eq!(code, Some(1));
    assert!(e.contains("/nonexistent/netns"), "{e}");
    let (code, _) = run(&["--mtu", "abc"], None);
    assert_eq!(code, Some(125));
    let out = Command::new(BERTH)
        .args(["daemon", "--host", "tcp://0.0.0.0:2375"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unix sockets"));
}

#[test]
fn client_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/none.sock", dir.path().display());
    for args in [
        vec!["network", "ls"],
        vec!["sandbox", "ls"],
        vec!["network", "create", "x"],
    ] {
        let out = Command::new(BERTH)
            .args(&args)
            .env("BERTH_HOST", &sock)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.starts_with(&format!(
                "Cannot connect to the berth daemon at {sock}. Is the berth daemon running?"
            )),
            "{e}"
        );
    }
    // --host wins over BERTH_HOST.
    let out = Command::new(BERTH)
        .args(["--host", "unix:///nonexistent/other.sock", "network", "ls"])
        .env("BERTH_HOST", &sock)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/other.sock"));
    let out = Command::new(BERTH).args(["--version"]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn ipv6_and_default_binding_address() {
    let f = Fixture::with_args(&[
        "--ipv6",
        "--fixed-cidr-v6",
        "2001:db8:1::/64",
        "--ip",
        "192.0.2.1",
    ]);
    let peer = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let bridge: Value = serde_json::from_str(&f.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(bridge[0]["EnableIPv6"], true);
    let subnets: Vec<&str> = bridge[0]["IPAM"]["Config"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["Subnet"].as_str())
        .collect();
    assert!(subnets.contains(&"2001:db8:1::/64"), "{subnets:?}");
    f.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "2001:db8:2::/64",
        "v6net",
    ]);
    f.ok(&["sandbox", "create", "--name", "a", "--network", "v6net"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "b",
        "--network",
        "v6net",
        "-p",
        "8080:80",
    ]);
    let b6 = f.ok(&[
        "sandbox",
        "inspect",
        "-f",
        "{{(index .Networks \"v6net\").IPv6Address}}",
        "b",
    ]);
    let b6 = b6.trim();
    assert!(b6.starts_with("2001:db8:2::"), "{b6}");
    // IPv6 neighbour discovery needs a moment before the first echo.
    let mut reached = false;
    for _ in 0..20 {
        if f.ping("a", b6) {
            reached = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(reached, "a reaches b over IPv6");
    // `--ip`: published ports bind the daemon's default address.
    let host_ip = f.ok(&[
        "sandbox",
        "inspect",
        "-f",
        "{{(index (index .Ports \"80/tcp\") 0).HostIp}}",
        "b",
    ]);
    assert_eq!(host_ip.trim(), "192.0.2.1");
    let ns = f.sandbox_ns("b");
    let _server =
        berth_testhost::traffic::TcpBanner::start(&ns, "0.0.0.0:80".parse().unwrap(), "b").unwrap();
    let got = berth_testhost::traffic::tcp_fetch(
        peer.netns(),
        "192.0.2.1:8080".parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    assert!(got.starts_with("b from 192.0.2.2"), "{got}");
}

#[test]
fn bridge_flag_and_key_choose_the_default_bridge() {
    let links = |f: &Fixture| {
        f.host
            .ip(&["-o", "link", "show", "type", "bridge"])
            .unwrap()
    };
    // A foreign docker0 (Docker's): without --bridge the daemon refuses it, naming the way out,
    // and leaves it as it was.
    let mut f = Fixture::unstarted(&[]);
    f.host
        .ip(&["link", "add", "docker0", "type", "bridge"])
        .unwrap();
    f.host
        .ip(&["addr", "add", "172.17.0.1/16", "dev", "docker0"])
        .unwrap();
    let status = f.try_start_with_env(&[]).unwrap_err();
    assert!(!status.success());
    let log = f.log();
    assert!(
        log.contains("bridge docker0 exists and was not made by berth")
            && log.contains("--bridge docker0"),
        "{log}"
    );
    let addrs = f
        .host
        .ip(&["-o", "addr", "show", "dev", "docker0"])
        .unwrap();
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert!(addrs.contains("172.17.0.1/16"), "{addrs}");

    // `-b docker0` uses it on purpose, with its address.
    f.extra_args = vec!["-b".into(), "docker0".into()];
    f.start();
    let sub = f.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "bridge",
    ]);
    assert_eq!(sub.trim(), "172.17.0.0/16");
    f.ok(&["sandbox", "create", "--name", "c"]);
    f.ok(&["sandbox", "create", "--name", "d"]);
    let ip = f.ip_of("d", "bridge");
    assert!(ip.starts_with("172.17.0."), "{ip}");
    assert!(f.ping("c", &ip));
    f.ok(&["sandbox", "rm", "c", "d"]);
    f.sigterm();

    // daemon.json `"bridge": "none"`: no default network (the stored one goes), docker0 stays.
    let cfg = f.dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"bridge": "none"}"#).unwrap();
    f.extra_args = vec!["--config-file".into(), cfg.display().to_string()];
    f.start();
    let names = f.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        names.split_whitespace().collect::<Vec<_>>(),
        ["host", "none"]
    );
    assert_eq!(links(&f).lines().count(), 1, "{}", links(&f));
    assert!(links(&f).contains("docker0"));
    f.sigterm();

    // As dockerd: -b and --bip together are refused; a bad name is refused by name.
    for (args, needle) in [
        (
            &["--bridge", "br-x", "--bip", "10.1.0.1/24"][..],
            "mutually exclusive",
        ),
        (&["--bridge", "a/b"][..], "invalid bridge \"a/b\""),
    ] {
        let mut g = Fixture::unstarted(args);
        assert!(g.try_start_with_env(&[]).is_err());
        assert!(g.log().contains(needle), "{needle}: {}", g.log());
    }
}

/// `berth daemon --teardown` on a stopped daemon's state: everything it made goes, and what it
/// changed in the host namespace is restored (docker0, berth's chains, ip_forward).
#[test]
fn daemon_teardown_removes_everything_and_restores_the_host() {
    // A fresh namespace has forwarding off; the daemon switched it on.
    let mut f = Fixture::new();
    f.ok(&["network", "create", "n"]);
    f.ok(&[
        "sandbox",
        "create",
        "--name",
        "web",
        "--network",
        "n",
        "-p",
        "8080:80",
    ]);
    assert!(f.host.ip(&["link", "show", "docker0"]).is_ok());
    f.sigterm();
    let out = f.daemon_command().arg("--teardown").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("removed sandbox web"), "{stdout}");
    assert!(stdout.contains("removed network bridge"), "{stdout}");
    assert!(
        stdout.contains("restored net.ipv4.ip_forward=0"),
        "{stdout}"
    );
    assert!(
        f.host.ip(&["link", "show", "docker0"]).is_err(),
        "docker0 gone"
    );
    let rules = f.host.run("iptables-save", &[]).unwrap();
    assert!(!rules.contains("BERTH"), "{rules}");
    assert_eq!(
        f.host
            .run("cat", &["/proc/sys/net/ipv4/ip_forward"])
            .unwrap(),
        "0\n"
    );
}
