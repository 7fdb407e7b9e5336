//! A runtime starts many invocations at once: they wait for each other on the state's lock
//! instead of failing, and give distinct addresses; a lock held for longer than `lockTimeout`
//! is "try again later" (code 11).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Cni, Container, ip_of};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};

const N: usize = 20;

/// Starts `command` for `c` without waiting.
fn start(cni: &Cni, command: &str, c: &Container, conf: &Value) -> Child {
    use std::io::Write;
    let mut cmd = cni.host.command(BIN);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &c.id)
        .env("CNI_NETNS", c.netns())
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child
}

fn finish(child: Child) -> (bool, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn twenty_adds_at_once_all_succeed_with_distinct_addresses() {
    let cni = Cni::new();
    let before = cni.snapshot();
    let conf = cni.conf("testnet", json!({}));
    let containers: Vec<Container> = (0..N).map(|i| Container::new(&format!("c{i}"))).collect();

    let started = Instant::now();
    let children: Vec<Child> = containers
        .iter()
        .map(|c| start(&cni, "ADD", c, &conf))
        .collect();
    let mut addrs = BTreeSet::new();
    for (c, child) in containers.iter().zip(children) {
        let (ok, stdout, stderr) = finish(child);
        assert!(ok, "ADD of {} failed: {stdout} {stderr}", c.id);
        let result: Value = serde_json::from_str(&stdout).unwrap();
        assert!(addrs.insert(ip_of(&result)), "{} got a taken address", c.id);
    }
    eprintln!("{N} concurrent ADDs took {:?}", started.elapsed());
    assert_eq!(addrs.len(), N);
    // Every container reaches the first and the last.
    let (first, last) = (addrs.first().unwrap(), addrs.last().unwrap());
    for c in &containers {
        assert!(c.ping(first) && c.ping(last), "{} reaches both", c.id);
    }

    let children: Vec<Child> = containers
        .iter()
        .map(|c| start(&cni, "DEL", c, &conf))
        .collect();
    for (c, child) in containers.iter().zip(children) {
        let (ok, stdout, stderr) = finish(child);
        assert!(ok, "DEL of {} failed: {stdout} {stderr}", c.id);
    }
    assert!(
        cni.host_links("berth").is_empty(),
        "{:?}",
        cni.host_links("")
    );
    assert_eq!(cni.snapshot(), before);
}

#[test]
fn a_lock_held_too_long_is_try_again_later() {
    let cni = Cni::new();
    let c1 = Container::new("c1");
    let conf = cni.conf("testnet", json!({"lockTimeout": 0.3}));
    std::fs::create_dir_all(cni.data_root()).unwrap();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cni.data_root().join(berth_cni::LOCK_FILE))
        .unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusive).unwrap();
    let started = Instant::now();
    let a = cni.call("ADD", &c1, "eth0", &conf);
    assert_eq!(a.code(), 11, "{a:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!c1.addrs().contains("eth0"));
    // Released, the next ADD goes through.
    drop(held);
    let r = cni.add(&c1, &conf);
    assert!(cni.host.ping(&ip_of(&r)));
    cni.del(&c1, &conf);
}
