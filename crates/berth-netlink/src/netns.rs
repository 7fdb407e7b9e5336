//! Network namespace handles.
//!
//! A [`Netns`] is an open file descriptor on a network namespace. [`Netns::run`] runs a closure with
//! the calling thread inside the namespace and always returns the thread to its own namespace
//! afterwards (also when the closure panics; if the kernel refused the way back, the process
//! aborts rather than go on in the wrong namespace). [`Netns::command`] prepares a child process
//! that enters it before `exec`. Sockets opened inside a namespace stay bound to it, so an
//! rtnetlink socket is opened once through [`Netns::run`] and then used from any thread.
//!
//! A network namespace is a per-thread setting (`setns(CLONE_NEWNET)` moves only the calling
//! thread), so entering and leaving in place costs two system calls where a thread made for the
//! purpose costs 100-150 µs (spawn, scheduling, join).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, Result};
use crate::name::validate_netns_name;

/// Where `ip netns` keeps its named namespaces; the default run directory of [`Netns::create`].
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Serialises the one-time "make the run directory a shared mount" step within this process.
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// An open handle on a network namespace.
///
/// Dropping a `Netns` closes the handle; it does not delete a named namespace (see [`Netns::delete`]).
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: Option<PathBuf>,
    /// The namespace's directories right under `/proc/sys/net` (`ipv4`, `ipv6`, ...), opened on
    /// first use by [`crate::sysctl_set`] and [`crate::sysctl_get`]: every namespace has its own
    /// entry of that name there, and a path walk compares against all of them.
    pub(crate) sysctl_dirs: crate::sysctl::SysctlDirs,
}

impl Netns {
    /// Creates a new, empty network namespace named `name` under [`DEFAULT_NETNS_DIR`], bind-mounted
    /// like `ip netns add NAME` does, so `ip netns exec NAME ...` works on it.
    pub fn create(name: &str) -> Result<Netns> {
        Self::create_in(Path::new(DEFAULT_NETNS_DIR), name)
    }

    /// Creates a new, empty network namespace bind-mounted at `dir/name`.
    ///
    /// `dir` is created if missing and made a shared mount point (as iproute2 does), so the namespace
    /// stays visible to other mount namespaces. Fails with [`Error::Exists`] if `dir/name` exists.
    /// On failure nothing is left behind.
    pub fn create_in(dir: &Path, name: &str) -> Result<Netns> {
        validate_netns_name(name)?;
        prepare_run_dir(dir)?;
        let path = dir.join(name);
        let object = format!("network namespace {}", path.display());
        create_mount_point(&path, &object)?;
        let mounted = (|| -> Result<()> {
            // The new namespace is the calling thread's only until the bind mount holds it.
            let home = thread_netns()?;
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io(format!("unshare for {object}"), e.into()))?;
            let _back = ReturnTo(home);
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::io(format!("bind-mounting {object}"), e.into()))
        })();
        if let Err(e) = mounted {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        match Self::open(&path) {
            Ok(ns) => Ok(ns),
            Err(e) => {
                let _ = remove_mount(&path);
                Err(e)
            }
        }
    }

    /// Opens an existing namespace by path: a bind mount (`/run/netns/NAME`) or `/proc/PID/ns/net`.
    ///
    /// The path is first opened with `O_PATH` (which never blocks and has no side effect on a
    /// FIFO or a device) and checked to live on the namespace filesystem; only then is it opened
    /// for real. Anything else (a regular file, a FIFO, a device, a directory) is refused with
    /// [`Error::NotANamespace`] without being opened or sent an ioctl. A path that does not
    /// exist is [`Error::NotFound`]; other failures to open keep their cause (see
    /// [`Error::is_not_found`]: only that one means the namespace is really gone).
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let object = || format!("network namespace {}", path.display());
        let open_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound { object: object() }
            } else {
                Error::io(format!("opening network namespace {}", path.display()), e)
            }
        };
        let probe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)
            .map_err(open_err)?;
        let on_nsfs = nix::sys::statfs::fstatfs(&probe)
            .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .map_err(|e| Error::io(format!("statfs on {}", path.display()), e.into()))?;
        if !on_nsfs {
            return Err(Error::NotANamespace {
                object: object(),
                message:
                    "the file is not a namespace (not a mounted namespace or /proc/PID/ns/net)"
                        .into(),
            });
        }
        // Reopened through the probe's own descriptor: the same file, whatever the path names now.
        let file = File::open(format!("/proc/self/fd/{}", probe.as_raw_fd())).map_err(open_err)?;
        let fd = OwnedFd::from(file);
        check_is_netns(fd.as_fd(), &object)?;
        Ok(Netns {
            fd,
            path: Some(path.to_path_buf()),
            sysctl_dirs: Default::default(),
        })
    }

    /// A handle on the namespace behind `fd`, a descriptor someone else holds (the controller's
    /// handle on a sandbox, handed to a driver): the descriptor is duplicated, so the caller's
    /// stays theirs and this handle lives on its own; no path is looked up. `path`, when known,
    /// names the namespace in messages and is what [`Netns::path`] reports (it is not opened).
    ///
    /// A descriptor that is not a network namespace is refused with [`Error::NotANamespace`]
    /// (checked to live on the namespace filesystem before any ioctl is sent to it).
    pub fn from_borrowed_fd(fd: BorrowedFd<'_>, path: Option<&Path>) -> Result<Netns> {
        let object = || match path {
            Some(p) => format!("network namespace {}", p.display()),
            None => "network namespace (given by descriptor)".to_owned(),
        };
        let on_nsfs = nix::sys::statfs::fstatfs(fd)
            .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .map_err(|e| Error::io(format!("statfs on {}", object()), e.into()))?;
        if !on_nsfs {
            return Err(Error::NotANamespace {
                object: object(),
                message: "the descriptor is not a namespace".into(),
            });
        }
        check_is_netns(fd, &object)?;
        let fd = fd
            .try_clone_to_owned()
            .map_err(|e| Error::io(format!("duplicating the descriptor of {}", object()), e))?;
        Ok(Netns {
            fd,
            path: path.map(Path::to_path_buf),
            sysctl_dirs: Default::default(),
        })
    }

    /// The namespace a caller names by `path` and, optionally, an open descriptor on it (a
    /// driver's view of a sandbox): [`Netns::from_borrowed_fd`] when `fd` is given (no path
    /// lookup, and right even if the path was re-mounted since), else [`Netns::open`].
    pub fn from_fd_or_path(fd: Option<BorrowedFd<'_>>, path: &Path) -> Result<Netns> {
        match fd {
            Some(fd) => Self::from_borrowed_fd(fd, Some(path)),
            None => Self::open(path),
        }
    }

    /// Bind-mounts this namespace at `dir/name` (as `ip netns attach` does), so that the path
    /// names it to every process, and returns a handle opened from that path. `dir` is prepared
    /// as in [`Netns::create_in`]. Fails with [`Error::Exists`] if `dir/name` exists; on failure
    /// nothing is left behind. Remove it with [`Netns::delete_named_in`] (the namespace itself
    /// lives on while anything else holds it).
    pub fn bind_at(&self, dir: &Path, name: &str) -> Result<Netns> {
        validate_netns_name(name)?;
        prepare_run_dir(dir)?;
        let path = dir.join(name);
        let object = format!("network namespace {}", path.display());
        create_mount_point(&path, &object)?;
        let source = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        if let Err(e) = mount(
            Some(source.as_str()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let _ = fs::remove_file(&path);
            return Err(Error::io(format!("bind-mounting {object}"), e.into()));
        }
        match Self::open(&path) {
            Ok(ns) => Ok(ns),
            Err(e) => {
                let _ = remove_mount(&path);
                Err(e)
            }
        }
    }

    /// Opens the named namespace `name` under [`DEFAULT_NETNS_DIR`].
    pub fn open_named(name: &str) -> Result<Netns> {
        validate_netns_name(name)?;
        Self::open(Path::new(DEFAULT_NETNS_DIR).join(name))
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        Ok(Netns {
            fd: OwnedFd::from(thread_netns()?),
            path: None,
            sysctl_dirs: Default::default(),
        })
    }

    /// The path this handle was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The namespace's inode number: two handles refer to the same namespace iff their ids are equal.
    pub fn id(&self) -> Result<u64> {
        inode(self.fd.as_fd())
    }

    /// True if both handles refer to the same namespace.
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        Ok(self.id()? == other.id()?)
    }

    /// Duplicates the handle.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            fd: self
                .fd
                .try_clone()
                .map_err(|e| Error::io("duplicating a namespace handle", e))?,
            path: self.path.clone(),
            sysctl_dirs: Default::default(),
        })
    }

    /// Runs `f` with the calling thread inside this namespace and returns its result. The thread
    /// returns to the namespace it was in when `f` returns or panics (the panic then goes on
    /// unwinding); should the kernel refuse the way back, the process aborts, since nothing on
    /// that thread could be trusted any more. Calls nest. Only the calling thread moves: other
    /// threads, and the thread's mount namespace, stay as they are.
    pub fn run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let home = thread_netns()?;
        if inode(home.as_fd())? == self.id()? {
            return Ok(f());
        }
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io(format!("entering {}", self.describe()), io::Error::from(e)))?;
        let _back = ReturnTo(home);
        Ok(f())
    }

    /// A [`Command`] whose child enters this namespace before `exec`. Keep this handle alive until the
    /// command is spawned.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.fd.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only makes the setns system
        // call, which is async-signal-safe and allocates nothing. `fd` is inherited across fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        cmd
    }

    /// Deletes a namespace berth bind-mounted (unmounts and removes the file). The namespace itself
    /// goes away once no process, socket or handle uses it any more.
    pub fn delete(self) -> Result<()> {
        match self.path.clone() {
            Some(path) => {
                drop(self);
                remove_mount(&path)
            }
            None => Err(Error::InvalidArgument {
                object: "network namespace".into(),
                message: "this handle has no path (it was not created or opened by path)".into(),
            }),
        }
    }

    /// Deletes the namespace bind-mounted at `dir/name`, if there is one. Returns whether it existed.
    pub fn delete_named_in(dir: &Path, name: &str) -> Result<bool> {
        validate_netns_name(name)?;
        let path = dir.join(name);
        if !path.exists() {
            return Ok(false);
        }
        remove_mount(&path)?;
        Ok(true)
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => format!("network namespace {}", p.display()),
            None => "network namespace".into(),
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Returns the calling thread to a network namespace when dropped (see [`Netns::run`]).
struct ReturnTo(File);

impl Drop for ReturnTo {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Carrying on would run whatever comes next on this thread (netlink requests,
            // sysctls, sockets) against the wrong namespace.
            eprintln!(
                "berth-netlink: cannot return a thread to its network namespace ({e}); aborting"
            );
            std::process::abort();
        }
    }
}

/// The calling thread's network namespace.
fn thread_netns() -> Result<File> {
    File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("opening the calling thread's network namespace", e))
}

/// The inode of a namespace descriptor: equal inodes, same namespace (all live on nsfs).
fn inode(fd: BorrowedFd<'_>) -> Result<u64> {
    nix::sys::stat::fstat(fd)
        .map(|st| st.st_ino)
        .map_err(|e| Error::io("fstat on a namespace handle", io::Error::from(e)))
}

/// Creates the empty file a namespace is bind-mounted on; [`Error::Exists`] if `path` exists.
fn create_mount_point(path: &Path, object: &str) -> Result<()> {
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Exists {
            object: object.to_owned(),
        }),
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}

/// Makes `dir` exist and be a shared mount point, as `ip netns add` does.
fn prepare_run_dir(dir: &Path) -> Result<()> {
    let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let flags = MsFlags::MS_SHARED | MsFlags::MS_REC;
    let mut bound = false;
    loop {
        match mount(None::<&str>, dir, Some("none"), flags, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(nix::Error::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| {
                    Error::io(
                        format!("bind-mounting {} on itself", dir.display()),
                        e.into(),
                    )
                })?;
                bound = true;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("making {} a shared mount", dir.display()),
                    e.into(),
                ));
            }
        }
    }
}

impl Netns {
    /// Undoes what creating namespaces in `dir` set up (the directory made a shared bind mount
    /// of itself, as `ip netns add` does): unmounts it and removes it if it is empty. For a
    /// caller that is done with `dir` for good (a teardown); namespaces still named in it are
    /// detached with it.
    pub fn release_dir(dir: &Path) -> Result<()> {
        let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
        match umount2(dir, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => {
                return Err(Error::io(format!("unmounting {}", dir.display()), e.into()));
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
        }
    }
}

fn remove_mount(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(Error::io(
                format!("unmounting network namespace {}", path.display()),
                e.into(),
            ));
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Refuses a file that is not a network namespace (e.g. an unmounted placeholder under /run/netns).
fn check_is_netns(fd: BorrowedFd<'_>, object: &dyn Fn() -> String) -> Result<()> {
    // NS_GET_NSTYPE = _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the ioctl takes no argument and only reads the fd, which is valid for this call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if rc == libc::CLONE_NEWNET {
        Ok(())
    } else {
        Err(Error::NotANamespace {
            object: object(),
            message: "the file is not a network namespace (not mounted, or another namespace type)"
                .into(),
        })
    }
}
