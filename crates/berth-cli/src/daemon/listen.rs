//! The daemon's unix socket: which group owns it (dockerd's `-G/--group` rule), and how it is
//! created so that it never exists at its public path with any mode or group but its final one.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::unistd::{Gid, Group, UnlinkatFlags};

use crate::config::DEFAULT_SOCKET_GROUP;
use crate::error::{Error, Result};

/// The socket's mode: its owner (root) and its group may connect, nobody else.
pub(crate) const SOCKET_MODE: u32 = 0o660;
/// The longest path a unix socket address holds (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The socket's name inside the private staging directory.
const STAGED_NAME: &str = "sock";

/// The group that owns the socket, resolved the way dockerd resolves `--group`: a group name,
/// else a numeric gid (which need not name a group). An empty name means the daemon's own group.
/// When the group does not exist, that is an error, except for dockerd's default `docker`
/// (whether given or defaulted): then the socket belongs to the daemon's own group and a warning
/// says so, as dockerd does.
///
/// # Errors
/// [`Error::Usage`] naming the group when it does not exist and is not `docker`.
pub(crate) fn socket_gid(group: &str) -> Result<Gid> {
    let own = nix::unistd::getgid();
    if group.is_empty() {
        return Ok(own);
    }
    let found = Group::from_name(group);
    if let Ok(Some(g)) = &found {
        return Ok(g.gid);
    }
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    let why = match found {
        Err(e) => format!("looking it up failed: {e}"),
        Ok(_) => "no such group".to_owned(),
    };
    if group == DEFAULT_SOCKET_GROUP {
        tracing::warn!(
            "socket group {group:?} not found ({why}): the socket belongs to the daemon's own group (gid {own}); create the group (groupadd {group}) or choose one with --group"
        );
        return Ok(own);
    }
    Err(Error::usage(format!(
        "socket group {group:?} not found ({why}): create it (groupadd {group}), or give an existing group or a numeric gid with --group (-G) or \"group\" in daemon.json"
    )))
}

/// Creates the listening socket at `socket`, owned by the daemon's user and group `gid`, mode
/// [`SOCKET_MODE`]; a stale socket there is replaced.
///
/// Race-free by construction, without touching the umask: the umask is per process, and by now
/// the daemon runs tokio's workers, its blocking pool and the controller's own threads, all of
/// which may create files (state, resolv.conf, hosts) that a temporarily narrowed umask would
/// break. Instead:
/// 1. the socket is made in a fresh directory of its own (mode 0700, created here, checked to be
///    ours), so no other user can reach it, swap it or connect while it is being set up, and the
///    `*at` calls below name entries of that directory through its descriptor, never a path that
///    could be redirected;
/// 2. its mode is set on the socket's descriptor *before* `bind`: Linux creates the socket file
///    with the socket inode's mode less the umask, so it is born no wider than 0660 (narrower if
///    the umask says so);
/// 3. inside that directory it gets its group and exactly 0660, and starts listening;
/// 4. only then does one `rename` give it its public name, with its final mode, owner and group
///    from the first moment anyone can see it. The staging directory is removed.
///
/// `bind` goes through `/proc/self/fd/N/`, the staging directory's descriptor, so the path bound
/// is short whatever the socket's directory, and always the directory created here.
///
/// # Errors
/// When the path is too long for a unix socket, exists and is not a socket, or a step fails;
/// nothing is left behind then.
pub(crate) fn bind(socket: &Path, gid: Gid) -> Result<UnixListener> {
    let shown = socket.display();
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::usage(format!(
            "socket path {shown} is {len} bytes long; a unix socket path holds at most {MAX_SOCKET_PATH}: choose a shorter --host"
        )));
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(Error::usage(format!(
            "socket path {shown} does not name a file: use e.g. unix:///run/berth/berth.sock"
        )));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let dirfd = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno(format!("opening {}", dir.display())))?;
    let replaces_stale = match nix::sys::stat::fstatat(&dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if is_socket(st.st_mode) => true,
        Ok(_) => {
            return Err(Error::usage(format!(
                "{shown} exists and is not a socket: remove it or choose another --host"
            )));
        }
        Err(Errno::ENOENT) => false,
        Err(e) => return Err(errno(format!("looking at {shown}"))(e)),
    };
    let staging = Staging::create(dirfd.as_fd(), dir, name)?;
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(errno("creating a unix socket".to_owned()))?;
    let mode = Mode::from_bits_truncate(SOCKET_MODE);
    nix::sys::stat::fchmod(&fd, mode)
        .map_err(errno("setting the mode of the new socket".to_owned()))?;
    let staged = format!("/proc/self/fd/{}/{STAGED_NAME}", staging.fd.as_raw_fd());
    let addr = UnixAddr::new(staged.as_str()).map_err(errno(format!("naming {staged}")))?;
    nix::sys::socket::bind(fd.as_raw_fd(), &addr)
        .map_err(errno(format!("binding a socket for unix://{shown}")))?;
    nix::unistd::fchownat(
        &staging.fd,
        STAGED_NAME,
        None,
        Some(gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno(format!("giving the socket for {shown} group {gid}")))?;
    // The entry is the socket bound just now, in a directory only we can change.
    nix::sys::stat::fchmodat(&staging.fd, STAGED_NAME, mode, FchmodatFlags::FollowSymlink)
        .map_err(errno(format!("setting the mode of the socket for {shown}")))?;
    nix::sys::socket::listen(&fd, Backlog::MAXALLOWABLE)
        .map_err(errno(format!("listening on unix://{shown}")))?;
    staging.publish(dirfd.as_fd(), name, replaces_stale, socket)?;
    Ok(UnixListener::from(fd))
}

fn is_socket(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFSOCK
}

fn errno(context: String) -> impl FnOnce(Errno) -> Error {
    move |e| Error::io(context, std::io::Error::from(e))
}

/// A private directory next to the socket's final path, removed (with anything left in it) when
/// dropped.
struct Staging<'a> {
    parent: BorrowedFd<'a>,
    name: OsString,
    fd: OwnedFd,
}

impl<'a> Staging<'a> {
    fn create(parent: BorrowedFd<'a>, dir: &Path, socket_name: &OsStr) -> Result<Staging<'a>> {
        let pid = std::process::id();
        let mut last = Errno::EEXIST;
        for attempt in 0..32u32 {
            let mut name = OsString::from(".");
            name.push(socket_name);
            name.push(format!(".bind-{pid}-{attempt}"));
            match nix::sys::stat::mkdirat(parent, name.as_os_str(), Mode::S_IRWXU) {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                Err(e) => {
                    last = e;
                    break;
                }
            }
            // From here on, dropping the value removes the directory.
            let fd = match nix::fcntl::openat(
                parent,
                name.as_os_str(),
                OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ =
                        nix::unistd::unlinkat(parent, name.as_os_str(), UnlinkatFlags::RemoveDir);
                    return Err(errno(format!(
                        "opening the staging directory {}",
                        dir.join(&name).display()
                    ))(e));
                }
            };
            let staging = Staging { parent, name, fd };
            // Only what was created just now, by us, with no access for others, is used.
            let st = nix::sys::stat::fstat(&staging.fd).map_err(errno(format!(
                "looking at the staging directory {}",
                dir.join(&staging.name).display()
            )))?;
            if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
                return Err(Error::usage(format!(
                    "the staging directory {} was replaced while the socket was being created; check who else writes to {}",
                    dir.join(&staging.name).display(),
                    dir.display()
                )));
            }
            return Ok(staging);
        }
        Err(errno(format!(
            "creating a staging directory for the socket in {}",
            dir.display()
        ))(last))
    }

    /// Moves the socket to its public name: replacing the stale socket found there, or (when
    /// there was none) refusing to replace what appeared meanwhile.
    fn publish(
        &self,
        parent: BorrowedFd<'_>,
        socket_name: &OsStr,
        replaces_stale: bool,
        socket: &Path,
    ) -> Result<()> {
        let renamed = if replaces_stale {
            nix::fcntl::renameat(&self.fd, STAGED_NAME, parent, socket_name)
        } else {
            match nix::fcntl::renameat2(
                &self.fd,
                STAGED_NAME,
                parent,
                socket_name,
                RenameFlags::RENAME_NOREPLACE,
            ) {
                // A filesystem without RENAME_NOREPLACE: the check above has to do.
                Err(Errno::EINVAL) => {
                    nix::fcntl::renameat(&self.fd, STAGED_NAME, parent, socket_name)
                }
                other => other,
            }
        };
        match renamed {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => Err(Error::usage(format!(
                "{} appeared while the daemon was creating its socket there: remove it or choose another --host",
                socket.display()
            ))),
            Err(e) => Err(errno(format!("moving the socket to {}", socket.display()))(
                e,
            )),
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(&self.fd, STAGED_NAME, UnlinkatFlags::NoRemoveDir);
        let _ = nix::unistd::unlinkat(self.parent, self.name.as_os_str(), UnlinkatFlags::RemoveDir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_empty_groups_resolve_like_dockerd() {
        assert_eq!(socket_gid("").ok(), Some(nix::unistd::getgid()));
        assert_eq!(socket_gid("4242424").ok(), Some(Gid::from_raw(4_242_424)));
        assert_eq!(socket_gid("root").ok(), Some(Gid::from_raw(0)));
        let e = socket_gid("no-such-group-berth")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("\"no-such-group-berth\" not found")),
            "{e:?}"
        );
    }
}
