//! Feeds arbitrary bytes to berth-netlink's nf_tables rule-dump reader (what
//! `NftHandle::list_rules` runs on the kernel's answer): datagrams separated by `ff ff ff ff`,
//! messages of sequence number 1. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_netlink::fuzz_scan_rule_dump(data);
});
