//! Without the capabilities berth needs, the controller refuses before it writes anything, and
//! says which are missing. Run as root: the test re-runs itself as user `nobody` (uid 65534, no
//! capabilities) in a directory that user may write to.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

const CHILD: &str = "BERTH_PRIVILEGES_CHILD_DIR";

#[test]
fn an_unprivileged_start_is_refused_before_anything_is_written() {
    if let Ok(dir) = std::env::var(CHILD) {
        // The child, as nobody.
        let dir = PathBuf::from(dir);
        let Err(err) =
            berth::Controller::new(berth::Config::new(dir.join("data"), dir.join("run")))
        else {
            panic!("a controller started without privileges");
        };
        println!("CHILD-ERROR: {err}");
        assert!(
            matches!(err, berth::Error::MissingPrivileges { .. }),
            "{err:?}"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_unprivileged_start_is_refused_before_anything_is_written",
            "--nocapture",
        ])
        .env(CHILD, dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-ERROR: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("CAP_NET_ADMIN") && line.contains("CAP_SYS_ADMIN") && line.contains("root"),
        "{line}"
    );
    assert!(!dir.path().join("data").exists(), "no state directory made");
    assert!(!dir.path().join("run").exists(), "no run directory made");
}
