//! Feeds arbitrary bytes to berth-netlink's nf_tables reply scanner (the code that reads the
//! kernel's acks and errors after a batch): first byte = number of messages in the batch, the rest
//! = datagrams separated by `ff ff ff ff`. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    berth_netlink::fuzz_scan_nftables_replies(data);
});
