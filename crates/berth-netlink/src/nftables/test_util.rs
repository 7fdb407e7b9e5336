//! Helpers shared by the tests of the nf_tables submodules: hex literals and attribute headers as
//! `nft --debug=mnl` prints them.

use super::consts::NLA_F_NESTED;

pub(super) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An attribute header as `nft --debug=mnl` prints it: length, type (with the nested flag).
pub(super) fn nla(len: u16, kind: u16, nested: bool) -> Vec<u8> {
    let mut v = len.to_ne_bytes().to_vec();
    let k = if nested { kind | NLA_F_NESTED } else { kind };
    v.extend_from_slice(&k.to_ne_bytes());
    v
}
