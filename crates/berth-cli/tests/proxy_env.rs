//! The guide's "Use a proxy server with containers": the proxy settings of the client's
//! configuration (`--config DIR`, its config.json's `proxies`) become the environment of new
//! sandboxes, kept across a restart and given to `sandbox exec`. Proven with real traffic: a
//! sandbox with no route to a web server fetches its page through a proxy (tinyproxy) in a LAN
//! peer, found only through that environment; a `noProxy` host is reached directly.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Fixture;

/// A process killed and reaped on drop (also when the test panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PROXY: &str = "http://192.0.2.2:8888";

/// `wget` of `url` from inside sandbox `name`, through `berth sandbox exec` (so with the
/// sandbox's environment): the page, or None.
fn fetch(f: &Fixture, name: &str, url: &str) -> Option<String> {
    let out = f.berth(&[
        "sandbox",
        "exec",
        name,
        "--",
        "wget",
        "-q",
        "-O-",
        "-T",
        "3",
        "--tries=1",
        url,
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn env_of(f: &Fixture, name: &str) -> Vec<String> {
    let out = f.ok(&["sandbox", "inspect", "-f", "{{json .Env}}", name]);
    serde_json::from_str::<Option<Vec<String>>>(out.trim())
        .unwrap()
        .unwrap_or_default()
}

fn write_config(dir: &std::path::Path, json: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
}

#[test]
fn sandboxes_reach_the_web_through_the_clients_proxy() {
    let mut f = Fixture::new();
    let tmp = tempfile::tempdir().unwrap();

    // The LAN: a proxy peer, and behind it (reachable only from the proxy) a web server.
    let proxy = f.host.add_lan_peer("192.0.2.1/24", "192.0.2.2/24").unwrap();
    let web = proxy
        .add_lan_peer("198.51.100.1/24", "198.51.100.2/24")
        .unwrap();
    let docroot = tmp.path().join("www");
    std::fs::create_dir_all(&docroot).unwrap();
    std::fs::write(docroot.join("index.html"), "through-the-proxy\n").unwrap();
    let _web_server = web
        .spawn(
            "busybox",
            &[
                "httpd",
                "-f",
                "-p",
                "198.51.100.2:80",
                "-h",
                docroot.to_str().unwrap(),
            ],
        )
        .unwrap();
    let proxy_log = tmp.path().join("tinyproxy.log");
    let proxy_conf = tmp.path().join("tinyproxy.conf");
    std::fs::write(
        &proxy_conf,
        format!(
            "Port 8888\nListen 192.0.2.2\nTimeout 10\nMaxClients 20\nAllow 192.0.2.0/24\n\
             LogLevel Info\nLogFile \"{}\"\n",
            proxy_log.display()
        ),
    )
    .unwrap();
    let _proxy_server = proxy
        .spawn("tinyproxy", &["-d", "-c", proxy_conf.to_str().unwrap()])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy
        .run("ss", &["-ltn"])
        .unwrap()
        .contains("192.0.2.2:8888")
    {
        assert!(Instant::now() < deadline, "tinyproxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    f.ok(&["network", "create", "nw"]);
    // A web server on the network itself: the proxy has no route to it, so only a direct
    // fetch (noProxy) reaches it.
    f.ok(&["sandbox", "create", "--name", "site", "--network", "nw"]);
    let site_ip = f.ip_of("site", "nw");
    std::fs::write(docroot.join("direct.html"), "direct\n").unwrap();
    let _site_server = Killed(
        f.sandbox_ns("site")
            .command("busybox")
            .args(["httpd", "-f", "-p", &format!("{site_ip}:80")])
            .args(["-h", docroot.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Without the client configuration, the web server is out of reach.
    let none = tmp.path().join("no-config");
    std::fs::create_dir_all(&none).unwrap();
    f.ok(&[
        "--config",
        none.to_str().unwrap(),
        "sandbox",
        "create",
        "--name",
        "plain",
        "--network",
        "nw",
    ]);
    assert!(env_of(&f, "plain").is_empty(), "{:?}", env_of(&f, "plain"));
    assert_eq!(
        fetch(&f, "plain", "http://198.51.100.2/"),
        None,
        "no route out"
    );

    // The entry for this daemon's host wins over "default" (not merged with it).
    let config = tmp.path().join("docker");
    write_config(
        &config,
        &format!(
            r#"{{"auths": {{}}, "proxies": {{
                "default": {{"httpProxy": "http://192.0.2.2:9", "ftpProxy": "ftp://unused:21"}},
                "{host}": {{"httpProxy": "{PROXY}", "noProxy": "{site_ip}"}}
            }}}}"#,
            host = f.host_arg()
        ),
    );
    let cfg = config.to_str().unwrap();
    f.ok(&[
        "--config",
        cfg,
        "sandbox",
        "create",
        "--name",
        "app",
        "--network",
        "nw",
        "-e",
        "GREETING=hi",
    ]);
    let env = env_of(&f, "app");
    for want in [
        format!("HTTP_PROXY={PROXY}"),
        format!("http_proxy={PROXY}"),
        format!("NO_PROXY={site_ip}"),
        format!("no_proxy={site_ip}"),
        "GREETING=hi".to_owned(),
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert!(
        !env.iter()
            .any(|e| e.to_ascii_lowercase().starts_with("ftp_proxy=")),
        "the host entry replaces default: {env:?}"
    );

    assert_eq!(
        fetch(&f, "app", "http://198.51.100.2/").as_deref(),
        Some("through-the-proxy")
    );
    let log = std::fs::read_to_string(&proxy_log).unwrap_or_default();
    assert!(log.contains("198.51.100.2"), "the proxy carried it: {log}");
    assert_eq!(
        fetch(&f, "app", &format!("http://{site_ip}/direct.html")).as_deref(),
        Some("direct"),
        "a noProxy host is reached directly (the proxy has no route to it)"
    );

    // An explicit --env wins over the configuration, name by name as in Docker.
    f.ok(&[
        "--config",
        cfg,
        "sandbox",
        "create",
        "--name",
        "own",
        "--network",
        "nw",
        "-e",
        "http_proxy=http://192.0.2.2:9",
    ]);
    let env = env_of(&f, "own");
    assert!(
        env.contains(&"http_proxy=http://192.0.2.2:9".to_owned()),
        "{env:?}"
    );
    assert_eq!(
        env.iter().filter(|e| e.starts_with("http_proxy=")).count(),
        1,
        "{env:?}"
    );
    assert_eq!(
        fetch(&f, "own", "http://198.51.100.2/"),
        None,
        "its own proxy is closed"
    );

    // A restart keeps the environment, and exec still uses it.
    f.sigterm();
    f.start();
    assert!(env_of(&f, "app").contains(&format!("http_proxy={PROXY}")));
    assert_eq!(
        fetch(&f, "app", "http://198.51.100.2/").as_deref(),
        Some("through-the-proxy")
    );

    // A bad configuration file names the file and the key, and nothing is created.
    let bad = tmp.path().join("bad");
    write_config(&bad, r#"{"proxies": {"default": {"httpProxy": 8888}}}"#);
    let err = f.fails(
        &[
            "--config",
            bad.to_str().unwrap(),
            "sandbox",
            "create",
            "--name",
            "nope",
        ],
        1,
    );
    assert!(
        err.contains(&bad.join("config.json").display().to_string()) && err.contains("httpProxy"),
        "{err}"
    );
    let ls = f.ok(&["sandbox", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.lines().any(|l| l == "nope"), "{ls}");
}
