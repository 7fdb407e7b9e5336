//! The daemon's unix socket: owned by root and the `--group` (dockerd's rule: `docker` when that
//! group exists, the daemon's own group otherwise), mode 0660, and in that state from the moment
//! it appears at its path. Access is checked with real connections from unprivileged clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{BERTH, Fixture, stderr};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::unistd::Group;

const NOBODY: u32 = 65534;

fn gid_of(name: &str) -> u32 {
    Group::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("group {name} exists on this machine"))
        .gid
        .as_raw()
}

/// Asserts the socket is a socket, owned by root and `gid`, mode 0660.
fn assert_socket(path: &Path, gid: u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    assert!(m.file_type().is_socket(), "{} is a socket", path.display());
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o660,
        "mode of {}",
        path.display()
    );
    assert_eq!(m.uid(), 0, "owner of {}", path.display());
    assert_eq!(m.gid(), gid, "group of {}", path.display());
}

/// `berth network ls` as an unprivileged user (uid nobody) whose only group is `gid`.
fn ls_as(f: &Fixture, gid: u32) -> std::process::Output {
    Command::new(BERTH)
        .args(["network", "ls"])
        .env("BERTH_HOST", f.host_arg())
        .uid(NOBODY)
        .gid(gid)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn staging_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".bind-"))
        .collect()
}

#[test]
fn socket_is_born_with_its_group_and_mode_and_only_the_group_gets_in() {
    let adm = gid_of("adm");
    let mut f = Fixture::unstarted(&["--group", "adm"]);
    // Others may traverse the fixture directory; the socket's own mode decides who connects.
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    // A stale socket (no one listens; umask mode) is replaced.
    drop(std::os::unix::net::UnixListener::bind(f.socket()).unwrap());

    let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    watch
        .add_watch(
            f.dir.path(),
            AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_DELETE,
        )
        .unwrap();
    f.start();
    assert_socket(&f.socket(), adm);
    // At its path, the socket only ever appeared by a rename, complete: it was never created
    // there (with the umask's mode) nor changed (chmod, chown) after it could be reached.
    let events: Vec<AddWatchFlags> = watch
        .read_events()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.name.as_deref() == Some(std::ffi::OsStr::new("berth.sock")))
        .map(|e| e.mask)
        .collect();
    assert!(
        events
            .iter()
            .any(|m| m.contains(AddWatchFlags::IN_MOVED_TO)),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|m| m.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ATTRIB)),
        "the socket was created or changed at its public path: {events:?}"
    );
    assert!(staging_leftovers(f.dir.path()).is_empty());

    // Real connections: a member of the group gets in, anyone else is refused by the kernel.
    let ok = ls_as(&f, adm);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("bridge"));
    let denied = ls_as(&f, NOBODY);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        stderr(&denied).to_lowercase().contains("permission denied"),
        "{}",
        stderr(&denied)
    );

    // A numeric gid need not name a group (dockerd's rule), from daemon.json this time.
    f.sigterm();
    assert!(!f.socket().exists(), "a stop removes the socket");
    let cfg = f.dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"group": "4242"}"#).unwrap();
    f.extra_args = vec!["--config-file".into(), cfg.display().to_string()];
    f.start();
    assert_socket(&f.socket(), 4242);
    let ok = ls_as(&f, 4242);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(!ls_as(&f, adm).status.success());
}

/// A group made for this test and removed when dropped (also on panic).
struct TempGroup(&'static str);

impl TempGroup {
    fn create(name: &'static str) -> TempGroup {
        let st = Command::new("groupadd").arg(name).status().unwrap();
        assert!(st.success(), "groupadd {name}");
        TempGroup(name)
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(self.0).status();
    }
}

#[test]
fn default_group_is_docker_when_it_exists_else_the_daemons_own() {
    let docker_existed = Group::from_name("docker").unwrap().is_some();
    let _made = if docker_existed {
        eprintln!(
            "this machine has a docker group: the case without one is not exercised (it is on machines without)"
        );
        None
    } else {
        // Without a docker group: the daemon's own group, a warning, and no error, also when
        // `docker` is named explicitly (dockerd cannot tell the two apart and never fails on it).
        for args in [&[][..], &["-G", "docker"][..]] {
            let f = Fixture::with_args(args);
            assert_socket(&f.socket(), 0);
            assert!(
                f.log().contains("socket group \"docker\" not found"),
                "{}",
                f.log()
            );
        }
        Some(TempGroup::create("docker"))
    };
    let docker = gid_of("docker");
    let mut f = Fixture::unstarted(&[]);
    std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    f.start();
    assert_socket(&f.socket(), docker);
    assert!(!f.log().contains("not found"), "{}", f.log());
    let ok = ls_as(&f, docker);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // An empty group means the daemon's own, silently.
    let f = Fixture::with_args(&["--group="]);
    assert_socket(&f.socket(), 0);
    assert!(!f.log().contains("not found"), "{}", f.log());
}

#[test]
fn a_missing_group_is_refused_and_leaves_no_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("b.sock");
    let run = |args: &[&str]| {
        let out = Command::new(BERTH)
            .arg("daemon")
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("run"))
            .arg("--netns")
            .arg("/nonexistent/netns")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), stderr(&out))
    };
    let (code, e) = run(&["-G", "berth-no-such-group"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(
        e.contains("socket group \"berth-no-such-group\" not found")
            && e.contains("groupadd berth-no-such-group"),
        "{e}"
    );
    assert!(!sock.exists());
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"group": "berth-no-such-group"}"#).unwrap();
    let (code, e) = run(&["--config-file", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("\"berth-no-such-group\" not found"), "{e}");
    let (code, e) = run(&["--config-file", cfg.to_str().unwrap(), "-G", "adm"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(
        e.contains("specified both as a flag") && e.contains("group"),
        "{e}"
    );
    assert!(!sock.exists());
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["daemon.json".to_owned()]);
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let mut f = Fixture::unstarted(&["-G", "adm"]);
    std::fs::write(f.socket(), "keep me").unwrap();
    let out = f.daemon_command().stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exists and is not a socket"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(f.socket()).unwrap(), "keep me");
    assert!(staging_leftovers(f.dir.path()).is_empty());
    // Once it is gone, the same daemon starts.
    std::fs::remove_file(f.socket()).unwrap();
    f.start();
    assert_socket(&f.socket(), gid_of("adm"));
}
