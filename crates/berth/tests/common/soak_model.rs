//! What the two concurrency soaks (`soak.rs` on the controller, `berth-cli`'s `soak_api.rs` over
//! the daemon's API) share: limits, settings from the environment, the seeded random source and
//! the names and kinds of the networks and sandboxes they make.
#![allow(dead_code)]

use std::time::Duration;

/// No call (or request) may take longer.
pub(crate) const CALL_LIMIT: Duration = Duration::from_secs(5);
/// User-defined networks `soak-n0..`; index `NETWORKS` stands for the default `bridge`.
pub(crate) const NETWORKS: usize = 6;
/// Sandbox names `soak-s0..` (renames move sandboxes between these names).
pub(crate) const SANDBOXES: u64 = 12;
/// Published host ports come from `PORT_BASE..PORT_BASE + PORTS` (collisions are wanted).
pub(crate) const PORT_BASE: u16 = 20000;
pub(crate) const PORTS: u64 = 24;
pub(crate) const ICC: &str = "com.docker.network.bridge.enable_icc";

// ----- settings and randomness -----

pub(crate) struct Settings {
    pub(crate) seed: u64,
    pub(crate) threads: usize,
    pub(crate) ops: usize,
}

pub(crate) fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let fresh = (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32);
        Settings {
            seed: env_number("BERTH_SOAK_SEED", fresh),
            threads: env_number("BERTH_SOAK_THREADS", 8) as usize,
            ops: env_number("BERTH_SOAK_OPS", 500) as usize,
        }
    }
}

/// splitmix64: small, seedable, good enough to pick operations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ----- names and kinds of the objects the soaks make -----

pub(crate) fn net_name(i: usize) -> String {
    if i == NETWORKS {
        "bridge".into()
    } else {
        format!("soak-n{i}")
    }
}

pub(crate) fn sb_name(i: u64) -> String {
    format!("soak-s{i}")
}

/// Networks 0, 3 and 5 have a fixed subnet (10.210.i.0/24 in the controller soak, 10.211.i.0/24 over the API) and take `--ip`.
pub(crate) fn fixed_subnet(i: usize) -> bool {
    matches!(i, 0 | 3 | 5)
}

pub(crate) fn icc_off(i: usize) -> bool {
    matches!(i, 1 | 3)
}

pub(crate) fn internal(i: usize) -> bool {
    matches!(i, 2 | 5)
}
