//! Feeds arbitrary bytes to berth-netlink's reply scanner and decoders (the code that reads what
//! the kernel sends back): first byte = dump or request, the rest = one datagram. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_netlink::fuzz_scan_replies(data);
});
