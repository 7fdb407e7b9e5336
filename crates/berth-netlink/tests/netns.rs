//! `Netns::run` and `Netns::create_in`, as root in throwaway namespaces: the calling thread runs the
//! closure inside the namespace and is back in its own afterwards, also after nested calls and a
//! panic; a namespace made by `create_in` is new, empty and not the caller's.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use berth_netlink::{Handle, Netns};
use common::*;

fn current() -> Netns {
    Netns::current().expect("the calling thread's namespace")
}

#[test]
fn run_enters_in_place_and_returns_also_after_nesting_and_panics() {
    let home = current();
    let a = host();
    let b = host();

    let inside = a.netns().run(current).unwrap();
    assert!(inside.same_as(a.netns()).unwrap(), "the closure ran in a");
    assert!(current().same_as(&home).unwrap(), "back home after run");

    a.netns()
        .run(|| {
            b.netns()
                .run(|| assert!(current().same_as(b.netns()).unwrap(), "inner in b"))
                .unwrap();
            assert!(
                current().same_as(a.netns()).unwrap(),
                "back in a after inner"
            );
            // Running in the namespace one is in already is a plain call.
            a.netns()
                .run(|| assert!(current().same_as(a.netns()).unwrap()))
                .unwrap();
        })
        .unwrap();
    assert!(current().same_as(&home).unwrap(), "back home after nesting");

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.netns().run(|| panic!("the closure fails")).unwrap();
    }));
    assert!(panicked.is_err());
    assert!(current().same_as(&home).unwrap(), "back home after a panic");

    // A socket opened inside belongs to the namespace: it is reachable there only.
    let listener = a
        .netns()
        .run(|| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let from_a = a.netns().run(|| TcpStream::connect(addr)).unwrap();
    assert!(from_a.is_ok(), "connect inside a: {from_a:?}");
    let from_b = b.netns().run(|| TcpStream::connect(addr)).unwrap();
    assert!(from_b.is_err(), "b has no listener on {addr}");
}

#[test]
fn created_namespace_is_new_and_empty_and_the_caller_stays_home() {
    let home = current();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::create_in(dir.path(), "made-here").unwrap();
    assert!(current().same_as(&home).unwrap(), "the caller stays home");
    assert!(!ns.same_as(&home).unwrap());
    let links = Handle::open(&ns).unwrap().link_list().unwrap();
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo"]);
    ns.delete().unwrap();
    assert!(!dir.path().join("made-here").exists());
    let _ = nix::mount::umount2(dir.path(), nix::mount::MntFlags::MNT_DETACH);
}

#[test]
fn open_refuses_what_is_not_a_namespace_without_blocking_or_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO nobody writes to: a blocking open would hang here forever.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"not a namespace").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let paths = [fifo.clone(), plain, "/dev/null".into(), dir.path().into()];
    std::thread::spawn(move || {
        let results: Vec<String> = paths
            .iter()
            .map(|p| match Netns::open(p) {
                Ok(_) => format!("{} opened", p.display()),
                Err(e) => e.to_string(),
            })
            .collect();
        let _ = tx.send(results);
    });
    let results = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("Netns::open of a FIFO must not block");
    for r in &results {
        assert!(
            r.contains("not a namespace"),
            "refused with a clear error: {r}"
        );
    }
    let missing = Netns::open(dir.path().join("nothing")).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    // Only a namespace file opens, also through /proc.
    let ns = Netns::open("/proc/self/ns/net").unwrap();
    assert!(ns.same_as(&current()).unwrap());
}

#[test]
fn bind_at_names_an_existing_namespace_to_every_process() {
    let h = host();
    let dir = tempfile::tempdir().unwrap();
    let bound = h.netns().bind_at(dir.path(), "default").unwrap();
    assert!(bound.same_as(h.netns()).unwrap());
    let path = dir.path().join("default");
    assert!(Netns::open(&path).unwrap().same_as(h.netns()).unwrap());
    // Another process that opens the path lands in the test host, not in its own namespace.
    let via_nsenter = std::process::Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args(["readlink", "/proc/self/ns/net"])
        .output()
        .unwrap();
    let want = format!("net:[{}]", h.netns().id().unwrap());
    assert_eq!(String::from_utf8_lossy(&via_nsenter.stdout).trim(), want);
    assert!(matches!(
        h.netns().bind_at(dir.path(), "default"),
        Err(berth_netlink::Error::Exists { .. })
    ));
    assert!(Netns::delete_named_in(dir.path(), "default").unwrap());
    assert!(!path.exists());
    let _ = nix::mount::umount2(dir.path(), nix::mount::MntFlags::MNT_DETACH);
}

#[test]
fn a_namespace_handed_over_by_descriptor_is_duplicated_and_checked() {
    use std::os::fd::AsFd;

    let h = host();
    let path = h.path();
    let owner = Netns::open(&path).unwrap();
    let dup = Netns::from_borrowed_fd(owner.as_fd(), Some(&path)).unwrap();
    assert!(dup.same_as(h.netns()).unwrap());
    assert_eq!(dup.path(), Some(path.as_path()));
    // The duplicate is its own: it outlives the descriptor it was made from.
    drop(owner);
    let links = Handle::open(&dup).unwrap().link_list().unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"],
        "a handle opened through the duplicate works in the test host"
    );
    // With no descriptor the path is opened; with one, the path is only a name.
    let by_path = Netns::from_fd_or_path(None, &path).unwrap();
    assert!(by_path.same_as(h.netns()).unwrap());
    let by_fd =
        Netns::from_fd_or_path(Some(dup.as_fd()), std::path::Path::new("/nowhere")).unwrap();
    assert!(by_fd.same_as(h.netns()).unwrap());
    assert!(
        Netns::from_fd_or_path(None, std::path::Path::new("/nowhere"))
            .unwrap_err()
            .is_not_found()
    );

    // A descriptor of anything else is refused, naming what it was given as.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"not a namespace").unwrap();
    for file in [
        std::fs::File::open(&plain).unwrap(),
        std::fs::File::open("/dev/null").unwrap(),
    ] {
        match Netns::from_borrowed_fd(file.as_fd(), Some(&plain)) {
            Err(berth_netlink::Error::NotANamespace { object, .. }) => {
                assert!(object.contains("plain"), "{object}")
            }
            other => panic!("a descriptor of a file must be refused: {other:?}"),
        }
    }
    // Another namespace type (the mount namespace) lives on nsfs too: the ioctl tells them apart.
    let mnt = std::fs::File::open("/proc/self/ns/mnt").unwrap();
    assert!(matches!(
        Netns::from_borrowed_fd(mnt.as_fd(), None),
        Err(berth_netlink::Error::NotANamespace { .. })
    ));
}
