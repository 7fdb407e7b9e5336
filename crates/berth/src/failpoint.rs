//! Named points in the controller's multi-step operations where a test can stop the process
//! (SIGKILL, to prove crash safety) or make the step fail (to prove rollback and degraded
//! restore).
//!
//! Inert unless the environment variable [`FAILPOINTS_ENV`] is set when the first point is
//! passed: then it is read once, as a comma-separated list of `NAME=ACTION[@N]`, where `ACTION`
//! is `kill` (the process sends itself SIGKILL), `error` (the step fails with
//! [`Error::Injected`]) or `sleep:MS` (the step waits MS milliseconds, holding whatever locks
//! it holds), and `@N` picks the N-th time that point is passed (1-based; default 1).
//! When it is not set, passing a point costs one relaxed atomic load.
//!
//! `kill` is meant for every point; `error` for the `restore.*` points, whose callers treat a
//! failure as a transient one. An injected error elsewhere returns without that step's undo.
//!
//! Every point is listed in [`POINTS`], so that a crash test can spread its kills over all of them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The environment variable that arms fail points (see the module docs).
pub const FAILPOINTS_ENV: &str = "BERTH_FAILPOINTS";

/// Every fail point of the controller, in the order an operation passes them.
pub const POINTS: &[&str] = &[
    // create_network: the record is written, then the driver makes the network.
    "network.create.recorded",
    "network.create.driver",
    // remove_network: the intent is written, then the driver removes it, then the record goes.
    "network.remove.intent",
    "network.remove.driver",
    // create_sandbox: the record is written, then the namespace made and set up.
    "sandbox.create.recorded",
    "sandbox.create.netns",
    // remove_sandbox: intent, then every endpoint leaves, then the namespace and the record go.
    "sandbox.remove.intent",
    "sandbox.remove.endpoints",
    "sandbox.remove.netns",
    // rename_sandbox: one transaction, then the in-memory and DNS names.
    "sandbox.rename.recorded",
    // connect: pending record, driver endpoint, join, routes, ports, DNS, links, active record.
    "connect.pending",
    "connect.endpoint",
    "connect.joined",
    "connect.routes",
    "connect.ports",
    "connect.dns",
    "connect.links",
    "connect.active",
    // disconnect: intent, then DNS, links, ports, leave, routes, addresses, record.
    "disconnect.intent",
    "disconnect.dns",
    "disconnect.ports",
    "disconnect.leave",
    "disconnect.routes",
    "disconnect.released",
    // restore (test hooks for degraded start-up, not crash points).
    "restore.netns_open",
    "restore.endpoint",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Error,
    Sleep(u64),
}

struct Armed {
    name: String,
    action: Action,
    nth: u64,
    passed: AtomicU64,
}

static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();

fn parse(spec: &str) -> Vec<Armed> {
    spec.split(',')
        .filter_map(|item| {
            let (name, rest) = item.trim().split_once('=')?;
            let (action, nth) = match rest.split_once('@') {
                Some((a, n)) => (a, n.parse().ok()?),
                None => (rest, 1),
            };
            let action = match action {
                "kill" => Action::Kill,
                "error" => Action::Error,
                other => Action::Sleep(other.strip_prefix("sleep:")?.parse().ok()?),
            };
            Some(Armed {
                name: name.to_owned(),
                action,
                nth,
                passed: AtomicU64::new(0),
            })
        })
        .collect()
}

/// Arms fail points from `spec` (the format of [`FAILPOINTS_ENV`]) for this process, for tests
/// that run the controller in-process. Takes effect only before the first fail point is passed
/// (and before the environment variable is read); returns whether it did.
pub fn arm(spec: &str) -> bool {
    ARMED.set(parse(spec)).is_ok()
}

/// Passes the fail point `name`: kills the process or fails when a test armed it for this pass.
pub(crate) fn hit(name: &'static str) -> Result<()> {
    debug_assert!(POINTS.contains(&name), "unlisted fail point {name}");
    let armed = ARMED.get_or_init(|| {
        std::env::var(FAILPOINTS_ENV)
            .map(|s| parse(&s))
            .unwrap_or_default()
    });
    for a in armed.iter().filter(|a| a.name == name) {
        let n = a.passed.fetch_add(1, Ordering::Relaxed) + 1;
        if n == a.nth {
            match a.action {
                Action::Kill => {
                    tracing::warn!(point = name, pass = n, "fail point: killing the process");
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                    // SIGKILL cannot be caught; this is never reached.
                    std::process::abort();
                }
                Action::Error => return Err(Error::Injected(name)),
                Action::Sleep(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_default_and_explicit_pass() {
        let a = parse(
            "connect.joined=kill@3, disconnect.leave=error,bad,x=nope@1,y=kill@z,connect.dns=sleep:250@2",
        );
        assert_eq!(a.len(), 3);
        assert_eq!((a[2].action, a[2].nth), (Action::Sleep(250), 2));
        assert_eq!(
            (a[0].name.as_str(), a[0].action, a[0].nth),
            ("connect.joined", Action::Kill, 3)
        );
        assert_eq!(
            (a[1].name.as_str(), a[1].action, a[1].nth),
            ("disconnect.leave", Action::Error, 1)
        );
    }

    #[test]
    fn points_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        assert!(POINTS.iter().all(|p| seen.insert(*p)));
    }
}
