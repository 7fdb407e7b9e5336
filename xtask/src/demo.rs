//! `cargo xtask demo`: the networking guide's walkthrough, live, against a `berth daemon` that runs
//! inside a throwaway network namespace, then its multi-host part (an overlay network across two
//! daemons sharing an etcd store, [`cluster`]). Every step prints the commands it runs, their
//! output and whether the result is the expected one; everything is removed at the end (also when
//! a step fails). The machine's own network namespace is never touched.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to true once the controller serves the embedded DNS server (127.0.0.11) in sandboxes on
/// user-defined networks; until then the name-resolution step says it is pending.
const DNS_LANDED: bool = true;
/// Set to false if the controller cannot publish ports (`-p`); the port step then says so.
const PORTS_LANDED: bool = true;

// (This file is included with `#[path]` from a function of main.rs, so its child is named by
// path too.)
#[path = "demo/cluster.rs"]
mod cluster;

type Result<T = ()> = std::result::Result<T, String>;

/// The demo's namespaces, files and daemon; dropping it removes all of them.
struct Demo {
    berth: PathBuf,
    dir: PathBuf,
    host_ns: String,
    lan_ns: String,
    daemon: Option<Child>,
    background: Vec<Child>,
    failures: Vec<String>,
    pending: Vec<String>,
    step: usize,
}

fn ip(args: &[&str]) -> Result {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Demo {
    fn host_arg(&self) -> String {
        format!("unix://{}", self.dir.join("berth.sock").display())
    }

    fn title(&mut self, what: &str) {
        self.step += 1;
        println!("\n\x1b[1m==> {}. {what}\x1b[0m", self.step);
    }

    /// Runs `berth ARGS`, echoing the command and its output.
    fn berth(&self, args: &[&str]) -> (bool, String) {
        run_berth(&self.berth, "", &self.host_arg(), args)
    }

    fn check(&mut self, ok: bool, good: &str, bad: &str) {
        if ok {
            println!("   \x1b[32mok\x1b[0m: {good}");
        } else {
            println!("   \x1b[31mFAILED\x1b[0m: {bad}");
            self.failures.push(format!("step {}: {bad}", self.step));
        }
    }

    fn pending(&mut self, what: &str) {
        println!("   \x1b[33mPENDING\x1b[0m: {what}");
        self.pending.push(format!("step {}: {what}", self.step));
    }

    fn ip_of(&self, sandbox: &str, network: &str) -> String {
        let t = format!("{{{{(index .Networks \"{network}\").IPAddress}}}}");
        let (_, out) = self.berth(&["sandbox", "inspect", "-f", &t, sandbox]);
        out.trim().to_owned()
    }

    fn ping(&self, from: &str, to: &str) -> bool {
        self.berth(&[
            "sandbox", "exec", from, "--", "busybox", "ping", "-c", "2", "-W", "1", to,
        ])
        .0
    }

    fn ping_quiet(&self, from: &str, to: &str) -> bool {
        println!("$ berth sandbox exec {from} -- busybox ping -c 1 -W 1 {to}");
        Command::new(&self.berth)
            .args([
                "sandbox", "exec", from, "--", "busybox", "ping", "-c", "1", "-W", "1", to,
            ])
            .env("BERTH_HOST", self.host_arg())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs a command in a namespace of the demo (`ip netns exec`), echoing it.
    fn in_ns(&self, ns: &str, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        match cmd.output() {
            Ok(o) => {
                if std::env::var_os("BERTH_DEMO_DEBUG").is_some() {
                    eprintln!(
                        "[{args:?}: {} {}]",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            }
            Err(_) => (false, String::new()),
        }
    }

    fn wait_for_daemon(&mut self) -> Result {
        wait_for_daemon(
            self.daemon.as_mut(),
            &self.dir.join("berth.sock"),
            &self.dir.join("daemon.log"),
        )
    }
}

/// Runs `berth ARGS` against the daemon at `host` (`unix://PATH`), echoing the command (after
/// `prompt`, which names the host when there are several) and its output.
fn run_berth(berth: &Path, prompt: &str, host: &str, args: &[&str]) -> (bool, String) {
    println!("{prompt}$ berth {}", args.join(" "));
    let out = Command::new(berth)
        .args(args)
        .env("BERTH_HOST", host)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            print!("{stdout}");
            if !stderr.is_empty() {
                print!("{stderr}");
            }
            (o.status.success(), stdout)
        }
        Err(e) => {
            println!("cannot run {}: {e}", berth.display());
            (false, String::new())
        }
    }
}

/// Waits (at most 60 s) until the daemon serving `socket` answers `/_ping`; fails early, with
/// its log, when it exits.
fn wait_for_daemon(mut daemon: Option<&mut Child>, socket: &Path, log: &Path) -> Result {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(d) = daemon.as_mut() {
            if let Ok(Some(status)) = d.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("berth daemon exited ({status}):\n{log}"));
            }
        }
        if let Ok(mut s) = UnixStream::connect(socket) {
            let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("berth daemon did not answer within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a daemon: SIGTERM, at most 20 s to exit, then SIGKILL.
fn stop_daemon(mut d: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = d.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = d.kill();
    let _ = d.wait();
}

/// Unmounts the namespaces a daemon bound under its `netns_dir` (sandboxes, overlay networks),
/// then the directory itself.
fn unmount_netns(netns_dir: &Path) {
    if !netns_dir.exists() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(netns_dir) {
        for e in entries.flatten() {
            let _ = Command::new("umount").arg("-l").arg(e.path()).status();
        }
    }
    let _ = Command::new("umount").arg("-l").arg(netns_dir).status();
}

impl Drop for Demo {
    fn drop(&mut self) {
        println!("\n\x1b[1m==> Cleaning up\x1b[0m");
        for mut c in self.background.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.daemon.is_some() {
            let host = self.host_arg();
            let run = |args: &[&str]| {
                let _ = Command::new(&self.berth)
                    .args(args)
                    .env("BERTH_HOST", &host)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            };
            for sb in [
                "container1",
                "container2",
                "container3",
                "container4",
                "web",
            ] {
                run(&["sandbox", "rm", "-f", sb]);
            }
            run(&["network", "rm", "-f", "isolated_nw"]);
        }
        if let Some(d) = self.daemon.take() {
            stop_daemon(d);
        }
        unmount_netns(&self.dir.join("run").join("netns"));
        let _ = std::fs::remove_dir_all(&self.dir);
        for ns in [&self.lan_ns, &self.host_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
        println!(
            "removed the daemon, its state, the sandboxes and the namespaces {} and {}",
            self.host_ns, self.lan_ns
        );
    }
}

/// Builds `berth` with `cargo`, then walks through the guide. `root` is the workspace root.
pub(super) fn run(root: &Path, mut build: Command) -> Result {
    println!("\x1b[1m==> Building berth\x1b[0m");
    build.args([
        "build",
        "--quiet",
        "--package",
        "berth-cli",
        "--bin",
        "berth",
    ]);
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building berth failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let berth = target.join("debug").join("berth");
    if !berth.exists() {
        return Err(format!("built berth not found at {}", berth.display()));
    }

    let pid = std::process::id();
    let host_ns = format!("berth-demo-{pid}-host");
    let lan_ns = format!("berth-demo-{pid}-lan");
    let dir = std::env::temp_dir().join(format!("berth-demo-{pid}"));
    std::fs::create_dir_all(dir.join("www"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(
        dir.join("www").join("index.html"),
        "hello from a berth sandbox\n",
    )
    .map_err(|e| format!("writing the demo page: {e}"))?;
    let mut demo = Demo {
        berth,
        dir: dir.clone(),
        host_ns: host_ns.clone(),
        lan_ns: lan_ns.clone(),
        daemon: None,
        background: Vec::new(),
        failures: Vec::new(),
        pending: Vec::new(),
        step: 0,
    };

    demo.title("A throwaway host and a LAN peer");
    println!(
        "the daemon's \"host\" is the namespace {host_ns}; {lan_ns} plays a machine on its LAN (192.0.2.0/24)"
    );
    ip(&["netns", "add", &host_ns])?;
    ip(&["netns", "add", &lan_ns])?;
    ip(&["-n", &host_ns, "link", "set", "lo", "up"])?;
    ip(&["-n", &lan_ns, "link", "set", "lo", "up"])?;
    ip(&[
        "-n", &host_ns, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns",
        &lan_ns,
    ])?;
    ip(&["-n", &host_ns, "addr", "add", "192.0.2.1/24", "dev", "lan0"])?;
    ip(&["-n", &lan_ns, "addr", "add", "192.0.2.2/24", "dev", "eth0"])?;
    ip(&["-n", &host_ns, "link", "set", "lan0", "up"])?;
    ip(&["-n", &lan_ns, "link", "set", "eth0", "up"])?;

    demo.title("Start berth daemon");
    let netns_path = format!("/run/netns/{host_ns}");
    let args = [
        "daemon".to_owned(),
        "--host".to_owned(),
        demo.host_arg(),
        "--netns".to_owned(),
        netns_path,
        "--data-root".to_owned(),
        dir.join("data").display().to_string(),
        "--exec-root".to_owned(),
        dir.join("run").display().to_string(),
    ];
    println!("$ berth {} &", args.join(" "));
    let log =
        std::fs::File::create(dir.join("daemon.log")).map_err(|e| format!("daemon log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("daemon log: {e}"))?;
    demo.daemon = Some(
        Command::new(&demo.berth)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting berth daemon: {e}"))?,
    );
    demo.wait_for_daemon()?;
    println!(
        "   ok: serving {} (log: {})",
        demo.host_arg(),
        dir.join("daemon.log").display()
    );

    demo.title("The default networks");
    let (ok, out) = demo.berth(&["network", "ls"]);
    demo.check(
        ok && ["bridge", "host", "none"].iter().all(|n| out.contains(n)),
        "bridge, host and none exist from the start",
        "the default networks are missing",
    );

    demo.title("Two sandboxes on the default bridge reach each other by IP");
    demo.berth(&["sandbox", "create", "--name", "container1"]);
    demo.berth(&["sandbox", "create", "--name", "container2"]);
    demo.berth(&["sandbox", "ls"]);
    let ip2 = demo.ip_of("container2", "bridge");
    let ok = !ip2.is_empty() && demo.ping("container1", &ip2);
    demo.check(
        ok,
        &format!("container1 pings container2 at {ip2}"),
        "container1 cannot ping container2",
    );

    demo.title("A user-defined network: isolated_nw");
    demo.berth(&["network", "create", "--driver", "bridge", "isolated_nw"]);
    let (_, sub) = demo.berth(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}subnet {{.Subnet}} gateway {{.Gateway}}{{end}}",
        "isolated_nw",
    ]);
    demo.check(
        sub.contains("subnet"),
        "isolated_nw got the next free default pool",
        "isolated_nw has no subnet",
    );
    demo.berth(&[
        "sandbox",
        "create",
        "--name",
        "container3",
        "--network",
        "isolated_nw",
    ]);
    demo.berth(&[
        "sandbox",
        "create",
        "--name",
        "container4",
        "--network",
        "isolated_nw",
    ]);
    demo.berth(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}\n{{end}}",
        "isolated_nw",
    ]);

    demo.title("container3 resolves container4 by name (embedded DNS)");
    if DNS_LANDED {
        let (ok, _) = demo.berth(&[
            "sandbox",
            "exec",
            "container3",
            "--",
            "busybox",
            "nslookup",
            "container4",
        ]);
        let pinged = demo.ping("container3", "container4");
        demo.check(
            ok && pinged,
            "container3 found container4 by name and pinged it",
            "name resolution on isolated_nw failed",
        );
    } else {
        demo.pending("the embedded DNS server (127.0.0.11) is not wired into the controller yet; this step will run `nslookup container4` and `ping container4` from container3 once it is");
    }

    demo.title("Isolation between bridge and isolated_nw");
    let ip1 = demo.ip_of("container1", "bridge");
    let ip4 = demo.ip_of("container4", "isolated_nw");
    let blocked = !demo.ping_quiet("container3", &ip1) && !demo.ping_quiet("container1", &ip4);
    demo.check(
        blocked,
        "no traffic crosses between the two networks",
        "traffic crossed between bridge and isolated_nw",
    );
    demo.berth(&["network", "connect", "isolated_nw", "container2"]);
    let ok = demo.ping("container2", &ip4);
    demo.check(
        ok,
        "container2, now on both networks, reaches container4 on isolated_nw",
        "container2 cannot reach container4 after connect",
    );
    demo.berth(&["network", "disconnect", "isolated_nw", "container2"]);
    let cut = !demo.ping_quiet("container2", &ip4);
    demo.check(
        cut,
        "after disconnect, container2 no longer reaches isolated_nw",
        "container2 still reaches isolated_nw after disconnect",
    );

    demo.title("A legacy link on the default bridge (--link container1:c1)");
    let (ok, _) = demo.berth(&[
        "sandbox",
        "create",
        "--name",
        "container5",
        "--link",
        "container1:c1",
    ]);
    let (_, hosts) = demo.berth(&["sandbox", "exec", "container5", "--", "cat", "/etc/hosts"]);
    let pinged = demo.ping("container5", "c1");
    demo.check(
        ok && hosts.contains(&format!("{ip1}\tc1 ")) && pinged,
        "container5 reaches container1 by its link alias c1 (an /etc/hosts entry, as in Docker)",
        "the legacy link to container1 does not resolve or answer",
    );

    demo.title("A published port, fetched from the LAN");
    if PORTS_LANDED {
        let (ok, _) = demo.berth(&[
            "sandbox",
            "create",
            "--name",
            "web",
            "--network",
            "isolated_nw",
            "-p",
            "8080:80",
        ]);
        if ok {
            let www = dir.join("www").display().to_string();
            println!("$ berth sandbox exec web -- busybox httpd -f -p 80 -h {www} &");
            match Command::new(&demo.berth)
                .args([
                    "sandbox", "exec", "web", "--", "busybox", "httpd", "-f", "-p", "80", "-h",
                    &www,
                ])
                .env("BERTH_HOST", demo.host_arg())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => demo.background.push(c),
                Err(e) => println!("cannot start httpd: {e}"),
            }
            demo.berth(&["sandbox", "ls", "--format", "table {{.Name}}\\t{{.Ports}}"]);
            println!("$ ip netns exec {lan_ns} busybox wget -q -O - http://192.0.2.1:8080/");
            // (busybox 1.35's wget crashes with -T, so the time limit comes from timeout(1).)
            let mut page = String::new();
            for _ in 0..40 {
                let (ok, out) = demo.in_ns(
                    &lan_ns,
                    &[
                        "timeout",
                        "3",
                        "busybox",
                        "wget",
                        "-q",
                        "-O",
                        "-",
                        "http://192.0.2.1:8080/",
                    ],
                );
                if ok {
                    page = out;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            print!("{page}");
            demo.check(
                page.contains("hello from a berth sandbox"),
                "the LAN peer fetched the page through the host's port 8080",
                "the LAN peer could not fetch http://192.0.2.1:8080/",
            );
        } else {
            demo.check(false, "", "publishing port 8080 failed");
        }
    } else {
        demo.pending("port publishing (-p) is not wired into the controller yet");
    }

    demo.title("The rules berth installed in the host namespace");
    let (ok, rules) = demo.in_ns(&host_ns, &["iptables-save"]);
    if ok && rules.contains("*filter") {
        summarise_iptables(&rules);
        demo.check(
            rules.contains("DOCKER-USER"),
            "berth's chains are in place, DOCKER-USER first in FORWARD",
            "no DOCKER-USER chain found",
        );
    } else {
        let (ok, nft) = demo.in_ns(&host_ns, &["nft", "list", "ruleset"]);
        print!("{nft}");
        demo.check(
            ok,
            "the nftables ruleset above is berth's",
            "could not read the host namespace's rules",
        );
    }

    let mut failures = std::mem::take(&mut demo.failures);
    let pending = std::mem::take(&mut demo.pending);
    let (berth, step) = (demo.berth.clone(), demo.step);
    drop(demo);

    // The guide's second part: an overlay network across two hosts sharing a key-value store.
    failures.extend(cluster::run(&berth, step));

    println!();
    if !pending.is_empty() {
        println!("pending (not built yet):");
        for p in &pending {
            println!("  - {p}");
        }
    }
    if failures.is_empty() {
        println!("\x1b[32mthe walkthrough passed\x1b[0m");
        Ok(())
    } else {
        Err(format!(
            "the walkthrough failed:\n  {}",
            failures.join("\n  ")
        ))
    }
}

/// Prints berth's chains with their rule counts, and the rules of the short ones.
fn summarise_iptables(save: &str) {
    let mut table = "";
    let mut counts: Vec<(String, String, usize)> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = match t {
                "filter" => "filter",
                "nat" => "nat",
                "raw" => "raw",
                "mangle" => "mangle",
                _ => "other",
            };
            continue;
        }
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let chain = rule.split_whitespace().next().unwrap_or("");
        let ours = chain.starts_with("BERTH")
            || chain == "DOCKER-USER"
            || rule.contains("-j BERTH")
            || rule.contains("-j DOCKER-USER");
        if !ours {
            continue;
        }
        match counts.iter_mut().find(|(t, c, _)| t == table && c == chain) {
            Some(entry) => entry.2 += 1,
            None => counts.push((table.to_owned(), chain.to_owned(), 1)),
        }
        if rule.contains("DNAT")
            || rule.contains("-j BERTH-FORWARD")
            || rule.contains("-j DOCKER-USER")
            || rule.contains("MASQUERADE")
        {
            shown.push(format!("  [{table}] -A {rule}"));
        }
    }
    println!("rules per chain (table, chain, rules):");
    for (t, c, n) in &counts {
        println!("  {t:<7} {c:<22} {n}");
    }
    println!("a few of them:");
    for s in shown.iter().take(12) {
        println!("{s}");
    }
}
