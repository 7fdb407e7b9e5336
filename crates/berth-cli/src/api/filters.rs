//! Docker's `filters` query parameter: parsing, the validated filters of `GET /networks` and
//! `POST /networks/prune`, and the matching of networks against them (names, labels, `until`
//! times).

use std::collections::{BTreeMap, BTreeSet};

use berth::NetworkInspect;
use serde::Deserialize;

use super::error::ApiError;

/// Docker's `filters` query parameter: key to the set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Parses the JSON of a `filters` parameter: `{"key":{"value":true}}` or the older
    /// `{"key":["value"]}`. An empty string is no filter.
    ///
    /// # Errors
    /// 400 when the text is not one of these shapes.
    pub fn parse(text: &str) -> Result<Filters, ApiError> {
        if text.trim().is_empty() {
            return Ok(Filters::default());
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Values {
            Map(BTreeMap<String, bool>),
            List(Vec<String>),
        }
        let raw: BTreeMap<String, Values> = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid filters parameter {text:?}: {e}; expected JSON such as {{\"name\":{{\"my_net\":true}}}}"
            ))
        })?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let set: BTreeSet<String> = match v {
                Values::Map(m) => m
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(k, _)| k)
                    .collect(),
                Values::List(l) => l.into_iter().collect(),
            };
            out.insert(k, set);
        }
        Ok(Filters(out))
    }

    /// Refuses keys outside `accepted` with Docker's message.
    fn validate(&self, accepted: &[&str]) -> Result<(), ApiError> {
        for k in self.0.keys() {
            if !accepted.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&BTreeSet<String>> {
        self.0.get(key).filter(|s| !s.is_empty())
    }

    /// The JSON text of these filters (`{"key":{"value":true}}`), as clients send it.
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// Validated filters of `GET /networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFilters(Filters);

const NETWORK_FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

impl NetworkFilters {
    /// Validates parsed filters (keys, `type` and `dangling` values).
    ///
    /// # Errors
    /// 400 with Docker's messages (`Invalid filter 'x'`, `invalid filter: 'type'='x'`).
    pub fn new(f: Filters) -> Result<NetworkFilters, ApiError> {
        f.validate(NETWORK_FILTERS)?;
        if let Some(types) = f.get("type") {
            for t in types {
                if t != "custom" && t != "builtin" {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter: 'type'='{t}' (use custom or builtin)"
                    )));
                }
            }
        }
        if let Some(d) = f.get("dangling") {
            for v in d {
                parse_bool_filter("dangling", v)?;
            }
            if d.len() > 1 {
                return Err(ApiError::bad_request(
                    "filter 'dangling' takes one value, true or false",
                ));
            }
        }
        Ok(NetworkFilters(f))
    }

    /// The networks these filters keep, in the given order.
    pub fn apply(&self, nets: Vec<NetworkInspect>) -> Vec<NetworkInspect> {
        let f = &self.0;
        nets.into_iter()
            .filter(|n| {
                f.get("driver").is_none_or(|s| s.contains(&n.driver))
                    && f.get("name").is_none_or(|s| any_match(s, &n.name))
                    && f.get("id").is_none_or(|s| any_match(s, &n.id))
                    && f.get("label").is_none_or(|s| labels_match(s, &n.labels))
                    && f.get("scope").is_none_or(|s| s.contains(&n.scope))
                    && f.get("type").is_none_or(|s| {
                        let builtin = berth::PREDEFINED_NETWORKS.contains(&n.name.as_str());
                        (builtin && s.contains("builtin")) || (!builtin && s.contains("custom"))
                    })
                    && f.get("dangling").is_none_or(|s| {
                        let want = s
                            .iter()
                            .next()
                            .and_then(|v| parse_bool_filter("dangling", v).ok())
                            .unwrap_or(true);
                        let predefined = berth::PREDEFINED_NETWORKS.contains(&n.name.as_str());
                        let dangling = !predefined && n.containers.is_empty();
                        dangling == want
                    })
            })
            .collect()
    }
}

fn parse_bool_filter(key: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "Invalid filter '{key}={v}': use true or false"
        ))),
    }
}

/// Docker's `Match`: an exact match, or an (unanchored) regular expression match. A value that is
/// not a valid expression only matches exactly.
fn any_match(values: &BTreeSet<String>, source: &str) -> bool {
    values.iter().any(|v| {
        v == source
            || regex::RegexBuilder::new(v)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .build()
                .is_ok_and(|re| re.is_match(source))
    })
}

/// Docker's `MatchKVList`: every `key` or `key=value` must be present.
fn labels_match(values: &BTreeSet<String>, labels: &BTreeMap<String, String>) -> bool {
    values.iter().all(|v| match v.split_once('=') {
        Some((k, want)) => labels.get(k).is_some_and(|have| have == want),
        None => labels.contains_key(v.as_str()),
    })
}

/// Validated filters of `POST /networks/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// `until`: prune only networks created before this time (Unix nanoseconds).
    pub until_nanos: Option<i128>,
    /// `label`: `key` or `key=value` that must match.
    pub labels: BTreeSet<String>,
    /// `label!`: `key` or `key=value` that must not match.
    pub not_labels: BTreeSet<String>,
}

impl PruneFilters {
    /// Validates parsed filters.
    ///
    /// # Errors
    /// 400 for unknown keys and unreadable `until` values.
    pub fn new(f: Filters, now_nanos: i128) -> Result<PruneFilters, ApiError> {
        f.validate(&["until", "label", "label!"])?;
        let until_nanos = match f.get("until") {
            None => None,
            Some(values) => {
                if values.len() > 1 {
                    return Err(ApiError::bad_request(
                        "filter 'until' takes one value (a timestamp or a duration such as 24h)",
                    ));
                }
                let v = values.iter().next().map(String::as_str).unwrap_or("");
                Some(parse_until(v, now_nanos).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid filter 'until={v}': expected a Unix timestamp, an RFC 3339 date or time, or a duration such as 24h or 90m"
                    ))
                })?)
            }
        };
        Ok(PruneFilters {
            until_nanos,
            labels: f.get("label").cloned().unwrap_or_default(),
            not_labels: f.get("label!").cloned().unwrap_or_default(),
        })
    }

    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.until_nanos.is_none() && self.labels.is_empty() && self.not_labels.is_empty()
    }

    /// Whether a network may be pruned under these filters.
    pub fn keeps(&self, net: &NetworkInspect) -> bool {
        let created_ok = self.until_nanos.is_none_or(|until| {
            parse_rfc3339_nanos(&net.created).is_some_and(|created| created < until)
        });
        let labels_ok = self.labels.is_empty() || labels_match(&self.labels, &net.labels);
        let not_ok = self.not_labels.is_empty()
            || !self.not_labels.iter().any(|l| {
                let one: BTreeSet<String> = [l.clone()].into_iter().collect();
                labels_match(&one, &net.labels)
            });
        created_ok && labels_ok && not_ok
    }
}

/// A Go duration (`24h`, `1h30m`, `90s`, `500ms`) in nanoseconds.
fn parse_duration_nanos(s: &str) -> Option<i128> {
    if s.is_empty() {
        return None;
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
        any = true;
    }
    if !any || !total.is_finite() || total > 1e30 {
        return None;
    }
    let t = total as i128;
    Some(if neg { -t } else { t })
}

/// Docker's `until`: a duration before now, a Unix timestamp (`1700000000.5`), or an RFC 3339
/// date or time.
fn parse_until(v: &str, now_nanos: i128) -> Option<i128> {
    if let Some(d) = parse_duration_nanos(v) {
        return Some(now_nanos - d);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
        if secs.is_empty() || secs.len() > 12 || frac.len() > 9 {
            return None;
        }
        let s: i128 = secs.parse().ok()?;
        let f: i128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return Some(s * 1_000_000_000 + f);
    }
    parse_rfc3339_nanos(v)
}

/// Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2006-01-02`, `2006-01-02T15:04:05`, with optional fraction and `Z` or `±hh:mm`, to Unix
/// nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32) as i128;
    let mut secs: i128 = days * 86_400;
    let mut nanos: i128 = 0;
    let mut i;
    if b.len() > 10 {
        if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
            return None;
        }
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return None;
        }
        let (h, mi, se) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += (h * 3600 + mi * 60 + se) as i128;
        i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let frac = s.get(start..j)?;
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            nanos = format!("{frac:0<9}").parse().ok()?;
            i = j;
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
                let off = (oh * 3600 + om * 60) as i128;
                if *sign == b'+' {
                    secs -= off;
                } else {
                    secs += off;
                }
            }
            _ => return None,
        }
    }
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::decode;

    #[test]
    fn filters() {
        let f = Filters::parse(r#"{"name":{"probe":true}}"#).unwrap();
        assert!(f.0["name"].contains("probe"));
        let f = Filters::parse(r#"{"name":["a","b"]}"#).unwrap();
        assert_eq!(f.0["name"].len(), 2);
        assert!(Filters::parse("notjson").is_err());
        let e = decode(
            "GET",
            "/networks?filters=%7B%22foo%22%3A%5B%22x%22%5D%7D",
            None,
            b"",
        )
        .unwrap_err();
        assert_eq!(e.message, "Invalid filter 'foo'");
        assert!(
            decode(
                "GET",
                "/networks?filters=%7B%22type%22%3A%5B%22bogus%22%5D%7D",
                None,
                b""
            )
            .is_err()
        );
        assert!(any_match(&["^pro".to_owned()].into(), "probe"));
        assert!(!any_match(&["(".to_owned()].into(), "probe"));
        assert!(labels_match(
            &["a=b".to_owned(), "c".to_owned()].into(),
            &[
                ("a".to_owned(), "b".to_owned()),
                ("c".to_owned(), String::new())
            ]
            .into()
        ));
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_rfc3339_nanos("1970-01-02"), Some(86_400_000_000_000));
        assert_eq!(parse_rfc3339_nanos("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("2026-11-27T20:30:05.148841347Z"),
            Some(1_795_811_405_148_841_347)
        );
        assert_eq!(parse_duration_nanos("1h30m"), Some(5400 * 1_000_000_000));
        assert_eq!(parse_until("10", 0), Some(10_000_000_000));
        assert_eq!(parse_until("24h", 86_400_000_000_000), Some(0));
        assert!(parse_until("soon", 0).is_none());
    }
}
