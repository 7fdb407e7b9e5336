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
