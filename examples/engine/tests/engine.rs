//! The example engine runs its whole flow against a throwaway host namespace, as root, and
//! leaves it exactly as it found it (links, addresses, rules, the forwarding sysctls, mounts).

#![allow(clippy::unwrap_used)]

use berth_testhost::TestHost;

#[test]
fn the_example_engine_runs_and_leaves_its_host_as_it_was() {
    let host = TestHost::new().expect("a test host (run as root)");
    let state = tempfile::tempdir().unwrap();
    let before = host.state_snapshot(state.path()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-example-engine"))
        .arg(host.path())
        .arg(state.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "client reaches web directly and through the published port",
        "after a restart",
        "over the engine's own p2p driver",
        "torn down",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    assert_eq!(
        host.state_snapshot(state.path()).unwrap(),
        before,
        "the host namespace as it was"
    );
}
