//! Routes: add, replace, delete, list (IPv4 and IPv6, main table by default).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};

use crate::addr::{IpFamily, Scope, cidr, to_netlink};
use crate::error::{Error, Result};
use crate::link::LinkRef;
use crate::socket::{Handle, parse_reply};

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;

/// The main routing table (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;
/// `RTPROT_BOOT`: the protocol `ip route add` gives routes; berth's default.
pub const PROTOCOL_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const PROTOCOL_STATIC: u8 = 4;

/// A route to add or delete.
///
/// ```
/// use berth_netlink::RouteSpec;
/// // default via 10.0.0.1, metric 100
/// let default = RouteSpec::default_v4().via("10.0.0.1".parse().unwrap()).metric(100);
/// // 192.0.2.0/24 dev br0 (scope link)
/// let on_link = RouteSpec::new("192.0.2.0/24".parse().unwrap()).dev("br0");
/// # let _ = (default, on_link);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    dst: IpNet,
    gateway: Option<IpAddr>,
    dev: Option<LinkRef>,
    metric: Option<u32>,
    src: Option<IpAddr>,
    table: Option<u32>,
    protocol: u8,
    scope: Option<Scope>,
}

impl RouteSpec {
    /// A route to `dst` (host bits must be zero, e.g. `10.1.0.0/16`).
    pub fn new(dst: IpNet) -> Self {
        RouteSpec {
            dst,
            gateway: None,
            dev: None,
            metric: None,
            src: None,
            table: None,
            protocol: PROTOCOL_BOOT,
            scope: None,
        }
    }

    /// The IPv4 default route `0.0.0.0/0`.
    pub fn default_v4() -> Self {
        Self::new(IpNet::V4(ipnet::Ipv4Net::default()))
    }

    /// The IPv6 default route `::/0`.
    pub fn default_v6() -> Self {
        Self::new(IpNet::V6(ipnet::Ipv6Net::default()))
    }

    /// Through the gateway `gw` (same family as the destination).
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }

    /// Out of the link `dev`; without a gateway the route gets scope link.
    pub fn dev(mut self, dev: impl Into<LinkRef>) -> Self {
        self.dev = Some(dev.into());
        self
    }

    /// The metric (`RTA_PRIORITY`); lower wins.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// The preferred source address (`src`, `RTA_PREFSRC`).
    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }

    /// A routing table other than main (1 to 2^32-1).
    pub fn table(mut self, table: u32) -> Self {
        self.table = Some(table);
        self
    }

    /// The route's protocol number (default [`PROTOCOL_BOOT`], like `ip route add`).
    pub fn protocol(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }

    /// An explicit scope (default: link for a route through a device without gateway, else
    /// universe).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The destination.
    pub fn dst(&self) -> IpNet {
        self.dst
    }

    fn family(&self) -> IpFamily {
        IpFamily::of(self.dst.addr())
    }

    fn describe(&self) -> String {
        let mut s = format!("route {}", self.dst);
        if let Some(gw) = &self.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(dev) = &self.dev {
            s.push_str(&format!(" dev {dev}"));
        }
        if let Some(t) = self.table {
            s.push_str(&format!(" table {t}"));
        }
        if let Some(m) = self.metric {
            s.push_str(&format!(" metric {m}"));
        }
        s
    }

    fn validate(&self) -> Result<()> {
        let bad = |message: String| {
            Err(Error::InvalidArgument {
                object: self.describe(),
                message,
            })
        };
        if self.dst.trunc() != self.dst {
            return bad(format!(
                "the destination has host bits set; did you mean {}?",
                self.dst.trunc()
            ));
        }
        let family = self.family();
        for (what, addr) in [("gateway", self.gateway), ("source", self.src)] {
            if let Some(a) = addr {
                if IpFamily::of(a) != family {
                    return bad(format!(
                        "{what} {a} is not of the destination's address family"
                    ));
                }
            }
        }
        if self.table == Some(0) {
            return bad("table 0 is not a routing table (use 1 to 4294967295)".into());
        }
        if let Some(dev) = &self.dev {
            dev.validate()?;
        }
        Ok(())
    }

    fn message(&self, handle: &Handle, for_delete: bool) -> Result<RouteMessage> {
        let table = self.table.unwrap_or(MAIN_TABLE);
        let mut msg = RouteMessage::default();
        msg.header.address_family = to_netlink(self.family());
        msg.header.destination_prefix_length = self.dst.prefix_len();
        msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        if for_delete {
            // Match whatever scope, protocol and type the route has.
            msg.header.scope = RouteScope::NoWhere;
        } else {
            msg.header.protocol = RouteProtocol::from(self.protocol);
            msg.header.kind = RouteType::Unicast;
            msg.header.scope = match self.scope {
                Some(s) => RouteScope::from(s.to_u8()),
                None if self.gateway.is_none() && self.dev.is_some() => RouteScope::Link,
                None => RouteScope::Universe,
            };
        }
        msg.attributes.push(RouteAttribute::Table(table));
        if self.dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(self.dst.addr().into()));
        }
        if let Some(gw) = self.gateway {
            msg.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        if let Some(dev) = &self.dev {
            msg.attributes
                .push(RouteAttribute::Oif(handle.resolve(dev)?));
        }
        if let Some(m) = self.metric {
            msg.attributes.push(RouteAttribute::Priority(m));
        }
        if let Some(src) = self.src {
            msg.attributes.push(RouteAttribute::PrefSource(src.into()));
        }
        Ok(msg)
    }
}

/// The type of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteKind {
    /// A gateway or direct route.
    Unicast,
    /// A local address (local table).
    Local,
    /// A broadcast address (local table).
    Broadcast,
    /// An anycast address.
    Anycast,
    /// A multicast route.
    Multicast,
    /// Drop silently.
    Blackhole,
    /// Refuse with "host unreachable".
    Unreachable,
    /// Refuse with "administratively prohibited".
    Prohibit,
    /// Continue the lookup in the next table.
    Throw,
    /// Another type.
    Other(u8),
}

impl RouteKind {
    fn from_netlink(t: RouteType) -> RouteKind {
        match t {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            RouteType::Anycast => RouteKind::Anycast,
            RouteType::Multicast => RouteKind::Multicast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            RouteType::Throw => RouteKind::Throw,
            other => RouteKind::Other(u8::from(other)),
        }
    }
}

/// A route as the kernel reports it. Multipath routes (`RTA_MULTIPATH`) are listed without gateway
/// or device: berth does not decode their next hops.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// The destination (`0.0.0.0/0` or `::/0` for a default route).
    pub dst: IpNet,
    /// The gateway.
    pub gateway: Option<IpAddr>,
    /// The index of the output link.
    pub oif: Option<u32>,
    /// The routing table.
    pub table: u32,
    /// The metric.
    pub metric: Option<u32>,
    /// The preferred source address.
    pub src: Option<IpAddr>,
    /// The scope.
    pub scope: Scope,
    /// The protocol number (2 = kernel, 3 = boot, 4 = static, ...).
    pub protocol: u8,
    /// The type.
    pub kind: RouteKind,
}

impl Route {
    pub(crate) fn from_message(msg: RouteMessage) -> Option<Route> {
        let family = match msg.header.address_family {
            AddressFamily::Inet => IpFamily::V4,
            AddressFamily::Inet6 => IpFamily::V6,
            _ => return None,
        };
        let mut dst = None;
        let mut route = Route {
            dst: match family {
                IpFamily::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
                IpFamily::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
            },
            gateway: None,
            oif: None,
            table: u32::from(msg.header.table),
            metric: None,
            src: None,
            scope: Scope::from_u8(msg.header.scope.into()),
            protocol: msg.header.protocol.into(),
            kind: RouteKind::from_netlink(msg.header.kind),
        };
        for attr in msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = ip_of(&a),
                RouteAttribute::Gateway(a) => route.gateway = ip_of(&a),
                RouteAttribute::Oif(i) => route.oif = Some(i),
                RouteAttribute::Table(t) => route.table = t,
                RouteAttribute::Priority(m) => route.metric = Some(m),
                RouteAttribute::PrefSource(a) => route.src = ip_of(&a),
                _ => {}
            }
        }
        if let Some(d) = dst {
            route.dst = cidr(d, msg.header.destination_prefix_length).ok()?;
        } else if msg.header.destination_prefix_length != 0 {
            return None;
        }
        Some(route)
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

pub(crate) fn decode_route(ty: u16, payload: &[u8]) -> Result<Option<Route>> {
    let Some(msg) = parse_reply::<RouteMessage>(ty, RTM_NEWROUTE, payload, "a route message")?
    else {
        return Ok(None);
    };
    if msg.header.flags.contains(RouteFlags::Cloned) {
        return Ok(None);
    }
    Ok(Route::from_message(msg))
}

impl Handle {
    /// Adds a route. [`Error::Exists`] if an identical route is there.
    pub fn route_add(&self, spec: &RouteSpec) -> Result<()> {
        spec.validate()?;
        let msg = spec.message(self, false)?;
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &msg, &|| {
            spec.describe()
        })
    }

    /// Adds a route, or replaces the route to the same destination (same table, metric, ...).
    pub fn route_replace(&self, spec: &RouteSpec) -> Result<()> {
        spec.validate()?;
        let msg = spec.message(self, false)?;
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &msg, &|| {
            spec.describe()
        })
    }

    /// Deletes the first route matching the spec: destination and table, plus gateway, device
    /// and metric when the spec gives them. [`Error::NotFound`] if none matches.
    pub fn route_delete(&self, spec: &RouteSpec) -> Result<()> {
        spec.validate()?;
        let msg = spec.message(self, true)?;
        self.request(RTM_DELROUTE, 0, &msg, &|| spec.describe())
    }

    /// The destinations of the main table's routes, IPv4 then IPv6 (default routes included).
    pub fn route_destinations(&self) -> Result<Vec<IpNet>> {
        let mut out = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            out.extend(self.route_list(family, None)?.into_iter().map(|r| r.dst));
        }
        Ok(out)
    }

    /// The routes of one family in one table (`None`: the main table). Cached (cloned) routes are
    /// left out. A table that does not exist yet has no routes.
    pub fn route_list(&self, family: IpFamily, table: Option<u32>) -> Result<Vec<Route>> {
        let table = table.unwrap_or(MAIN_TABLE);
        let mut msg = RouteMessage::default();
        msg.header.address_family = to_netlink(family);
        msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        msg.attributes.push(RouteAttribute::Table(table));
        let object = || format!("routes of table {table}");
        let mut routes = match self.dump(RTM_GETROUTE, &msg, &object, &mut decode_route) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        routes.retain(|r| r.table == table);
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked() {
        let host_bits = RouteSpec::new("10.1.2.3/16".parse().unwrap());
        let e = host_bits.validate().unwrap_err();
        assert!(e.to_string().contains("10.1.0.0/16"), "{e}");
        let mixed = RouteSpec::default_v4().via("fd00::1".parse().unwrap());
        assert!(matches!(
            mixed.validate(),
            Err(Error::InvalidArgument { .. })
        ));
        let src = RouteSpec::default_v6().src("10.0.0.1".parse().unwrap());
        assert!(src.validate().is_err());
        assert!(RouteSpec::default_v4().table(0).validate().is_err());
        assert!(RouteSpec::default_v4().dev("a b").validate().is_err());
        assert!(
            RouteSpec::default_v4()
                .via("10.0.0.1".parse().unwrap())
                .metric(5)
                .table(100)
                .validate()
                .is_ok()
        );
    }
}
