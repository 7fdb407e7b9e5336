//! What the server keeps in its store (redb under the state directory), one record per object so
//! that every call writes only its own change:
//!
//! - `meta/instance`: the mark of the links the bridge driver makes (a random id, made once);
//! - `meta/forwarding`: whether the server switched IP forwarding on (then the FORWARD policy is
//!   DROP, as dockerd has it);
//! - `network/<id>`: a network as dockerd created it (its bridge options, pools, flags), with
//!   its phase (a creation or removal a crash cut short is finished on start);
//! - `endpoint/<id>`: an endpoint (its network, interface facts, whether it is joined, its
//!   published ports);
//! - `pool/<pool id>` and `address/<pool id>#<address>`: the IPAM's pools and the addresses
//!   handed out of them, replayed into the allocator on start.
//!
//! Values are JSON.

use std::net::IpAddr;

use berth_driver::{EndpointId, InterfaceInfo, IpamInfo, NetworkId, PortBinding, RawOptions};
use berth_store::{KvStore, Txn};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{ServerError, ServerResult};

/// The key of the instance id.
pub(crate) const INSTANCE_KEY: &str = "meta/instance";
/// The key of the forwarding record.
pub(crate) const FORWARDING_KEY: &str = "meta/forwarding";

/// Where a network or a join is in its life: written before the kernel is changed and
/// confirmed after (DESIGN invariant 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    /// Being made: on start, what may exist is removed and the record forgotten (dockerd was
    /// never told it succeeded).
    Creating,
    /// Made and confirmed.
    Ready,
    /// Being removed: on start, the removal is finished.
    Removing,
}

/// A network as dockerd's `CreateNetwork` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    /// Its id (dockerd's).
    pub(crate) id: NetworkId,
    /// The bridge driver's options (the user's `-o`).
    pub(crate) options: RawOptions,
    /// The IPv4 pools.
    pub(crate) ipv4: Vec<IpamInfo>,
    /// The IPv6 pools.
    pub(crate) ipv6: Vec<IpamInfo>,
    /// `--internal`.
    pub(crate) internal: bool,
    /// `--ipv6`.
    pub(crate) enable_ipv6: bool,
    /// Its phase.
    pub(crate) phase: Phase,
}

/// An endpoint's join: the name of its sandbox end in the host namespace (`SrcName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JoinRecord {
    /// The sandbox end's name in the host namespace.
    pub(crate) src_name: String,
    /// Being joined (the veth may be half made) or joined.
    pub(crate) phase: Phase,
}

/// An endpoint as dockerd's `CreateEndpoint` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    /// Its id.
    pub(crate) id: EndpointId,
    /// Its network.
    pub(crate) network: NetworkId,
    /// Its interface facts (the MAC the bridge driver chose included).
    pub(crate) interface: InterfaceInfo,
    /// Its driver options (`--driver-opt`).
    pub(crate) options: RawOptions,
    /// Its join, if joined.
    pub(crate) join: Option<JoinRecord>,
    /// Its published ports, as bound.
    pub(crate) bindings: Vec<PortBinding>,
}

/// What the server switched on in the host namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForwardingRecord {
    /// `net.ipv4.ip_forward` was off and the server switched it on.
    pub(crate) ipv4: bool,
    /// `net.ipv6.conf.all.forwarding` was off and the server switched it on.
    pub(crate) ipv6: bool,
}

/// An address handed out of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AddressRecord {
    /// The address.
    pub(crate) address: IpAddr,
}

pub(crate) fn network_key(id: &NetworkId) -> String {
    format!("network/{id}")
}

pub(crate) fn endpoint_key(id: &EndpointId) -> String {
    format!("endpoint/{id}")
}

pub(crate) fn pool_key(pool: &str) -> String {
    format!("pool/{pool}")
}

/// The prefix of a pool's addresses (`#` never occurs in a pool id).
pub(crate) fn address_prefix(pool: &str) -> String {
    format!("address/{pool}#")
}

pub(crate) fn address_key(pool: &str, addr: IpAddr) -> String {
    format!("{}{addr}", address_prefix(pool))
}

/// The server's store, with typed reads and writes.
pub(crate) struct Records {
    store: Box<dyn KvStore>,
}

impl Records {
    pub(crate) fn new(store: Box<dyn KvStore>) -> Records {
        Records { store }
    }

    /// Writes `value` at `key`.
    pub(crate) fn put<T: Serialize>(&self, key: &str, value: &T) -> ServerResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| ServerError::Record {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.store
            .put(key, &bytes)
            .map(drop)
            .map_err(|e| ServerError::store(format!("writing {key}"), e))
    }

    /// Deletes `key` (no error when absent).
    pub(crate) fn delete(&self, key: &str) -> ServerResult<()> {
        self.store
            .delete(key)
            .map(drop)
            .map_err(|e| ServerError::store(format!("deleting {key}"), e))
    }

    /// Deletes every key under `prefix` and `key` itself, in one transaction.
    pub(crate) fn delete_with_prefix(&self, key: &str, prefix: &str) -> ServerResult<()> {
        let listing = self
            .store
            .list(prefix)
            .map_err(|e| ServerError::store(format!("listing {prefix}"), e))?;
        let mut txn = Txn::new().delete(key);
        for e in listing.entries {
            txn = txn.delete(e.key);
        }
        self.store
            .commit(txn)
            .map(drop)
            .map_err(|e| ServerError::store(format!("deleting {key} and {prefix}*"), e))
    }

    /// The value at `key`, if any.
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str) -> ServerResult<Option<T>> {
        let Some(entry) = self
            .store
            .get(key)
            .map_err(|e| ServerError::store(format!("reading {key}"), e))?
        else {
            return Ok(None);
        };
        decode(&entry.key, &entry.value).map(Some)
    }

    /// Every record under `prefix`, with its key.
    pub(crate) fn list<T: DeserializeOwned>(&self, prefix: &str) -> ServerResult<Vec<(String, T)>> {
        let listing = self
            .store
            .list(prefix)
            .map_err(|e| ServerError::store(format!("listing {prefix}"), e))?;
        listing
            .entries
            .into_iter()
            .map(|e| decode(&e.key, &e.value).map(|v| (e.key, v)))
            .collect()
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> ServerResult<T> {
    serde_json::from_slice(value).map_err(|e| ServerError::Record {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use berth_store::MemoryStore;

    use super::*;

    #[test]
    fn records_round_trip_and_addresses_go_with_their_pool() {
        let r = Records::new(Box::new(MemoryStore::new()));
        let pool = "LocalDefault/10.1.0.0/24";
        r.put(&pool_key(pool), &pool).unwrap();
        for a in ["10.1.0.1", "10.1.0.2"] {
            let address: IpAddr = a.parse().unwrap();
            r.put(&address_key(pool, address), &AddressRecord { address })
                .unwrap();
        }
        // Another pool whose id starts like this one's keeps its addresses.
        let other = "LocalDefault/10.1.0.0/25";
        let address: IpAddr = "10.1.0.3".parse().unwrap();
        r.put(&address_key(other, address), &AddressRecord { address })
            .unwrap();
        let got: Vec<(String, AddressRecord)> = r.list(&address_prefix(pool)).unwrap();
        assert_eq!(got.len(), 2);
        r.delete_with_prefix(&pool_key(pool), &address_prefix(pool))
            .unwrap();
        assert!(r.get::<String>(&pool_key(pool)).unwrap().is_none());
        let left: Vec<(String, AddressRecord)> = r.list("address/").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.address, address);
        // A damaged record is an error that names its key.
        r.put("network/x", &"not a record").unwrap();
        let e = r.list::<NetworkRecord>("network/").unwrap_err();
        assert!(e.to_string().contains("\"network/x\""), "{e}");
    }
}
