//! What another host writes into the overlay peer table: the value at
//! `overlay/peer/<network>/<endpoint>` (a `PeerRecord`: ipv4, ipv6, mac, vtep) and the key
//! itself. Any bytes decode to a record or to nothing, never a panic; a record that decodes
//! encodes to bytes that decode to the same record. Any string is a peer key or not, never a
//! panic; a key that parses formats back (`peer_key`) to the same string.
//!
//! Input layout: the whole input is both the stored value and (as lossy UTF-8) the key.
#![no_main]

use berth_overlay::cluster::{PeerRecord, parse_peer_key, peer_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(record) = PeerRecord::decode(data) {
        let bytes = record.encode();
        assert_eq!(
            PeerRecord::decode(&bytes).as_ref(),
            Some(&record),
            "a peer record changes in a round trip: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let key = String::from_utf8_lossy(data);
    if let Some((network, endpoint)) = parse_peer_key(&key) {
        assert_eq!(
            peer_key(&network, &endpoint),
            key,
            "a peer key formats back differently"
        );
    }
});
