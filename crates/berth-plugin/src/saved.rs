//! What the network driver adapter keeps on disk of each endpoint, when it is given a
//! directory ([`crate::RemoteNetworkDriver::keep_state_in`]): the endpoint's interface facts
//! and, while it is joined, the plugin's join answer and the interface's names. A remote plugin
//! cannot be asked to join an endpoint twice (it would make a second interface), so after a
//! restart of the controller the adapter answers the controller's repeated `create_endpoint`
//! and `join` from here instead of asking the plugin again. One JSON file per endpoint,
//! replaced atomically.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use berth_driver::{EndpointId, InterfaceInfo, JoinInfo};
use serde::{Deserialize, Serialize};

/// An endpoint as the adapter saved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedEndpoint {
    /// Its interface facts.
    pub(crate) interface: InterfaceInfo,
    /// Its join, while joined.
    pub(crate) join: Option<SavedJoin>,
}

/// A join as the adapter saved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedJoin {
    /// The interface's name in the sandbox.
    pub(crate) ifname: String,
    /// Its name in the host namespace (`SrcName`), for giving it back.
    pub(crate) src_name: String,
    /// What the join reported.
    pub(crate) info: JoinInfo,
}

/// The directory of saved endpoints.
#[derive(Debug)]
pub(crate) struct SavedDir(PathBuf);

impl SavedDir {
    /// Opens (makes) `dir` and reads the endpoints saved there; a file that cannot be read is
    /// skipped with a warning.
    pub(crate) fn open(dir: &Path) -> io::Result<(SavedDir, HashMap<EndpointId, SavedEndpoint>)> {
        std::fs::create_dir_all(dir)?;
        let mut saved = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<EndpointId>().ok())
            else {
                continue;
            };
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
            match read {
                Ok(ep) => {
                    saved.insert(id, ep);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping a saved endpoint that cannot be read");
                }
            }
        }
        Ok((SavedDir(dir.to_owned()), saved))
    }

    fn path(&self, id: &EndpointId) -> PathBuf {
        self.0.join(format!("{id}.json"))
    }

    /// Saves `ep` (written to a temporary file, then renamed over the old one).
    pub(crate) fn save(&self, id: &EndpointId, ep: &SavedEndpoint) -> io::Result<()> {
        let bytes = serde_json::to_vec(ep).map_err(io::Error::other)?;
        let tmp = self.0.join(format!(".{id}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.path(id))
    }

    /// Forgets endpoint `id` (no error if it was not saved).
    pub(crate) fn forget(&self, id: &EndpointId) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn saved_endpoints_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fakenet");
        let (saved, found) = SavedDir::open(&dir).unwrap();
        assert!(found.is_empty());
        let id = EndpointId::from_bytes([3; 32]);
        let ep = SavedEndpoint {
            interface: InterfaceInfo {
                mac: None,
                ipv4: Some("10.0.0.2/24".parse().unwrap()),
                ipv6: None,
            },
            join: Some(SavedJoin {
                ifname: "eth0".into(),
                src_name: "veth1".into(),
                info: JoinInfo {
                    ifname: "eth0".into(),
                    gateway_v4: Some("10.0.0.1".parse().unwrap()),
                    ..Default::default()
                },
            }),
        };
        saved.save(&id, &ep).unwrap();
        std::fs::write(dir.join("junk.json"), "x").unwrap();
        std::fs::write(
            dir.join(format!("{}.json", EndpointId::from_bytes([4; 32]))),
            "{",
        )
        .unwrap();
        let (saved, found) = SavedDir::open(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[&id], ep);
        saved.forget(&id).unwrap();
        saved.forget(&id).unwrap();
        assert!(SavedDir::open(&dir).unwrap().1.is_empty());
    }
}
