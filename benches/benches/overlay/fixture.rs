//! The overlay bench's fixtures: a cluster (an underlay switch with etcd on a host of its own),
//! berth hosts on it, a store that counts its requests, an ICMP prober and iperf3. Everything
//! lives in throwaway namespaces and goes on drop, also on panic.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth::{
    Config, Controller, EndpointOptions, FirewallBackend, IpamPoolConfig, NetworkCreate,
    SandboxCreate,
};
use berth_driver::{Driver, NetworkId};
use berth_overlay::{OverlayConfig, OverlayDriver};
use berth_store::{
    EtcdConfig, EtcdStore, KvStore, LeaseId, Listing, Result as StoreResult, Txn, Watch,
};
use berth_testhost::TestHost;
use berth_testhost::berth_netlink::{Handle, Netns};
use berth_testhost::cluster::{Underlay, UnderlayHost};
use berth_testhost::etcd::Etcd;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// An underlay switch with etcd serving on a host of its own on it (`http://192.168.200.1:2379`):
/// every berth host reaches it over the underlay from its own namespace, as a real cluster does.
pub(crate) struct Cluster {
    // Dropped in this order: etcd before its namespace, the hosts before the switch.
    etcd: Etcd,
    etcd_host: UnderlayHost,
    pub(crate) underlay: Underlay,
}

impl Cluster {
    pub(crate) fn new() -> Cluster {
        let underlay = Underlay::new().expect("an underlay (run the benches as root)");
        let etcd_host = underlay.add_host().expect("the etcd host");
        let etcd = Etcd::start(etcd_host.host.name(), etcd_host.addr).expect("etcd (etcd-server)");
        Cluster {
            etcd,
            etcd_host,
            underlay,
        }
    }

    /// A client of the cluster's etcd, keys under `root`, connecting from inside `host`.
    pub(crate) fn store_from(&self, host: &UnderlayHost, root: &str) -> EtcdStore {
        let ns = File::open(host.host.path()).expect("the host's namespace");
        let config = EtcdConfig::new([self.etcd.client_url()])
            .with_root(root)
            .with_netns(ns.into());
        EtcdStore::connect(config).expect("connected to etcd")
    }

    /// A client on the etcd host itself (for the synthetic peers of the scale scenario).
    pub(crate) fn publisher(&self, root: &str) -> EtcdStore {
        self.store_from(&self.etcd_host, root)
    }
}

/// One berth host: a namespace on the underlay with a controller (iptables backend, data root on
/// the disk, exec root on a tmpfs as `/run/berth` is) and the overlay driver, both on the host's
/// own etcd client. The lease has the default time to live (10 s).
pub(crate) struct Node {
    ctl: Option<Controller>,
    pub(crate) overlay: Arc<OverlayDriver>,
    /// The counting wrapper around the etcd client, when the node was made with one.
    pub(crate) counts: Option<Arc<Counting>>,
    _data: tempfile::TempDir,
    run: tempfile::TempDir,
    pub(crate) ul: UnderlayHost,
}

impl Node {
    pub(crate) fn new(cluster: &Cluster, root: &str, counting: bool) -> Node {
        let ul = cluster.underlay.add_host().expect("an underlay host");
        let etcd = cluster.store_from(&ul, root);
        let (store, counts): (Arc<dyn KvStore>, _) = if counting {
            let c = Arc::new(Counting::new(etcd));
            (c.clone(), Some(c))
        } else {
            (Arc::new(etcd), None)
        };
        let data = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut config = Config::new(data.path().join("data"), run.path().join("run"));
        config.host_netns = Some(ul.host.path());
        config.firewall = Some(FirewallBackend::Iptables);
        let overlay = Arc::new(
            OverlayDriver::new(
                ul.host.netns(),
                store.clone(),
                OverlayConfig::new(ul.addr, config.netns_dir()),
            )
            .unwrap(),
        );
        let ctl = Controller::builder(config)
            .driver_arc(overlay.clone() as Arc<dyn Driver>)
            .cluster_store(store)
            .build()
            .unwrap();
        Node {
            ctl: Some(ctl),
            overlay,
            counts,
            _data: data,
            run,
            ul,
        }
    }

    pub(crate) fn ctl(&self) -> &Controller {
        self.ctl.as_ref().expect("a running controller")
    }

    pub(crate) fn sandbox(&self, name: &str) {
        self.ctl().create_sandbox(SandboxCreate::new(name)).unwrap();
    }

    pub(crate) fn connect(&self, sandbox: &str, network: &str) {
        self.ctl()
            .connect(sandbox, network, EndpointOptions::default())
            .unwrap();
    }

    /// Creates sandbox `name` and connects it to `network`; its address there.
    pub(crate) fn sandbox_on(&self, name: &str, network: &str) -> Ipv4Addr {
        self.sandbox(name);
        self.connect(name, network);
        self.ip_of(name, network)
    }

    pub(crate) fn ip_of(&self, sandbox: &str, network: &str) -> Ipv4Addr {
        self.ctl().inspect_sandbox(sandbox).unwrap().networks[network]
            .ip_address
            .parse()
            .unwrap()
    }

    pub(crate) fn sandbox_ns(&self, name: &str) -> Netns {
        self.ctl().sandbox_netns(name).unwrap()
    }

    pub(crate) fn network_id(&self, name: &str) -> NetworkId {
        self.ctl()
            .inspect_network(name)
            .unwrap()
            .id
            .parse()
            .unwrap()
    }

    /// Links in the host namespace and in the overlay namespaces: back to a level once the
    /// kernel has torn removed sandboxes down.
    pub(crate) fn links(&self, networks: &[NetworkId]) -> usize {
        let count = |ns: &Netns| {
            Handle::open(ns)
                .and_then(|h| h.link_list())
                .map_or(0, |l| l.len())
        };
        let mut n = count(self.ul.host.netns());
        for id in networks {
            if let Ok(ns) = Netns::open(self.overlay.netns_path(id)) {
                n += count(&ns);
            }
        }
        n
    }

    /// Waits (at most 30 s) until [`Node::links`] is down to `level`.
    pub(crate) fn settle(&self, networks: &[NetworkId], level: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.links(networks) > level && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (at most `secs`) until `cond` holds; panics naming `what` if it does not.
    pub(crate) fn wait(what: &str, secs: u64, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.ctl = None;
        let dir = self.run.path().join("run").join("netns");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = Netns::delete_named_in(&dir, &e.file_name().to_string_lossy());
            }
        }
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `docker network create -d overlay --subnet SUBNET NAME`.
pub(crate) fn overlay(name: &str, subnet: &str) -> NetworkCreate {
    let mut req = NetworkCreate::new(name).subnet(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    });
    req.driver = "overlay".into();
    req
}

/// `docker network create --subnet SUBNET NAME` (bridge).
pub(crate) fn bridge(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate::new(name).subnet(IpamPoolConfig {
        subnet: Some(subnet.parse().unwrap()),
        ..Default::default()
    })
}

/// The kinds of store request [`Counting`] tells apart.
pub(crate) const KINDS: [&str; 13] = [
    "get",
    "list",
    "commit",
    "put",
    "put_with_lease",
    "delete",
    "compare_and_swap",
    "watch",
    "revision",
    "compact_revision",
    "grant_lease",
    "keep_alive",
    "revoke_lease",
];
const KEEP_ALIVE: usize = 11;

/// A [`KvStore`] that hands every call to etcd and counts it by kind (one call is one request
/// to etcd, but for a listing of more than 1000 keys, which is read in pages).
pub(crate) struct Counting {
    inner: EtcdStore,
    counts: [AtomicU64; 13],
}

/// A snapshot of a [`Counting`] store's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts(pub(crate) [u64; 13]);

impl Counts {
    pub(crate) fn since(self, before: Counts) -> Counts {
        Counts(std::array::from_fn(|i| self.0[i] - before.0[i]))
    }

    pub(crate) fn total(self) -> u64 {
        self.0.iter().sum()
    }

    /// Everything but lease keep-alives.
    pub(crate) fn besides_keep_alive(self) -> u64 {
        self.total() - self.0[KEEP_ALIVE]
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = KINDS
            .iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

impl Counting {
    fn new(inner: EtcdStore) -> Counting {
        Counting {
            inner,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn count(&self, kind: usize) {
        self.counts[kind].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counts {
        Counts(std::array::from_fn(|i| {
            self.counts[i].load(Ordering::Relaxed)
        }))
    }
}

impl KvStore for Counting {
    fn get(&self, key: &str) -> StoreResult<Option<berth_store::Entry>> {
        self.count(0);
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> StoreResult<Listing> {
        self.count(1);
        self.inner.list(prefix)
    }
    fn commit(&self, txn: Txn) -> StoreResult<u64> {
        self.count(2);
        self.inner.commit(txn)
    }
    fn put(&self, key: &str, value: &[u8]) -> StoreResult<u64> {
        self.count(3);
        self.inner.put(key, value)
    }
    fn put_with_lease(&self, key: &str, value: &[u8], lease: LeaseId) -> StoreResult<u64> {
        self.count(4);
        self.inner.put_with_lease(key, value, lease)
    }
    fn delete(&self, key: &str) -> StoreResult<bool> {
        self.count(5);
        self.inner.delete(key)
    }
    fn compare_and_swap(
        &self,
        key: &str,
        expect: berth_store::Expect,
        value: Option<&[u8]>,
    ) -> StoreResult<u64> {
        self.count(6);
        self.inner.compare_and_swap(key, expect, value)
    }
    fn watch(&self, prefix: &str, after_revision: u64) -> StoreResult<Watch> {
        self.count(7);
        self.inner.watch(prefix, after_revision)
    }
    fn revision(&self) -> StoreResult<u64> {
        self.count(8);
        self.inner.revision()
    }
    fn compact_revision(&self) -> StoreResult<u64> {
        self.count(9);
        self.inner.compact_revision()
    }
    fn grant_lease(&self, ttl: Duration) -> StoreResult<LeaseId> {
        self.count(10);
        self.inner.grant_lease(ttl)
    }
    fn keep_alive(&self, lease: LeaseId) -> StoreResult<Duration> {
        self.count(KEEP_ALIVE);
        self.inner.keep_alive(lease)
    }
    fn revoke_lease(&self, lease: LeaseId) -> StoreResult<()> {
        self.count(12);
        self.inner.revoke_lease(lease)
    }
}

/// ICMP echo from inside a namespace, on a raw socket (the kernel of the target answers; no
/// process is started per probe).
pub(crate) struct Pinger {
    sock: Socket,
    id: u16,
    seq: u16,
}

impl Pinger {
    pub(crate) fn new(ns: &Netns) -> Pinger {
        let sock = ns
            .run(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))
            .unwrap()
            .expect("a raw ICMP socket (run as root)");
        let id = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
            & 0xffff) as u16;
        Pinger { sock, id, seq: 0 }
    }

    fn send(&mut self, to: Ipv4Addr) {
        self.seq = self.seq.wrapping_add(1);
        let mut pkt = [0u8; 24];
        pkt[0] = 8; // echo request
        pkt[4..6].copy_from_slice(&self.id.to_be_bytes());
        pkt[6..8].copy_from_slice(&self.seq.to_be_bytes());
        pkt[8..].copy_from_slice(b"berth overlay 16");
        let sum = checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
        let addr = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(to, 0)));
        // A send refused (no route yet, a neighbour that failed) is one more probe lost.
        let _ = self.sock.send_to(&pkt, &addr);
    }

    /// Whether an echo reply from `from` to this pinger arrives within `wait`.
    fn answered(&self, from: Ipv4Addr, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut buf = [0u8; 1500];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.sock.set_read_timeout(Some(left));
            // A raw IPv4 socket reads the IP header too: the source is in it.
            let Ok(n) = (&self.sock).read(&mut buf) else {
                return false;
            };
            let pkt = &buf[..n];
            let ihl = usize::from(pkt.first().copied().unwrap_or(0) & 0x0f) * 4;
            let (Some(src), Some(icmp)) = (pkt.get(12..16), pkt.get(ihl..ihl + 8)) else {
                continue;
            };
            if icmp[0] == 0 && icmp[4..6] == self.id.to_be_bytes() && src == from.octets() {
                return true;
            }
        }
    }

    /// Sends an echo request to `to` every `every` until one is answered; when the answer came
    /// (`None` if none came by `deadline`).
    pub(crate) fn first_answer(
        &mut self,
        to: Ipv4Addr,
        every: Duration,
        deadline: Instant,
    ) -> Option<Instant> {
        while Instant::now() < deadline {
            self.send(to);
            if self.answered(to, every) {
                return Some(Instant::now());
            }
        }
        None
    }
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An `iperf3 -s` in a namespace; killed on drop.
pub(crate) struct IperfServer(Child);

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The iperf3 port.
const IPERF_PORT: &str = "5201";

/// Starts `iperf3 -s` bound to `addr` inside `ns` and waits until it listens.
pub(crate) fn iperf_server(ns: &Netns, addr: IpAddr) -> IperfServer {
    let child = ns
        .command("iperf3")
        .args(["-s", "-B", &addr.to_string(), "-p", IPERF_PORT])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3, or cargo xtask install-deps)");
    let server = IperfServer(child);
    Node::wait("iperf3 to listen", 10, || {
        ns.command("ss")
            .args(["-Hltn", &format!("sport = :{IPERF_PORT}")])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    });
    server
}

/// Runs an iperf3 TCP test of `secs` seconds from inside `ns` to `to`; the receiver's rate in
/// Gbit/s.
pub(crate) fn iperf_tcp(ns: &Netns, to: IpAddr, secs: u32) -> f64 {
    let out = ns
        .command("iperf3")
        .args(["-c", &to.to_string(), "-p", IPERF_PORT, "-J"])
        .args(["-t", &secs.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("iperf3 runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 to {to}: unreadable report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    if let Some(err) = report.get("error") {
        panic!("iperf3 to {to}: {err}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 to {to}: no receiver rate in {report}"))
        / 1e9
}

/// The inner addresses of the bare hand-made tunnel (`vx0`, on the hosts themselves).
pub(crate) const BARE: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 250, 0, 1), Ipv4Addr::new(10, 250, 0, 2)];
/// The inner addresses of the bridged hand-made tunnel (`eth0` of a sandbox namespace).
pub(crate) const BRIDGED: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 251, 0, 1), Ipv4Addr::new(10, 251, 0, 2)];

/// Two more hosts on the underlay joined by VXLANs made by hand with iproute2, set up as berth
/// sets up its own (UDP port 4789, learning off, ARP answered from static neighbour entries
/// (`proxy`), a static forwarding entry per remote MAC, the overlay's MTU):
/// - `vx0` (VNI 100) with the inner address on the device itself ([`BARE`]): the bare tunnel;
/// - `vx1` (VNI 101) a port of bridge `hbr0`, which a veth from a sandbox namespace joins
///   ([`BRIDGED`]): berth's topology (sandbox, veth, bridge, VXLAN), built by hand.
pub(crate) struct HandVxlan {
    pub(crate) sandboxes: [TestHost; 2],
    pub(crate) hosts: [UnderlayHost; 2],
}

impl HandVxlan {
    pub(crate) fn new(cluster: &Cluster, mtu: u32) -> HandVxlan {
        let hosts = [
            cluster.underlay.add_host().unwrap(),
            cluster.underlay.add_host().unwrap(),
        ];
        let sandboxes = [TestHost::new().unwrap(), TestHost::new().unwrap()];
        let mac = |dev: u8, i: usize| format!("02:00:0a:{:02x}:00:{:02x}", 0xfa + dev, i + 1);
        let mtu = mtu.to_string();
        for i in 0..2 {
            let (h, sb) = (&hosts[i].host, &sandboxes[i]);
            let local = hosts[i].addr.to_string();
            for (dev, vni) in [("vx0", "100"), ("vx1", "101")] {
                h.ip(&[
                    "link",
                    "add",
                    dev,
                    "mtu",
                    &mtu,
                    "type",
                    "vxlan",
                    "id",
                    vni,
                    "local",
                    &local,
                    "dstport",
                    "4789",
                    "nolearning",
                    "proxy",
                ])
                .unwrap();
            }
            h.ip(&["link", "set", "vx0", "address", &mac(0, i), "up"])
                .unwrap();
            h.ip(&["addr", "add", &format!("{}/24", BARE[i]), "dev", "vx0"])
                .unwrap();
            h.ip(&["link", "add", "hbr0", "mtu", &mtu, "type", "bridge"])
                .unwrap();
            h.ip(&[
                "link",
                "set",
                "hbr0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])
            .unwrap();
            h.ip(&["link", "set", "vx1", "master", "hbr0", "up"])
                .unwrap();
            h.ip(&[
                "link",
                "add",
                "hv0",
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                sb.name(),
            ])
            .unwrap();
            h.ip(&["link", "set", "hv0", "master", "hbr0", "up"])
                .unwrap();
            h.ip(&["link", "set", "hbr0", "up"]).unwrap();
            sb.ip(&[
                "link",
                "set",
                "eth0",
                "address",
                &mac(1, i),
                "mtu",
                &mtu,
                "up",
            ])
            .unwrap();
            sb.ip(&["addr", "add", &format!("{}/24", BRIDGED[i]), "dev", "eth0"])
                .unwrap();
        }
        for i in 0..2 {
            let j = 1 - i;
            let h = &hosts[i].host;
            let dst = hosts[j].addr.to_string();
            for (dev, ip, m) in [("vx0", BARE[j], mac(0, j)), ("vx1", BRIDGED[j], mac(1, j))] {
                h.run(
                    "bridge",
                    &[
                        "fdb",
                        "add",
                        &m,
                        "dev",
                        dev,
                        "dst",
                        &dst,
                        "self",
                        "permanent",
                    ],
                )
                .unwrap();
                h.ip(&[
                    "neigh",
                    "add",
                    &ip.to_string(),
                    "lladdr",
                    &m,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ])
                .unwrap();
            }
        }
        HandVxlan { sandboxes, hosts }
    }
}

impl HandVxlan {
    /// Turns connection tracking on or off in both hosts (not the sandboxes: berth's only table
    /// there, the DNS redirect, is stateless). On is what a NAT table does (on a berth host: the
    /// firewall's masquerade for docker_gwbridge): an empty nftables nat chain in each host
    /// namespace; off removes it.
    pub(crate) fn conntrack(&self, on: bool) {
        let script = if on {
            "table ip bench_ct {\n chain post {\n type nat hook postrouting priority 100;\n }\n}\n"
        } else {
            "delete table ip bench_ct\n"
        };
        for h in &self.hosts {
            h.host.run_with_input("nft", &["-f", "-"], script).unwrap();
        }
    }
}
