//! Arbitrary strings into Docker's `-p` and `--expose` parsers: never a panic; whatever parses
//! prints back to a spec that parses to the same value.
#![no_main]

use berth_portmap::{ExposedPort, PortSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = text.parse::<PortSpec>() {
        let again: PortSpec = spec
            .to_string()
            .parse()
            .expect("a printed spec parses again");
        assert_eq!(again, spec);
        if let Some(h) = spec.host_ports {
            assert!(h.len() == spec.container_ports.len() || spec.container_ports.len() == 1);
        }
    }
    let _ = text.parse::<ExposedPort>();
});
