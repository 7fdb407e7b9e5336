//! A controller's state directory for a test: a fresh temporary directory whose `run/netns`
//! (where the controller bind-mounts its sandboxes' namespaces) is emptied and unmounted on
//! drop, also when the test panics.

use std::path::{Path, PathBuf};

use berth_netlink::Netns;

use crate::{Error, Result};

/// A temporary state directory (`data/` and `run/` of a controller under it).
#[derive(Debug)]
pub struct StateDir(tempfile::TempDir);

impl StateDir {
    /// A new, empty one under the system's temporary directory.
    pub fn new() -> Result<StateDir> {
        tempfile::tempdir()
            .map(StateDir)
            .map_err(|source| Error::Spawn {
                command: "mkdir a temporary state directory".into(),
                source,
            })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `run/netns` under it: where a controller configured with this directory keeps its
    /// sandboxes' namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.0.path().join("run").join("netns")
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let dir = self.netns_dir();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = Netns::delete_named_in(&dir, &e.file_name().to_string_lossy());
            }
        }
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
}
