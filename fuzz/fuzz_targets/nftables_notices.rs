//! Feeds arbitrary bytes to berth-netlink's nf_tables notification parser (the code behind
//! `NftMonitor`, which groups the kernel's change notifications into commits): datagrams
//! separated by `ff ff ff ff`. Must never panic, and a commit must never list more changes than
//! the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_netlink::nftables::fuzz_scan_nftables_notices(data);
});
