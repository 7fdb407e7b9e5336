//! Kernel test of the userland proxy's accept back-off (hardening issue #14): when accepting
//! fails with EMFILE (the descriptor table is full), the pending connection stays queued and
//! the listener stays readable; the proxy must pause between attempts, not spin a core, log the
//! episode once, and relay the connection once descriptors are free again.
//!
//! This is a test binary of its own with a single test: it lowers RLIMIT_NOFILE of its process
//! (restored on drop, also on panic), which would break tests running beside it.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use berth_portmap::ProxyLimits;
use berth_testhost::traffic::{TcpBanner, tcp_fetch};
use common::{
    CONTAINER_V4, HOST_V4, TIMEOUT, World, capture_logs, eventually, logs_with, published, sa,
};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::time::TimeValLike;
use socket2::{Domain, SockAddr, Socket, Type};

/// Lowers the soft RLIMIT_NOFILE to just above the highest open descriptor and fills every
/// free slot below it, so the next socket or accept fails with EMFILE. Undone on drop.
struct FullTable {
    saved: (u64, u64),
    filler: Vec<File>,
}

impl FullTable {
    fn fill() -> FullTable {
        let saved = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        let null = File::open("/dev/null").unwrap();
        let mut table = FullTable {
            saved,
            filler: vec![],
        };
        setrlimit(Resource::RLIMIT_NOFILE, highest + 1, saved.1).unwrap();
        loop {
            match null.try_clone() {
                Ok(f) => table.filler.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("filling the descriptor table: {e}"),
            }
            assert!(table.filler.len() < 100_000, "the table does not fill");
        }
        drop(null);
        // `null` freed one slot: take it again.
        match File::open("/dev/null") {
            Ok(f) => table.filler.push(f),
            Err(e) => panic!("taking the last slot: {e}"),
        }
        assert_eq!(
            File::open("/dev/null").unwrap_err().raw_os_error(),
            Some(libc::EMFILE),
            "the table is full"
        );
        table
    }
}

impl Drop for FullTable {
    fn drop(&mut self) {
        self.filler.clear();
        let _ = setrlimit(Resource::RLIMIT_NOFILE, self.saved.0, self.saved.1);
    }
}

/// The number of descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// CPU time (user + system) of this whole process so far.
fn cpu_time() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let micros = u.user_time().num_microseconds() + u.system_time().num_microseconds();
    Duration::from_micros(u64::try_from(micros).unwrap())
}

#[test]
fn accept_failing_with_emfile_backs_off_and_recovers() {
    capture_logs();
    let w = World::new();
    let mapper = w.mapper(ProxyLimits::default());
    w.publish(&mapper, &["[::]:8201:80"]);
    let _server =
        TcpBanner::start(w.container.netns(), sa(&format!("{CONTAINER_V4}:80")), "v4").unwrap();
    let idle = open_descriptors();
    assert_eq!(
        tcp_fetch(w.client.netns(), published(8201), TIMEOUT).unwrap(),
        format!("v4 from {HOST_V4}"),
        "relayed before the table is full"
    );
    // The relay of that connection lets go of its sockets a moment later; they must not free
    // slots of the table once it is full.
    assert!(
        eventually(TIMEOUT, || open_descriptors() <= idle),
        "the relayed connection's sockets are closed"
    );
    // The client's socket is made (in the client's namespace) while descriptors are free.
    let client = w
        .client
        .exec(|| Socket::new(Domain::IPV6, Type::STREAM, None))
        .unwrap()
        .unwrap();
    let target: SocketAddr = published(8201);

    let full = FullTable::fill();
    // The handshake completes in the kernel; the connection waits in the accept queue and every
    // accept of the proxy fails with EMFILE.
    client
        .connect_timeout(&SockAddr::from(target), TIMEOUT)
        .unwrap();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_millis(1200));
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    drop(full);

    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("CPU while accept failed with EMFILE: {cpu:?} in {wall:?}");
    assert!(
        share < 0.10,
        "the proxy used {:.0}% of a core while accept failed with EMFILE ({cpu:?} in {wall:?})",
        share * 100.0
    );

    // Descriptors are free again: within the longest pause (1 s) the queued connection is
    // accepted and relayed.
    let mut stream = TcpStream::from(client);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert_eq!(
        got,
        format!("v4 from {HOST_V4}"),
        "relayed after the episode"
    );

    let warned = logs_with(&["WARN", "accepting connections failing", "[::]:8201"]);
    assert_eq!(warned.len(), 1, "one warning per episode: {warned:?}");
    assert!(
        warned[0].contains("Too many open files") || warned[0].contains("os error 24"),
        "names the cause: {warned:?}"
    );
    let ended = logs_with(&["INFO", "accepting connections works again", "[::]:8201"]);
    assert_eq!(
        ended.len(),
        1,
        "the end of the episode is logged once: {ended:?}"
    );
}
