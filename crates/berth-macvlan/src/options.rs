//! The drivers' options, parsed once from Docker's keys into typed values (pure), and the
//! parsing of a `NAME.VLAN_ID` parent.

use berth_driver::{DriverError, OptionReader, RawOptions, Result};
use berth_netlink::{IpvlanMode, MacvlanMode};

use crate::error::MacvlanError;

/// `-o parent=IFACE`: the host interface the network's endpoints hang off. `NAME.VLAN_ID` (for
/// example `eth0.10`) names an 802.1q sub-interface, made on `NAME` when missing. Absent or
/// empty: an internal network on a link the driver makes for it.
pub const PARENT: &str = "parent";
/// `-o macvlan_mode=bridge|private|vepa|passthru` (default `bridge`).
pub const MACVLAN_MODE: &str = "macvlan_mode";
/// `-o ipvlan_mode=l2|l3|l3s` (default `l2`).
pub const IPVLAN_MODE: &str = "ipvlan_mode";
/// `-o ipvlan_flag=bridge|private|vepa` (default `bridge`).
pub const IPVLAN_FLAG: &str = "ipvlan_flag";

/// How an ipvlan network's endpoints reach each other through their parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpvlanFlag {
    /// Directly, inside the host (the default).
    #[default]
    Bridge,
    /// Not at all.
    Private,
    /// Through the adjacent switch, which must reflect the traffic (802.1Qbg VEPA).
    Vepa,
}

/// A macvlan network's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanOptions {
    /// The parent interface ([`PARENT`]); `None`: an internal network.
    pub parent: Option<String>,
    /// The macvlan mode ([`MACVLAN_MODE`]).
    pub mode: MacvlanMode,
}

/// An ipvlan network's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvlanOptions {
    /// The parent interface ([`PARENT`]); `None`: an internal network.
    pub parent: Option<String>,
    /// The ipvlan mode ([`IPVLAN_MODE`]).
    pub mode: IpvlanMode,
    /// The ipvlan flag ([`IPVLAN_FLAG`]).
    pub flag: IpvlanFlag,
}

impl MacvlanOptions {
    /// Parses Docker's macvlan options; unknown keys and bad values are errors naming them.
    pub fn parse(raw: &RawOptions) -> Result<MacvlanOptions> {
        let mut r = OptionReader::new("macvlan", raw);
        let parent = parent(&mut r, "macvlan")?;
        let mode = match r.string(MACVLAN_MODE) {
            None | Some("" | "bridge") => MacvlanMode::Bridge,
            Some("private") => MacvlanMode::Private,
            Some("vepa") => MacvlanMode::Vepa,
            Some("passthru") => MacvlanMode::Passthru,
            Some(other) => {
                return Err(invalid(
                    MACVLAN_MODE,
                    other,
                    format!(
                        "requested macvlan mode '{other}' is not valid, 'bridge' mode is the \
                         macvlan driver default (bridge, private, vepa or passthru)"
                    ),
                ));
            }
        };
        r.finish()?;
        Ok(MacvlanOptions { parent, mode })
    }
}

impl IpvlanOptions {
    /// Parses Docker's ipvlan options; unknown keys and bad values are errors naming them.
    pub fn parse(raw: &RawOptions) -> Result<IpvlanOptions> {
        let mut r = OptionReader::new("ipvlan", raw);
        let parent = parent(&mut r, "ipvlan")?;
        let mode = match r.string(IPVLAN_MODE) {
            None | Some("" | "l2") => IpvlanMode::L2,
            Some("l3") => IpvlanMode::L3,
            Some("l3s") => IpvlanMode::L3s,
            Some(other) => {
                return Err(invalid(
                    IPVLAN_MODE,
                    other,
                    format!(
                        "requested ipvlan mode '{other}' is not valid, 'l2' mode is the ipvlan \
                         driver default (l2, l3 or l3s)"
                    ),
                ));
            }
        };
        let flag = match r.string(IPVLAN_FLAG) {
            None | Some("" | "bridge") => IpvlanFlag::Bridge,
            Some("private") => IpvlanFlag::Private,
            Some("vepa") => IpvlanFlag::Vepa,
            Some(other) => {
                return Err(invalid(
                    IPVLAN_FLAG,
                    other,
                    format!(
                        "requested ipvlan flag '{other}' is not valid, 'bridge' is the ipvlan \
                         driver default (bridge, private or vepa)"
                    ),
                ));
            }
        };
        r.finish()?;
        Ok(IpvlanOptions { parent, mode, flag })
    }
}

fn invalid(key: &str, value: &str, reason: String) -> DriverError {
    DriverError::InvalidOption {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

/// The parent option: a valid interface name, not the loopback; empty means none.
fn parent(r: &mut OptionReader<'_>, kind: &str) -> Result<Option<String>> {
    let Some(name) = r.string(PARENT).map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if name == "lo" {
        return Err(invalid(
            PARENT,
            name,
            format!("loopback interface is not a valid {kind} parent link"),
        ));
    }
    if let Err(e) = berth_netlink::validate_ifname(name) {
        return Err(invalid(PARENT, name, e.to_string()));
    }
    Ok(Some(name.to_owned()))
}

/// A missing parent's name read as `NAME.VLAN_ID` (Docker's rules and messages): the base
/// interface and the VLAN id (1 to 4094).
pub(crate) fn parse_vlan_parent(parent: &str) -> Result<(String, u16), MacvlanError> {
    let parts: Vec<&str> = parent.split('.').collect();
    let (base, vid) = match parts.as_slice() {
        [_] => {
            return Err(MacvlanError::ParentNotFound {
                parent: parent.to_owned(),
            });
        }
        [base, vid] if !base.is_empty() => (*base, *vid),
        _ => {
            return Err(MacvlanError::BadVlanParent {
                parent: parent.to_owned(),
                reason: format!(
                    "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, \
                     instead received {parent}"
                ),
            });
        }
    };
    // Go's strconv.Atoi: an optional sign and decimal digits.
    let id: i64 = vid.parse().map_err(|_| MacvlanError::BadVlanParent {
        parent: parent.to_owned(),
        reason: format!("unable to parse a valid vlan id from: {vid} (ex. eth0.10 for vlan 10)"),
    })?;
    match u16::try_from(id) {
        Ok(id) if (1..=4094).contains(&id) => Ok((base.to_owned(), id)),
        _ => Err(MacvlanError::BadVlanParent {
            parent: parent.to_owned(),
            reason: format!("vlan id must be between 1-4094, received: {id}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawOptions {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn macvlan_options_parse_with_docker_defaults() {
        let o = MacvlanOptions::parse(&raw(&[])).unwrap();
        assert_eq!((o.parent, o.mode), (None, MacvlanMode::Bridge));
        let o = MacvlanOptions::parse(&raw(&[("parent", ""), ("macvlan_mode", "")])).unwrap();
        assert_eq!((o.parent, o.mode), (None, MacvlanMode::Bridge));
        for (text, mode) in [
            ("bridge", MacvlanMode::Bridge),
            ("private", MacvlanMode::Private),
            ("vepa", MacvlanMode::Vepa),
            ("passthru", MacvlanMode::Passthru),
        ] {
            let o = MacvlanOptions::parse(&raw(&[("parent", "eth0.10"), ("macvlan_mode", text)]))
                .unwrap();
            assert_eq!(o.mode, mode);
            assert_eq!(o.parent.as_deref(), Some("eth0.10"));
        }
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused_by_name() {
        let e = MacvlanOptions::parse(&raw(&[("macvlan_mode", "foo")])).unwrap_err();
        let text = e.to_string();
        assert!(matches!(&e, DriverError::InvalidOption { key, .. } if key == MACVLAN_MODE));
        assert!(
            text.contains("requested macvlan mode 'foo' is not valid, 'bridge' mode is the macvlan driver default"),
            "{text}"
        );
        let e = MacvlanOptions::parse(&raw(&[("parent", "lo")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("loopback interface is not a valid macvlan parent link"),
            "{e}"
        );
        let e = MacvlanOptions::parse(&raw(&[("parent", "a/b")])).unwrap_err();
        assert!(matches!(&e, DriverError::InvalidOption { key, .. } if key == PARENT));
        let e = MacvlanOptions::parse(&raw(&[("parent", "0123456789abcdef")])).unwrap_err();
        assert!(e.to_string().contains("15 bytes"), "{e}");
        let e = MacvlanOptions::parse(&raw(&[("ipvlan_mode", "l2")])).unwrap_err();
        assert!(matches!(&e, DriverError::UnknownOption { key, .. } if key == "ipvlan_mode"));

        let e = IpvlanOptions::parse(&raw(&[("ipvlan_mode", "l4")])).unwrap_err();
        assert!(
            e.to_string().contains(
                "requested ipvlan mode 'l4' is not valid, 'l2' mode is the ipvlan driver default"
            ),
            "{e}"
        );
        let e = IpvlanOptions::parse(&raw(&[("ipvlan_flag", "foo")])).unwrap_err();
        assert!(
            e.to_string().contains(
                "requested ipvlan flag 'foo' is not valid, 'bridge' is the ipvlan driver default"
            ),
            "{e}"
        );
        let e = IpvlanOptions::parse(&raw(&[("macvlan_mode", "vepa")])).unwrap_err();
        assert!(matches!(&e, DriverError::UnknownOption { key, .. } if key == "macvlan_mode"));
    }

    #[test]
    fn ipvlan_options_parse() {
        let o = IpvlanOptions::parse(&raw(&[])).unwrap();
        assert_eq!(
            (o.parent, o.mode, o.flag),
            (None, IpvlanMode::L2, IpvlanFlag::Bridge)
        );
        let o = IpvlanOptions::parse(&raw(&[
            ("parent", "eth1"),
            ("ipvlan_mode", "l3s"),
            ("ipvlan_flag", "vepa"),
        ]))
        .unwrap();
        assert_eq!(o.parent.as_deref(), Some("eth1"));
        assert_eq!((o.mode, o.flag), (IpvlanMode::L3s, IpvlanFlag::Vepa));
        let o = IpvlanOptions::parse(&raw(&[("ipvlan_mode", "l3"), ("ipvlan_flag", "private")]))
            .unwrap();
        assert_eq!((o.mode, o.flag), (IpvlanMode::L3, IpvlanFlag::Private));
    }

    #[test]
    fn vlan_parents_follow_dockers_rules() {
        assert_eq!(parse_vlan_parent("eth0.10").unwrap(), ("eth0".into(), 10));
        assert_eq!(
            parse_vlan_parent("eth0.4094").unwrap(),
            ("eth0".into(), 4094)
        );
        assert!(matches!(
            parse_vlan_parent("eth0"),
            Err(MacvlanError::ParentNotFound { .. })
        ));
        for (parent, text) in [
            (
                "eth0.5000",
                "vlan id must be between 1-4094, received: 5000",
            ),
            ("eth0.0", "vlan id must be between 1-4094, received: 0"),
            ("eth0.-3", "vlan id must be between 1-4094, received: -3"),
            (
                "eth0.x",
                "unable to parse a valid vlan id from: x (ex. eth0.10 for vlan 10)",
            ),
            (
                "a.b.c",
                "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received a.b.c",
            ),
            (
                ".10",
                "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received .10",
            ),
        ] {
            let e = parse_vlan_parent(parent).unwrap_err();
            assert!(e.to_string().contains(text), "{parent}: {e}");
        }
    }
}
