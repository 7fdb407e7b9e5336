//! Measures `berth network connect` round trips from the command line, process start included:
//! a daemon in a throwaway test host, a user network, and N sandboxes that are each connected once
//! (timed: the whole `berth network connect NET SANDBOX` process, from spawn to exit) and
//! disconnected again (timed separately). Budget: median connect at most 15 ms on a 2-core machine
//! (`docker network connect`: 38-80 ms there).
//!
//! Run as root, after building the binary of the same profile:
//! `cargo build --release -p berth-cli && cargo run --release -p berth-cli --example connect_latency [N]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testhost::TestHost;
use berth_testhost::berth_netlink::Netns;

fn berth_binary() -> PathBuf {
    // target/<profile>/examples/connect_latency -> target/<profile>/berth
    let exe = std::env::current_exe().expect("the example's own path");
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>");
    let berth = dir.join("berth");
    assert!(
        berth.exists(),
        "{} is missing: build it first (cargo build [--release] -p berth-cli)",
        berth.display()
    );
    berth
}

fn ping(socket: &std::path::Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

fn stats(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = v[v.len() / 2];
    println!(
        "{name}: n={} min={:.2} ms median={:.2} ms p90={:.2} ms max={:.2} ms",
        v.len(),
        ms(v[0]),
        ms(median),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1])
    );
    median
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let berth = berth_binary();
    let host = TestHost::new().expect("a test host (run as root)");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let host_arg = format!("unix://{}", socket.display());
    let mut daemon = Command::new(&berth)
        .args(["daemon", "--host", &host_arg, "--netns"])
        .arg(host.path())
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("run"))
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("berth daemon");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ping(&socket) {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = |args: &[&str]| -> Duration {
        let t = Instant::now();
        let st = Command::new(&berth)
            .args(args)
            .env("BERTH_HOST", &host_arg)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        let d = t.elapsed();
        assert!(st.success(), "berth {args:?} failed");
        d
    };
    run(&["network", "create", "--subnet", "10.123.0.0/16", "bench_nw"]);
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    for name in &names {
        run(&["sandbox", "create", "--name", name, "--network", "none"]);
        run(&["network", "disconnect", "none", name]);
    }
    // Warm-up.
    run(&["network", "connect", "bench_nw", &names[0]]);
    run(&["network", "disconnect", "bench_nw", &names[0]]);
    let mut connects = Vec::new();
    let mut disconnects = Vec::new();
    for name in &names {
        connects.push(run(&["network", "connect", "bench_nw", name]));
    }
    for name in &names {
        disconnects.push(run(&["network", "disconnect", "bench_nw", name]));
    }
    let mut pings = Vec::new();
    for _ in 0..n {
        pings.push(run(&["network", "ls", "-q"]));
    }
    println!(
        "berth {} (profile of this example), {n} sandboxes",
        berth.display()
    );
    let median = stats("berth network connect", connects);
    stats("berth network disconnect", disconnects);
    stats("berth network ls -q", pings);
    println!(
        "budget: median connect <= 15 ms: {}",
        if median <= Duration::from_millis(15) {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let netns_dir = dir.path().join("run/netns");
    if let Ok(entries) = std::fs::read_dir(&netns_dir) {
        for e in entries.flatten() {
            let _ = Netns::delete_named_in(&netns_dir, &e.file_name().to_string_lossy());
        }
    }
    let _ = nix::mount::umount2(&netns_dir, nix::mount::MntFlags::MNT_DETACH);
}
