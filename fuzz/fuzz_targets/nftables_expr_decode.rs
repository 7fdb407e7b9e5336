//! Feeds arbitrary bytes to berth-netlink's reader of listed nf_tables expressions
//! (`ListedExpr::decode`, what the iptables backend's netlink deletes use to find a rule): first
//! byte = which expression kind, the rest = its raw attributes. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_netlink::fuzz_decode_listed_expr(data);
});
