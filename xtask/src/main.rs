//! `cargo xtask`: the project's task runner.
//!
//! - `cargo xtask test`: installs the system packages the tests need (apt-get, as root), then runs
//!   `cargo fmt --check`, `cargo clippy --all-targets -D warnings`, the fuzz targets' build check and
//!   `cargo test --workspace`. The README's test command; `.ci/run` calls it.
//! - `cargo xtask demo`: the main job, a walkthrough of berth inside throwaway namespaces.
//! - `cargo xtask bench [BENCH...]`: runs the criterion benches (all, or the named ones).
//! - `cargo xtask fuzz TARGET [SECONDS]`: runs one fuzz target on its seed corpus (nightly).
//! - `cargo xtask codemap`: writes `CODEMAP.md` (one line per source file; `test` checks it).

mod codemap;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests, benches and demo use.
const PACKAGES: &[&str] = &[
    "iproute2",
    "iptables",
    "nftables",
    "busybox-static",
    "conntrack",
    "dnsutils",
    "protobuf-compiler",
    // A real etcd v3 server and its CLI, for berth-store's etcd backend tests.
    "etcd-server",
    "etcd-client",
    // The stock docker client, for the daemon's Docker-API compatibility tests.
    "docker.io",
    // TCP throughput over the overlay and hand-made VXLANs (`--bench overlay`).
    "iperf3",
    // The certificates of the etcd TLS tests.
    "openssl",
    // The HTTP proxy of the sandbox proxy-environment tests.
    "tinyproxy",
    // A real CNI runtime and the reference CNI plugins, for berth-cni's tests.
    "podman",
    "containernetworking-plugins",
    // netavark's `setup`, a baseline of the `cni` measured scenario (podman only recommends it).
    "netavark",
];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("install-deps") => install_packages(),
        Some("codemap") => write_codemap(),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask test | demo | bench [BENCH...] | fuzz TARGET [SECONDS] | codemap | install-deps"
        .into()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command) -> Result {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing Debian packages with apt-get (a no-op when all are present).
fn install_packages() -> Result {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing system packages {missing:?}; run as root so apt-get can install them"
        ));
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install)
}

fn write_codemap() -> Result {
    let map = codemap::render(&root())?;
    std::fs::write(root().join(codemap::FILE), map)
        .map_err(|e| format!("writing {}: {e}", codemap::FILE))
}

/// Fails when `CODEMAP.md` is not what `cargo xtask codemap` would write.
fn check_codemap() -> Result {
    let want = codemap::render(&root())?;
    let have = std::fs::read_to_string(root().join(codemap::FILE)).unwrap_or_default();
    if have == want {
        Ok(())
    } else {
        Err(format!(
            "{} is out of date: run `cargo xtask codemap` and commit it",
            codemap::FILE
        ))
    }
}

fn test() -> Result {
    if !is_root() {
        return Err("the kernel tests need root (network namespaces, netlink, iptables)".into());
    }
    install_packages()?;
    check_codemap()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    let mut fuzz_check = cargo();
    fuzz_check.args(["check", "--quiet", "--manifest-path", "fuzz/Cargo.toml"]);
    run(fuzz_check)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run(test)
}

fn demo() -> Result {
    #[path = "demo.rs"]
    mod walkthrough;
    if !is_root() {
        return Err("the demo needs root: it builds throwaway network namespaces".into());
    }
    install_packages()?;
    walkthrough::run(&root(), cargo())
}

/// Measured scenarios beside the criterion benches: whole processes (a CNI plugin's calls,
/// containers started through dockerd), timed by the ignored tests that drive them, in release
/// builds. `cargo xtask bench cni` runs one by name; `cargo xtask bench` runs all of them too.
const SCENARIOS: &[(&str, &[&str])] = &[
    (
        "cni",
        &[
            "test",
            "--release",
            "-p",
            "berth-cni",
            "--test",
            "measure",
            "--",
            "--ignored",
            "--nocapture",
        ],
    ),
    (
        "dockerd_plugin",
        &[
            "test",
            "--release",
            "-p",
            "berth-plugin",
            "--test",
            "server_measure",
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ],
    ),
];

fn bench(names: &[String]) -> Result {
    install_packages()?;
    let (scenarios, criterion): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|n| SCENARIOS.iter().any(|(name, _)| name == n));
    if names.is_empty() || !criterion.is_empty() {
        let mut cmd = cargo();
        cmd.args(["bench", "--package", "berth-benches"]);
        for n in &criterion {
            cmd.args(["--bench", n]);
        }
        run(cmd)?;
    }
    for (name, args) in SCENARIOS {
        if names.is_empty() || scenarios.iter().any(|n| n == name) {
            let mut cmd = cargo();
            cmd.args(*args);
            run(cmd)?;
        }
    }
    Ok(())
}

fn fuzz(args: &[String]) -> Result {
    let target = args.first().ok_or_else(usage)?;
    let seconds: u64 = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("SECONDS must be a whole number, not {s:?}"))?,
        None => 60,
    };
    let has_fuzz = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_fuzz {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-fuzz"]);
        run(install)?;
    }
    let corpus = root().join("fuzz/corpus").join(target);
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .args(["+nightly", "fuzz", "run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"));
    run(cmd)
}
