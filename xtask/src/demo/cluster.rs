//! The guide's multi-host part ("overlay networks on a key-value store"), live: an underlay switch
//! (a namespace holding one bridge), an etcd server on a store host and two hosts on it, each with
//! a `berth daemon --cluster-store=etcd://.. --cluster-advertise=eth0`. An overlay network made on
//! host 1 shows up on host 2 with scope global, and a sandbox on host 2 pings one on host 1 by
//! name across the underlay. Everything (daemons, etcd, namespaces, files) is removed when the
//! [`Cluster`] drops, also when a step fails.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ip, run_berth, stop_daemon, unmount_netns, wait_for_daemon, Result};

/// The underlay's subnet, 192.168.100.0/24 (the single-host part uses 192.0.2.0/24).
const UNDERLAY: [u8; 3] = [192, 168, 100];
/// The last byte of the store host's underlay address (the hosts have 1 and 2).
const STORE_HOST: u8 = 3;
/// The bridge inside the switch namespace.
const SWITCH_BRIDGE: &str = "switch0";
/// The overlay network the part creates.
const NETWORK: &str = "ov";
/// The sandboxes: the host (index) each runs on, and its name.
const SANDBOXES: [(usize, &str); 2] = [(0, "web"), (1, "app")];
/// The network option that holds an overlay network's VXLAN id.
const VXLAN_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// How long a change made on one host may take to show on the other.
const CONVERGE: Duration = Duration::from_secs(10);
/// How long etcd may take to answer its first health check.
const ETCD_START: Duration = Duration::from_secs(20);

/// One host of the cluster: a namespace on the underlay and the daemon serving it.
struct Host {
    /// "host 1", "host 2": how the demo's output names it.
    label: String,
    ns: String,
    addr: Ipv4Addr,
    /// The daemon's socket, data and run directories, and log.
    dir: PathBuf,
    daemon: Option<Child>,
}

impl Host {
    fn socket(&self) -> PathBuf {
        self.dir.join("berth.sock")
    }

    fn host_arg(&self) -> String {
        format!("unix://{}", self.socket().display())
    }
}

/// The cluster's namespaces, files, etcd and daemons; dropping it removes all of them.
struct Cluster {
    berth: PathBuf,
    dir: PathBuf,
    /// The namespaces made so far, in the order they were made.
    namespaces: Vec<String>,
    switch_ns: String,
    store_ns: String,
    store_addr: Ipv4Addr,
    etcd: Option<Child>,
    hosts: Vec<Host>,
    failures: Vec<String>,
    step: usize,
}

/// Runs the multi-host part with `berth`, numbering its steps after `step`; returns its failures
/// (empty when every step passed), after everything it made is removed.
pub(super) fn run(berth: &Path, step: usize) -> Vec<String> {
    let pid = std::process::id();
    let [a, b, c] = UNDERLAY;
    let dir = std::env::temp_dir().join(format!("berth-demo-{pid}-cluster"));
    let hosts = (1..=2u8)
        .map(|n| Host {
            label: format!("host {n}"),
            ns: format!("berth-demo-{pid}-host{n}"),
            addr: Ipv4Addr::new(a, b, c, n),
            dir: dir.join(format!("host{n}")),
            daemon: None,
        })
        .collect();
    let mut cluster = Cluster {
        berth: berth.to_owned(),
        dir,
        namespaces: Vec::new(),
        switch_ns: format!("berth-demo-{pid}-switch"),
        store_ns: format!("berth-demo-{pid}-store"),
        store_addr: Ipv4Addr::new(a, b, c, STORE_HOST),
        etcd: None,
        hosts,
        failures: Vec::new(),
        step,
    };
    if let Err(e) = cluster.walk() {
        println!("   \x1b[31mFAILED\x1b[0m: {e}");
        cluster
            .failures
            .push(format!("step {} (multi-host): {e}", cluster.step));
    }
    std::mem::take(&mut cluster.failures)
}

impl Cluster {
    fn title(&mut self, what: &str) {
        self.step += 1;
        println!("\n\x1b[1m==> {}. {what}\x1b[0m", self.step);
    }

    fn check(&mut self, ok: bool, good: &str, bad: &str) {
        if ok {
            println!("   \x1b[32mok\x1b[0m: {good}");
        } else {
            println!("   \x1b[31mFAILED\x1b[0m: {bad}");
            self.failures
                .push(format!("step {} (multi-host): {bad}", self.step));
        }
    }

    /// Runs `berth ARGS` against host `h`'s daemon, echoing the command and its output.
    fn berth(&self, h: usize, args: &[&str]) -> (bool, String) {
        let host = &self.hosts[h];
        run_berth(
            &self.berth,
            &format!("[{}] ", host.label),
            &host.host_arg(),
            args,
        )
    }

    /// Runs `berth ARGS` against host `h`'s daemon without echoing anything.
    fn berth_quiet(&self, h: usize, args: &[&str]) -> (bool, String) {
        match Command::new(&self.berth)
            .args(args)
            .env("BERTH_HOST", self.hosts[h].host_arg())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        {
            Ok(o) => (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            ),
            Err(_) => (false, String::new()),
        }
    }

    /// Whether host `h` lists the overlay network (as `NAME DRIVER SCOPE`).
    fn lists_network(&self, h: usize) -> Option<String> {
        let (_, out) = self.berth_quiet(
            h,
            &[
                "network",
                "ls",
                "--format",
                "{{.Name}} {{.Driver}} {{.Scope}}",
            ],
        );
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(NETWORK))
            .map(str::to_owned)
    }

    /// Makes a namespace with its loopback up.
    fn add_ns(&mut self, ns: &str) -> Result {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// Plugs namespace `ns` into the switch: its `eth0` gets `addr`/24.
    fn plug(&self, ns: &str, port: &str, addr: Ipv4Addr) -> Result {
        let sw = self.switch_ns.as_str();
        ip(&[
            "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["-n", sw, "link", "set", port, "master", SWITCH_BRIDGE, "up"])?;
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])
    }

    fn etcd_url(&self) -> String {
        format!("http://{}:2379", self.store_addr)
    }

    /// `etcdctl endpoint health` inside the store namespace: whether it says healthy, and what
    /// it printed.
    fn etcd_health(&self) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.store_ns, "etcdctl"])
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd_url()])
            .args(["--dial-timeout", "1s", "--command-timeout", "2s"])
            .args(["endpoint", "health"])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                (o.status.success() && text.contains("is healthy"), text)
            }
            Err(e) => (false, format!("cannot run etcdctl (install etcd-client): {e}")),
        }
    }

    /// The underlay: the switch, the store host and the two hosts.
    fn make_underlay(&mut self) -> Result {
        let (sw, store) = (self.switch_ns.clone(), self.store_ns.clone());
        self.add_ns(&sw)?;
        ip(&["-n", &sw, "link", "add", SWITCH_BRIDGE, "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", SWITCH_BRIDGE, "up"])?;
        self.add_ns(&store)?;
        self.plug(&store, "ul-store", self.store_addr)?;
        println!("switch {sw} (bridge {SWITCH_BRIDGE}), on it:");
        println!("  store   {store}  eth0 {}/24", self.store_addr);
        for h in 0..self.hosts.len() {
            let (ns, addr) = (self.hosts[h].ns.clone(), self.hosts[h].addr);
            self.add_ns(&ns)?;
            self.plug(&ns, &format!("ul-host{}", h + 1), addr)?;
            println!("  {}  {ns}  eth0 {addr}/24", self.hosts[h].label);
        }
        let (from, to) = (self.hosts[0].ns.clone(), self.hosts[1].addr.to_string());
        println!("$ ip netns exec {from} busybox ping -c 1 -W 1 {to}");
        let ok = Command::new("ip")
            .args(["netns", "exec", &from, "busybox", "ping", "-c", "1", "-W", "1"])
            .arg(&to)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        self.check(
            ok,
            "host 1 reaches host 2 across the switch",
            "host 1 cannot reach host 2 on the underlay",
        );
        Ok(())
    }

    /// Starts etcd in the store namespace and waits until it says it is healthy.
    fn start_etcd(&mut self) -> Result {
        let etcd_dir = self.dir.join("etcd");
        std::fs::create_dir_all(&etcd_dir)
            .map_err(|e| format!("creating {}: {e}", etcd_dir.display()))?;
        let client = self.etcd_url();
        let peer = "http://127.0.0.1:2380";
        let data = etcd_dir.join("data").display().to_string();
        let initial = format!("berth-demo={peer}");
        let args = [
            "--name",
            "berth-demo",
            "--data-dir",
            &data,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            &initial,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "10",
            "--election-timeout",
            "100",
        ];
        println!("$ ip netns exec {} etcd {} &", self.store_ns, args.join(" "));
        let log_path = etcd_dir.join("etcd.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("etcd log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("etcd log: {e}"))?;
        self.etcd = Some(
            Command::new("ip")
                .args(["netns", "exec", &self.store_ns, "etcd"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| format!("starting etcd (install etcd-server): {e}"))?,
        );
        let started = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.etcd.as_mut().map(Child::try_wait) {
                self.etcd = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                return Err(format!(
                    "etcd exited ({status}); the end of its log:\n{tail}"
                ));
            }
            if self.etcd_health().0 {
                break;
            }
            if started.elapsed() > ETCD_START {
                return Err(format!(
                    "etcd was not healthy within {} s (log: {})",
                    ETCD_START.as_secs(),
                    log_path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let waited = started.elapsed().as_millis();
        println!(
            "$ ip netns exec {} etcdctl --endpoints {client} endpoint health",
            self.store_ns
        );
        let (ok, out) = self.etcd_health();
        print!("{out}");
        self.check(
            ok,
            &format!("etcd serves {client} (healthy {waited} ms after start)"),
            "etcd does not say it is healthy",
        );
        Ok(())
    }

    /// Starts host `h`'s daemon on the cluster store and waits until it answers.
    fn start_daemon(&mut self, h: usize) -> Result {
        let store = format!("--cluster-store=etcd://{}:2379", self.store_addr);
        let host = &self.hosts[h];
        std::fs::create_dir_all(&host.dir)
            .map_err(|e| format!("creating {}: {e}", host.dir.display()))?;
        let args = [
            "daemon".to_owned(),
            "--host".to_owned(),
            host.host_arg(),
            "--netns".to_owned(),
            format!("/run/netns/{}", host.ns),
            "--data-root".to_owned(),
            host.dir.join("data").display().to_string(),
            "--exec-root".to_owned(),
            host.dir.join("run").display().to_string(),
            store,
            "--cluster-advertise=eth0".to_owned(),
        ];
        println!("[{}] $ berth {} &", host.label, args.join(" "));
        let log_path = host.dir.join("daemon.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("daemon log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("daemon log: {e}"))?;
        let child = Command::new(&self.berth)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting berth daemon on {}: {e}", host.label))?;
        let socket = host.socket();
        let host = &mut self.hosts[h];
        host.daemon = Some(child);
        wait_for_daemon(host.daemon.as_mut(), &socket, &log_path)
            .map_err(|e| format!("{}: {e}", host.label))?;
        println!(
            "   ok: {} serves {} (log: {})",
            host.label,
            host.host_arg(),
            log_path.display()
        );
        Ok(())
    }

    /// The walk through the guide's multi-host part. An `Err` is a set-up step that failed (the
    /// rest cannot run); failed checks are collected in `failures`.
    fn walk(&mut self) -> Result {
        println!("\n\x1b[1m==> Multi-host: overlay networks on a key-value store\x1b[0m");
        self.title("An underlay: a switch, a store host and two hosts");
        self.make_underlay()?;

        self.title("A key-value store: etcd on the store host");
        self.start_etcd()?;

        self.title("berth daemon on each host, sharing the store");
        for h in 0..self.hosts.len() {
            self.start_daemon(h)?;
        }

        self.title("An overlay network created on host 1");
        let (ok, id) = self.berth(0, &["network", "create", "-d", "overlay", NETWORK]);
        self.check(
            ok && !id.trim().is_empty(),
            "host 1 created ov",
            "host 1 could not create an overlay network",
        );

        self.title("Host 2 lists ov with scope global");
        self.listed_on_host_2();

        self.title("The network's definition, as host 2 sees it");
        self.same_vxlan_id();

        self.title("A sandbox on each host: web on host 1, app on host 2");
        let web_ip = self.sandboxes();

        self.title("app on host 2 pings web on host 1 by name, across the underlay");
        self.ping_by_name(&web_ip);

        self.title("Remove the sandboxes and the network");
        self.remove();
        Ok(())
    }

    /// Waits until host 2 lists the network, then shows its `network ls`.
    fn listed_on_host_2(&mut self) {
        let started = Instant::now();
        while self.lists_network(1).is_none() && started.elapsed() < CONVERGE {
            std::thread::sleep(Duration::from_millis(50));
        }
        let waited = started.elapsed().as_millis();
        let (_, table) = self.berth(1, &["network", "ls"]);
        // The table's columns: NETWORK ID, NAME, DRIVER, SCOPE.
        let listed = table.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() == 4 && cols[1] == NETWORK && cols[2] == "overlay" && cols[3] == "global"
        });
        self.check(
            listed,
            &format!("host 2 lists ov (overlay, global) {waited} ms after host 1 created it"),
            &format!(
                "host 2 does not list ov as an overlay with scope global within {} s",
                CONVERGE.as_secs()
            ),
        );
    }

    /// Shows the network's definition on host 2 and checks both hosts have the same VXLAN id.
    fn same_vxlan_id(&mut self) {
        let (ok, inspect) = self.berth(1, &["network", "inspect", NETWORK]);
        let template = format!("{{{{index .Options \"{VXLAN_OPTION}\"}}}}");
        let vni = |h: usize| {
            let (_, out) = self.berth(h, &["network", "inspect", "-f", &template, NETWORK]);
            out.trim().to_owned()
        };
        let (vni1, vni2) = (vni(0), vni(1));
        self.check(
            ok && inspect.contains(VXLAN_OPTION) && vni1.parse::<u32>().is_ok() && vni1 == vni2,
            &format!("both hosts carry ov on VXLAN id {vni1}"),
            &format!("the hosts do not agree on ov's VXLAN id ({vni1:?} and {vni2:?})"),
        );
    }

    /// Creates the sandboxes; returns web's address on the network (empty if it has none).
    fn sandboxes(&mut self) -> String {
        let template = format!("{{{{(index .Networks \"{NETWORK}\").IPAddress}}}}");
        let mut ips = Vec::new();
        for (h, name) in SANDBOXES {
            let create = ["sandbox", "create", "--name", name, "--network", NETWORK];
            let (ok, _) = self.berth(h, &create);
            let (_, ip) = self.berth(h, &["sandbox", "inspect", "-f", &template, name]);
            ips.push(if ok { ip.trim().to_owned() } else { String::new() });
        }
        self.check(
            ips.iter().all(|i| !i.is_empty()),
            &format!("web has {} on host 1, app has {} on host 2", ips[0], ips[1]),
            "a sandbox on ov could not be created",
        );
        ips[0].clone()
    }

    /// From app (host 2), pings web (host 1) by name; checks the name resolved to `web_ip`.
    fn ping_by_name(&mut self, web_ip: &str) {
        let ping = |count: &'static str| {
            ["sandbox", "exec", "app", "--", "busybox", "ping", "-c", count, "-W", "1", "web"]
        };
        let started = Instant::now();
        while !self.berth_quiet(1, &ping("1")).0 && started.elapsed() < CONVERGE {
            std::thread::sleep(Duration::from_millis(100));
        }
        let waited = started.elapsed().as_millis();
        let (ok, out) = self.berth(1, &ping("3"));
        let resolved = !web_ip.is_empty() && out.contains(&format!("({web_ip})"));
        self.check(
            ok && resolved,
            &format!("app resolved web to {web_ip} and reached it (first reply: {waited} ms)"),
            "app on host 2 cannot ping web on host 1 by name",
        );
    }

    /// Removes the sandboxes, then the network; checks both hosts forget it.
    fn remove(&mut self) {
        let (ok_app, _) = self.berth(1, &["sandbox", "rm", "app"]);
        let (ok_web, _) = self.berth(0, &["sandbox", "rm", "web"]);
        let (ok_net, _) = self.berth(0, &["network", "rm", NETWORK]);
        let started = Instant::now();
        while self.lists_network(1).is_some() && started.elapsed() < CONVERGE {
            std::thread::sleep(Duration::from_millis(50));
        }
        let gone = self.lists_network(0).is_none() && self.lists_network(1).is_none();
        self.berth(1, &["network", "ls"]);
        self.check(
            ok_app && ok_web && ok_net && gone,
            "the sandboxes are gone, and ov is gone from both hosts",
            "removing the sandboxes or ov failed, or host 2 still lists ov",
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        println!("\n\x1b[1m==> Cleaning up the cluster\x1b[0m");
        // What a failed step may have left, while the daemons and the store still run.
        for h in 0..self.hosts.len() {
            if self.hosts[h].daemon.is_some() {
                for (_, name) in SANDBOXES {
                    self.berth_quiet(h, &["sandbox", "rm", "-f", name]);
                }
            }
        }
        if self.hosts.first().is_some_and(|h| h.daemon.is_some()) {
            self.berth_quiet(0, &["network", "rm", "-f", NETWORK]);
        }
        for host in &mut self.hosts {
            if let Some(d) = host.daemon.take() {
                stop_daemon(d);
            }
            unmount_netns(&host.dir.join("run").join("netns"));
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        println!(
            "removed the two daemons, etcd, their state and the namespaces {}",
            self.namespaces.join(", ")
        );
    }
}
