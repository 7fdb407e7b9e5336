//! The p2p driver passes berth's driver behaviour tests (`berth_testhost::driver_suite`), as
//! root in throwaway namespaces.

use std::sync::Arc;

use berth_example_p2p::P2pDriver;
use berth_testhost::driver_suite::check_driver;

#[test]
fn p2p_passes_the_driver_behaviour_tests() {
    check_driver(
        &|host| Arc::new(P2pDriver::new(host.netns()).expect("p2p driver")),
        &Default::default(),
    );
}
