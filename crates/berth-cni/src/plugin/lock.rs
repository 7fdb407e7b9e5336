//! The state's lock: berth's store allows one process at a time, and a runtime starts many
//! invocations at once, so every invocation that opens the controller first takes an exclusive
//! `flock` on `<dataRoot>/berth-cni.lock`, waiting (up to `lockTimeout`) instead of failing.
//! The kernel drops the lock when the process ends, however it ends.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{CniError, ErrorCode};

/// The lock file's name in the data root.
pub const LOCK_FILE: &str = "berth-cni.lock";

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct StateLock {
    _held: Flock<File>,
}

impl StateLock {
    /// Takes the lock of the state in `data_root` (made if missing), waiting up to `timeout`
    /// for another invocation to release it. A wait that runs out is code 11 (try again later).
    pub(crate) fn acquire(data_root: &Path, timeout: Duration) -> Result<StateLock, CniError> {
        let path = data_root.join(LOCK_FILE);
        let io = |what: &str, e: std::io::Error| {
            CniError::new(
                ErrorCode::Io,
                format!("{what} {}", path.display()),
                e.to_string(),
            )
        };
        std::fs::create_dir_all(data_root).map_err(|e| io("creating the directory of", e))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(StateLock { _held: held }),
            Err((file, Errno::EWOULDBLOCK)) => wait(file, path, timeout),
            Err((_, e)) => Err(io("locking", std::io::Error::from(e))),
        }
    }
}

/// Waits for the lock on a thread blocked in `flock` (woken by the kernel the moment the holder
/// releases it), up to `timeout`. When the wait runs out the thread stays blocked; the process
/// answers and ends, which ends the thread and any lock it got meanwhile.
fn wait(file: File, path: PathBuf, timeout: Duration) -> Result<StateLock, CniError> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("berth-cni-lock".into())
        .spawn(move || {
            let _ = tx.send(Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e));
        });
    if let Err(e) = spawned {
        return Err(CniError::new(
            ErrorCode::Io,
            format!("waiting for the lock {}", path.display()),
            e.to_string(),
        ));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(held)) => Ok(StateLock { _held: held }),
        Ok(Err(e)) => Err(CniError::new(
            ErrorCode::Io,
            format!("locking {}", path.display()),
            e.to_string(),
        )),
        Err(_) => Err(CniError::new(
            ErrorCode::TryAgainLater,
            "berth-cni's state is busy",
            format!(
                "another berth-cni invocation held {} for longer than lockTimeout ({:.1} s); try again later",
                path.display(),
                timeout.as_secs_f64()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_times_out_with_code_11() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = StateLock::acquire(dir.path(), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let e = StateLock::acquire(dir.path(), Duration::from_millis(200))
            .err()
            .unwrap_or_else(|| panic!("two holders"));
        assert_eq!(e.code, ErrorCode::TryAgainLater);
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(first);
        assert!(StateLock::acquire(dir.path(), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = StateLock::acquire(dir.path(), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().to_path_buf();
        let waiter =
            std::thread::spawn(move || StateLock::acquire(&path, Duration::from_secs(5)).is_ok());
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        assert!(waiter.join().unwrap_or(false));
    }
}
