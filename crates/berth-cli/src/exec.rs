//! `berth sandbox exec`: run a command inside a sandbox the way `ip netns exec` does.
//!
//! The client process itself (single-threaded at this point) enters the sandbox's network
//! namespace, unshares a private mount namespace (mounts made there never reach the host), remounts
//! `/sys` so it describes the sandbox's namespace, binds the sandbox's own `hosts` and
//! `resolv.conf` over `/etc`, and finally `exec`s the command, whose exit code is the exit code of
//! `berth sandbox exec`.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use serde_json::Value;

use crate::error::{Error, Result};

/// What exec needs to know about a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecTarget {
    /// The sandbox's name (for messages).
    pub(crate) name: String,
    /// Its network namespace (`SandboxKey`).
    pub(crate) netns: PathBuf,
    /// Files to bind over `/etc/<name>`: `hosts`, `resolv.conf`, `hostname` when the daemon
    /// reports them (`HostsPath`, `ResolvConfPath`, `HostnamePath`) and they exist.
    pub(crate) etc_files: Vec<(PathBuf, &'static str)>,
    /// Environment variables for the command: the sandbox's legacy-link environment
    /// (`LinkEnv`), as Docker gives a linking container's processes, then its own (`Env`:
    /// `--env` and the proxy settings), which wins over a link variable of the same name as
    /// in Docker.
    pub(crate) env: Vec<(String, String)>,
}

impl ExecTarget {
    /// Reads the target out of a sandbox inspect value.
    ///
    /// # Errors
    /// [`Error::Exec`] when the value names no namespace.
    pub(crate) fn from_inspect(v: &Value) -> Result<ExecTarget> {
        let name = v
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let netns = v
            .get("SandboxKey")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Exec(format!(
                    "the daemon reports no network namespace (SandboxKey) for sandbox {name}"
                ))
            })?;
        let mut etc_files = Vec::new();
        for (key, target) in [
            ("HostsPath", "hosts"),
            ("ResolvConfPath", "resolv.conf"),
            ("HostnamePath", "hostname"),
        ] {
            if let Some(p) = v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                etc_files.push((PathBuf::from(p), target));
            }
        }
        let env = ["LinkEnv", "Env"]
            .iter()
            .filter_map(|key| v.get(key).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, val)| (k.to_owned(), val.to_owned()))
            .collect();
        Ok(ExecTarget {
            name,
            netns,
            etc_files,
            env,
        })
    }
}

fn sys(what: impl Into<String>, e: nix::Error) -> Error {
    Error::Exec(format!("{}: {e}", what.into()))
}

/// Enters the sandbox and replaces this process with `cmd`. Returns only on failure, with the exit
/// code to use (126: the command cannot run, 127: not found, 125: the setup failed) and the error.
pub(crate) fn exec(target: &ExecTarget, cmd: &[OsString]) -> (u8, Error) {
    match enter(target) {
        Ok(()) => {}
        Err(e) => return (125, e),
    }
    let Some((program, args)) = cmd.split_first() else {
        return (
            125,
            Error::usage("sandbox exec needs a command: berth sandbox exec NAME -- CMD [ARGS...]"),
        );
    };
    let err = Command::new(program)
        .args(args)
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    (
        code,
        Error::Exec(format!(
            "cannot run {} in sandbox {}: {err}",
            Path::new(program).display(),
            target.name
        )),
    )
}

fn enter(target: &ExecTarget) -> Result<()> {
    let ns = File::open(&target.netns).map_err(|e| {
        Error::io(
            format!(
                "opening the network namespace {} of sandbox {}",
                target.netns.display(),
                target.name
            ),
            e,
        )
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
        sys(
            format!(
                "entering the network namespace of sandbox {} (run berth as root)",
                target.name
            ),
            e,
        )
    })?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| sys("creating a private mount namespace", e))?;
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| sys("making / a slave mount", e))?;
    // /sys as seen from the sandbox's network namespace (what `ip netns exec` does).
    let mut flags = MsFlags::empty();
    if umount2("/sys", MntFlags::MNT_DETACH).is_err() {
        if let Ok(st) = nix::sys::statvfs::statvfs("/sys") {
            if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
                flags |= MsFlags::MS_RDONLY;
            }
        }
    }
    mount(
        Some(target.name.as_str()),
        "/sys",
        Some("sysfs"),
        flags,
        None::<&str>,
    )
    .map_err(|e| sys("mounting /sys for the sandbox's namespace", e))?;
    for (source, name) in &target.etc_files {
        let dest = Path::new("/etc").join(name);
        if !source.exists() || !dest.exists() {
            continue;
        }
        mount(
            Some(source.as_path()),
            &dest,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            sys(
                format!("binding {} over {}", source.display(), dest.display()),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_from_inspect() {
        let v = serde_json::json!({"Name": "web", "SandboxKey": "/run/berth/netns/abc",
            "HostsPath": "/run/berth/sandboxes/abc/hosts", "ResolvConfPath": "",
            "LinkEnv": ["DB_NAME=/web/db", "DB_PORT=tcp://172.17.0.2:5432"]});
        let t = ExecTarget::from_inspect(&v).unwrap();
        assert_eq!(t.netns, PathBuf::from("/run/berth/netns/abc"));
        assert_eq!(t.etc_files.len(), 1);
        assert_eq!(t.env[0], ("DB_NAME".to_owned(), "/web/db".to_owned()));
        assert_eq!(t.env.len(), 2);
        assert!(ExecTarget::from_inspect(&serde_json::json!({"Name": "x"})).is_err());
        // The sandbox's own environment comes after the link environment, so it wins.
        let v = serde_json::json!({"Name": "web", "SandboxKey": "/run/berth/netns/abc",
            "LinkEnv": ["DB_NAME=/web/db"], "Env": ["DB_NAME=mine", "http_proxy=http://p:3128"]});
        let t = ExecTarget::from_inspect(&v).unwrap();
        let names: Vec<&str> = t.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["DB_NAME", "DB_NAME", "http_proxy"]);
        assert_eq!(t.env[1].1, "mine");
    }
}
