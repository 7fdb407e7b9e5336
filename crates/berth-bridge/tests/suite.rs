//! The bridge driver passes berth's driver behaviour tests (`berth_testhost::driver_suite`), as
//! root in throwaway namespaces, with its default options.

use std::sync::Arc;

use berth_bridge::{BridgeDefaults, BridgeDriver};
use berth_testhost::driver_suite::check_driver;

#[test]
fn bridge_passes_the_driver_behaviour_tests() {
    check_driver(
        &|host| {
            Arc::new(
                BridgeDriver::new(host.netns(), None, BridgeDefaults::default())
                    .expect("bridge driver"),
            )
        },
        &Default::default(),
    );
}
