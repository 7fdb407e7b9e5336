//! What the overlay driver keeps in the cluster store: each network's VXLAN id (claimed with
//! compare-and-swap, so no two networks of the cluster share one), and the peer table, one
//! entry per endpoint under its host's lease (so a dead host's entries go when its lease
//! expires).
//!
//! ```text
//! overlay/vni/<vni, 8 digits>          -> network id            (claim)
//! overlay/peer/<network id>/<endpoint> -> PeerRecord (JSON)     (under the host's lease)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_driver::{DriverError, EndpointId, NetworkId, Result};
use berth_store::{Expect, KvStore, Txn};
use berth_types::MacAddr;
use serde::{Deserialize, Serialize};

use crate::options::{FIRST_VNI, MAX_VNI};

/// Prefix of the VXLAN id claims.
pub const VNI_PREFIX: &str = "overlay/vni/";
/// Prefix of the peer table.
pub const PEER_PREFIX: &str = "overlay/peer/";

/// How many times a VXLAN id claim is tried when other hosts keep taking the chosen id.
const CLAIM_ATTEMPTS: usize = 100;

/// The store key of a VXLAN id claim (zero-padded, so a listing is in id order).
pub(crate) fn vni_key(vni: u32) -> String {
    format!("{VNI_PREFIX}{vni:08}")
}

/// The store key of an endpoint's peer entry (`overlay/peer/<network id>/<endpoint id>`);
/// [`parse_peer_key`] reads it back.
pub fn peer_key(network: &NetworkId, endpoint: &EndpointId) -> String {
    format!("{PEER_PREFIX}{network}/{endpoint}")
}

/// The network and endpoint a peer key names, if it is one: `None` for any key that is not
/// [`PEER_PREFIX`], a network id, `/` and an endpoint id (ids are 64 lowercase hex characters).
/// The watch of the peer table skips such keys.
pub fn parse_peer_key(key: &str) -> Option<(NetworkId, EndpointId)> {
    let rest = key.strip_prefix(PEER_PREFIX)?;
    let (net, ep) = rest.split_once('/')?;
    Some((net.parse().ok()?, ep.parse().ok()?))
}

/// One endpoint as the other hosts need it: where its frames go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The endpoint's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The endpoint's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The endpoint's MAC address.
    #[serde(with = "mac_text")]
    pub mac: MacAddr,
    /// The underlay address of the host the endpoint is on (its VXLAN tunnel end); it tells
    /// the hosts apart.
    pub vtep: IpAddr,
}

mod mac_text {
    use berth_types::MacAddr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(mac)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl PeerRecord {
    /// The record as it is stored: JSON, the MAC address as text (`02:42:0a:00:00:02`).
    pub fn encode(&self) -> Vec<u8> {
        // A struct of plain fields always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored record (written by any host of the cluster); `None` when the bytes are
    /// not one (the peer table skips such an entry with a warning).
    pub fn decode(bytes: &[u8]) -> Option<PeerRecord> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Claims a VXLAN id for `network`: `wanted` if given (an error if another network holds it),
/// else the lowest free one from [`FIRST_VNI`] up. A claim the network holds already is
/// returned as it is.
pub(crate) fn claim_vni(
    store: &dyn KvStore,
    network: &NetworkId,
    wanted: Option<u32>,
) -> Result<u32> {
    let err = |e: berth_store::Error| DriverError::store("claiming a VXLAN id", e);
    for _ in 0..CLAIM_ATTEMPTS {
        let listing = store.list(VNI_PREFIX).map_err(err)?;
        let mut taken = Vec::with_capacity(listing.entries.len());
        for e in &listing.entries {
            let Some(vni) = e
                .key
                .strip_prefix(VNI_PREFIX)
                .and_then(|v| v.parse::<u32>().ok())
            else {
                continue;
            };
            if e.value == network.as_str().as_bytes() {
                return Ok(vni);
            }
            taken.push(vni);
        }
        let vni = match wanted {
            Some(v) if taken.contains(&v) => {
                return Err(DriverError::InvalidConfig(format!(
                    "VXLAN id {v} is used by another network of the cluster"
                )));
            }
            Some(v) => v,
            None => lowest_free(&taken).ok_or_else(|| {
                DriverError::InvalidConfig(format!(
                    "no free VXLAN id left ({FIRST_VNI} to {MAX_VNI} are all in use)"
                ))
            })?,
        };
        let txn = Txn::new()
            .when(vni_key(vni), Expect::Absent)
            .put(vni_key(vni), network.as_str().as_bytes().to_vec());
        match store.commit(txn) {
            Ok(_) => return Ok(vni),
            // Another host took it meanwhile: look again.
            Err(berth_store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(DriverError::store(
        "claiming a VXLAN id",
        format!("other hosts took every id tried, {CLAIM_ATTEMPTS} times; try again"),
    ))
}

/// The lowest id from [`FIRST_VNI`] up that is not in `taken` (sorted ascending).
fn lowest_free(taken: &[u32]) -> Option<u32> {
    let mut next = FIRST_VNI;
    for &t in taken {
        if t < next {
            continue;
        }
        if t > next {
            break;
        }
        next = t.checked_add(1)?;
    }
    (next <= MAX_VNI).then_some(next)
}

/// Releases `network`'s claim on `vni` (only if it is that network's).
pub(crate) fn release_vni(store: &dyn KvStore, network: &NetworkId, vni: u32) -> Result<()> {
    let key = vni_key(vni);
    let err = |e: berth_store::Error| DriverError::store(format!("releasing VXLAN id {vni}"), e);
    let Some(entry) = store.get(&key).map_err(err)? else {
        return Ok(());
    };
    if entry.value != network.as_str().as_bytes() {
        return Ok(());
    }
    match store.compare_and_swap(&key, Expect::Revision(entry.mod_revision), None) {
        Ok(_) | Err(berth_store::Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// This host's lease, under which its peer entries live (shared with the controller's keys).
pub(crate) use berth_store::HostLease;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use berth_store::MemoryStore;
    use std::sync::Arc;

    fn id(n: u8) -> NetworkId {
        NetworkId::from_bytes([n; 32])
    }

    #[test]
    fn lowest_free_fills_gaps() {
        assert_eq!(lowest_free(&[]), Some(4096));
        assert_eq!(lowest_free(&[4096, 4097, 4099]), Some(4098));
        assert_eq!(lowest_free(&[1, 2, 4096]), Some(4097));
        assert_eq!(lowest_free(&[MAX_VNI]), Some(4096));
    }

    #[test]
    fn claims_are_unique_and_idempotent() {
        let s = MemoryStore::new();
        assert_eq!(claim_vni(&s, &id(1), None).unwrap(), 4096);
        assert_eq!(claim_vni(&s, &id(2), None).unwrap(), 4097);
        assert_eq!(claim_vni(&s, &id(1), None).unwrap(), 4096, "held already");
        assert_eq!(claim_vni(&s, &id(3), Some(5000)).unwrap(), 5000);
        let e = claim_vni(&s, &id(4), Some(4097)).unwrap_err().to_string();
        assert!(e.contains("4097") && e.contains("another network"), "{e}");
        release_vni(&s, &id(3), 4096).unwrap(); // not its claim: kept
        assert_eq!(claim_vni(&s, &id(4), None).unwrap(), 4098);
        release_vni(&s, &id(1), 4096).unwrap();
        assert_eq!(
            claim_vni(&s, &id(5), None).unwrap(),
            4096,
            "released ids are reused"
        );
    }

    #[test]
    fn concurrent_claims_never_share_an_id() {
        let s: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..10u8)
                        .map(|i| claim_vni(&*s, &id(t * 10 + i + 1), None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "an id was handed out twice");
        assert_eq!(all, (4096..4096 + 80).collect::<Vec<_>>());
    }

    #[test]
    fn peer_records_round_trip() {
        let r = PeerRecord {
            ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ipv6: None,
            mac: MacAddr([2, 0x42, 10, 0, 0, 2]),
            vtep: "192.0.2.1".parse().unwrap(),
        };
        let bytes = r.encode();
        assert!(String::from_utf8_lossy(&bytes).contains("02:42:0a:00:00:02"));
        assert_eq!(PeerRecord::decode(&bytes), Some(r));
        assert_eq!(PeerRecord::decode(b"{"), None);
        let (n, e) = (id(1), EndpointId::from_bytes([2; 32]));
        assert_eq!(parse_peer_key(&peer_key(&n, &e)), Some((n, e)));
        assert_eq!(parse_peer_key("overlay/peer/x/y"), None);
    }
}
