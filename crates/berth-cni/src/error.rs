//! The CNI error result: a well-known code, a short message and details, printed as the spec's
//! JSON object (`{"cniVersion", "code", "msg", "details"}`) with a non-zero exit.

use std::fmt;

use serde::Serialize;

/// The error codes of the CNI specification, and berth-cni's own (100 and up, which the spec
/// leaves to plugins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: the configuration's `cniVersion` is not one berth-cni speaks, or the command needs a
    /// later version (CHECK needs 0.4.0, GC and STATUS need 1.1.0).
    IncompatibleVersion,
    /// 2: a field berth-cni does not support (the message names it and its value).
    UnsupportedField,
    /// 3: the container is unknown (CHECK of an attachment berth-cni does not have).
    UnknownContainer,
    /// 4: a missing or invalid `CNI_*` environment variable (the message names it).
    InvalidEnvironment,
    /// 5: reading stdin or the state directory failed.
    Io,
    /// 6: the configuration on stdin is not JSON.
    Decode,
    /// 7: the configuration is JSON but invalid (the message names the key).
    InvalidConfig,
    /// 11: the state is busy (another invocation held its lock for longer than `lockTimeout`);
    /// the runtime may try again later.
    TryAgainLater,
    /// 50 (STATUS): the plugin cannot serve ADD (its state or firewall tools are unusable).
    NotAvailable,
    /// 51 (STATUS): not available, and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// 100: berth's library failed (a kernel, firewall, store or driver error).
    Library,
    /// 101: address management refused (pool exhausted, address in use or outside the subnet).
    Addressing,
    /// 102: the attachment exists already (an ADD without a DEL for the same container id and
    /// interface name), the container is on the network already (with another interface) or
    /// attached in another namespace, the container has an interface of the asked name, or a
    /// published host port is taken (or cannot be bound).
    Conflict,
    /// 103: CHECK found the attachment different from `prevResult` (the message says what).
    CheckFailed,
}

impl ErrorCode {
    /// The number in the JSON object.
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Library => 100,
            ErrorCode::Addressing => 101,
            ErrorCode::Conflict => 102,
            ErrorCode::CheckFailed => 103,
        }
    }
}

/// A failed invocation: what the runtime reads on stdout (and the plugin's exit status is not
/// zero). The message is short; the details say what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CniError {
    /// The well-known (or berth-cni's) code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// The long explanation (may be empty).
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {}: {}", self.code.number(), self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    /// An error with a code, a message and details.
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Code 7: the configuration is invalid; `msg` names the key.
    pub fn config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidConfig, msg, "")
    }

    /// Code 4: an environment variable is missing or invalid; `msg` names it.
    pub fn env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, msg, "")
    }

    /// Code 2: an unsupported field; `msg` names it and its value.
    pub fn unsupported(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::UnsupportedField, msg, "")
    }

    /// Code 100: berth's library failed while doing `what`.
    pub fn library(what: impl Into<String>, cause: &berth::Error) -> CniError {
        let code = match cause {
            berth::Error::InvalidRequest(_) | berth::Error::NetworkAmbiguous(_) => {
                ErrorCode::InvalidConfig
            }
            berth::Error::Ipam(_) | berth::Error::IpamDriver { .. } => ErrorCode::Addressing,
            berth::Error::SandboxExists { .. } | berth::Error::AlreadyConnected { .. } => {
                ErrorCode::Conflict
            }
            berth::Error::Store(berth::StoreError::Locked { .. }) => ErrorCode::TryAgainLater,
            berth::Error::Driver(d) => match d {
                berth::DriverError::PortMapping(_) => ErrorCode::Conflict,
                berth::DriverError::InvalidConfig(_)
                | berth::DriverError::InvalidOption { .. }
                | berth::DriverError::UnknownOption { .. } => ErrorCode::InvalidConfig,
                _ => ErrorCode::Library,
            },
            _ => ErrorCode::Library,
        };
        CniError::new(code, what, chain(cause))
    }

    /// The same error with another code (STATUS reports every failure as 50).
    #[must_use]
    pub fn with_code(mut self, code: ErrorCode) -> CniError {
        self.code = code;
        self
    }

    /// The JSON object the runtime reads, with `cni_version` (the configuration's, or the
    /// latest berth-cni speaks when the configuration could not be read).
    pub fn to_json(&self, cni_version: &str) -> String {
        let body = ErrorJson {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        };
        // Plain strings and a number: serialising cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// An error and its sources, joined with `: ` (each source once, as its message may already
/// include the next one).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_spec_keys_and_omits_empty_details() {
        let e = CniError::new(ErrorCode::InvalidConfig, "bad", "");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap_or_default();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bad");
        assert!(v.get("details").is_none());
        let e = CniError::new(ErrorCode::TryAgainLater, "busy", "held");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("0.4.0")).unwrap_or_default();
        assert_eq!(v["code"], 11);
        assert_eq!(v["details"], "held");
    }

    #[test]
    fn library_errors_map_to_codes() {
        let e = CniError::library("x", &berth::Error::InvalidRequest("no".into()));
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        let e = CniError::library(
            "x",
            &berth::Error::SandboxExists {
                name: "a".into(),
                id: "b".into(),
            },
        );
        assert_eq!(e.code, ErrorCode::Conflict);
        let e = CniError::library("x", &berth::Error::NetworkNotFound("n".into()));
        assert_eq!(e.code, ErrorCode::Library);
        assert_eq!(e.details, "network n not found");
        let e = CniError::library(
            "x",
            &berth::Error::Driver(berth::DriverError::PortMapping("taken".into())),
        );
        assert_eq!(e.code, ErrorCode::Conflict);
    }
}
