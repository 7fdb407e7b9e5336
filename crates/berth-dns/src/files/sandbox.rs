//! A sandbox's directory of resolution files, each written through a temporary file renamed over
//! the old one (and not at all when its content is unchanged).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::hosts::HostsFile;
use crate::error::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// [`write_atomic`], skipped when `path` holds `content` already: a restart rewrites nothing, and
/// a sandbox's processes never see a file replaced by an identical one.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<()> {
    match fs::read(path) {
        Ok(current) if current == content => Ok(()),
        _ => write_atomic(path, content),
    }
}

/// Writes `content` to `path` atomically: a temporary file in the same directory (mode 0644),
/// renamed over `path`. Nothing is left behind on failure.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(content)?;
        f.flush()
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::File {
            action: "write",
            path: tmp,
            source,
        });
    }
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        Error::File {
            action: "rename a temporary file over",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A sandbox's directory of resolution files (`hosts`, `resolv.conf`), chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxFiles {
    dir: PathBuf,
}

impl SandboxFiles {
    /// Uses (and creates, mode 0755) `dir`.
    pub fn create(dir: impl Into<PathBuf>) -> Result<SandboxFiles> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| Error::File {
            action: "create the directory",
            path: dir.clone(),
            source,
        })?;
        Ok(SandboxFiles { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/hosts`.
    pub fn hosts_path(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    /// `<dir>/resolv.conf`.
    pub fn resolv_conf_path(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    /// Writes `hosts` atomically (nothing is written when the file already says exactly that).
    pub fn write_hosts(&self, hosts: &HostsFile) -> Result<()> {
        write_if_changed(&self.hosts_path(), hosts.render().as_bytes())
    }

    /// Writes `resolv.conf` atomically (nothing is written when the file already says exactly
    /// that).
    pub fn write_resolv_conf(&self, content: &str) -> Result<()> {
        write_if_changed(&self.resolv_conf_path(), content.as_bytes())
    }

    /// Removes the directory and its files.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::File {
                action: "remove",
                path: self.dir,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        let files = SandboxFiles::create(dir.path().join("sb")).unwrap();
        let mut h = HostsFile::new("h");
        files.write_hosts(&h).unwrap();
        h.addresses.push("10.0.0.2".parse().unwrap());
        files.write_hosts(&h).unwrap();
        files.write_resolv_conf("nameserver 127.0.0.11\n").unwrap();
        assert_eq!(fs::read_to_string(files.hosts_path()).unwrap(), h.render());
        let names: Vec<String> = fs::read_dir(files.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
        let missing = dir.path().join("nope/hosts");
        assert!(write_atomic(&missing, b"x").is_err());
        // The same content again leaves the file as it is (same inode); new content replaces it.
        use std::os::unix::fs::MetadataExt;
        let inode = || fs::metadata(files.hosts_path()).unwrap().ino();
        let before = inode();
        files.write_hosts(&h).unwrap();
        assert_eq!(inode(), before);
        h.addresses.push("10.0.0.3".parse().unwrap());
        files.write_hosts(&h).unwrap();
        assert_ne!(inode(), before);
        assert_eq!(fs::read_to_string(files.hosts_path()).unwrap(), h.render());
        files.remove().unwrap();
    }
}
