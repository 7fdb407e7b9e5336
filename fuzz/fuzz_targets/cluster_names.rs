//! What another host writes for the controller's cross-host DNS: the names of a global
//! network's endpoint (`EndpointNames`: instance, name, aliases, ipv4, ipv6), the value at
//! `network-dns/<network>/<endpoint>`. Any bytes decode to a record or to an error (the names
//! watch skips it with a warning), never a panic; a record that decodes survives an
//! encode/decode round trip unchanged (`berth::check_stored_record` checks it).
//!
//! Input layout: the whole input is the stored value.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A key as the controller writes it (`network-dns/<network id>/<endpoint id>`).
const KEY: &str = concat!(
    "network-dns/",
    "1111111111111111111111111111111111111111111111111111111111111111",
    "/",
    "2222222222222222222222222222222222222222222222222222222222222222"
);

fuzz_target!(|data: &[u8]| {
    let _ = berth::check_stored_record(KEY, data);
});
