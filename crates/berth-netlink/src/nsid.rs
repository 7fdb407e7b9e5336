//! Namespace ids (nsid): the number a namespace gives another one, as `ip netns set` and
//! `ip netns list-id` show them.
//!
//! The kernel finds the id of a peer namespace by walking the ids in ascending order (it keeps
//! them by id, not by namespace), every time it describes a link whose other end lives there: a
//! host veth in every notification. Giving newer namespaces lower ids makes that search find the
//! newest first.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::AddressFamily;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};

use crate::Netns;
use crate::error::{Error, Result};
use crate::socket::{Handle, parse_reply};

const RTM_NEWNSID: u16 = 88;
const RTM_GETNSID: u16 = 90;

fn message(attributes: Vec<NsidAttribute>) -> NsidMessage {
    let mut msg = NsidMessage::default();
    msg.header.family = AddressFamily::Unspec;
    msg.attributes = attributes;
    msg
}

fn fd_attr(peer: &Netns) -> Result<NsidAttribute> {
    let fd = u32::try_from(peer.as_fd().as_raw_fd()).map_err(|_| Error::InvalidArgument {
        object: "namespace handle".into(),
        message: "the descriptor is negative".into(),
    })?;
    Ok(NsidAttribute::Fd(fd))
}

/// The `NETNSA_NSID` of a reply (`None` for a namespace without an id, which the kernel reports
/// as -1).
pub(crate) fn decode_nsid(ty: u16, payload: &[u8]) -> Result<Option<i32>> {
    let Some(msg) = parse_reply::<NsidMessage>(ty, RTM_NEWNSID, payload, "a namespace id message")?
    else {
        return Ok(None);
    };
    Ok(msg.attributes.iter().find_map(|a| match a {
        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
        _ => None,
    }))
}

impl Handle {
    /// Gives `peer` the id `nsid` in this handle's namespace (`ip netns set`).
    /// [`Error::Exists`] if `peer` has an id there already or another namespace has `nsid` (the
    /// kernel answers both with `EEXIST`; [`Handle::nsid_get`] tells them apart);
    /// [`Error::InvalidArgument`] for a negative id.
    pub fn nsid_set(&self, peer: &Netns, nsid: i32) -> Result<()> {
        if nsid < 0 {
            return Err(Error::InvalidArgument {
                object: format!("namespace id {nsid}"),
                message: "ids are 0 or more".into(),
            });
        }
        let msg = message(vec![fd_attr(peer)?, NsidAttribute::Id(nsid)]);
        self.request(RTM_NEWNSID, 0, &msg, &|| format!("namespace id {nsid}"))
    }

    /// The id this handle's namespace gives `peer`, if it has one.
    pub fn nsid_get(&self, peer: &Netns) -> Result<Option<i32>> {
        let msg = message(vec![fd_attr(peer)?]);
        Ok(self
            .get(
                RTM_GETNSID,
                &msg,
                &|| "namespace id".into(),
                &mut |ty, p| decode_nsid(ty, p).map(Some),
            )?
            .flatten())
    }

    /// Every id this handle's namespace has given (`ip netns list-id`).
    pub fn nsid_list(&self) -> Result<Vec<i32>> {
        let msg = message(Vec::new());
        self.dump(
            RTM_GETNSID,
            &msg,
            &|| "namespace ids".into(),
            &mut decode_nsid,
        )
    }
}
