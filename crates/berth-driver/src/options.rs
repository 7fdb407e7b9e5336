//! Parsing Docker's string options (`-o com.docker.network.bridge.enable_icc=false`) into typed
//! structs, once, at the boundary (DESIGN invariant 6).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::error::{DriverError, Result};

/// Options as they arrive from a user or the Docker API: key to string value.
pub type RawOptions = BTreeMap<String, String>;

/// Reads typed values out of [`RawOptions`], remembering which keys were used, so that
/// [`OptionReader::finish`] can refuse every key nobody asked for.
#[derive(Debug)]
pub struct OptionReader<'a> {
    driver: &'static str,
    raw: &'a RawOptions,
    known: BTreeSet<&'static str>,
}

impl<'a> OptionReader<'a> {
    /// Starts reading `raw` for `driver`.
    pub fn new(driver: &'static str, raw: &'a RawOptions) -> Self {
        OptionReader {
            driver,
            raw,
            known: BTreeSet::new(),
        }
    }

    /// Declares `key` as known and returns its raw value, if given.
    pub fn string(&mut self, key: &'static str) -> Option<&'a str> {
        self.known.insert(key);
        self.raw.get(key).map(String::as_str)
    }

    /// A boolean, accepting Go's `strconv.ParseBool` spellings as Docker does
    /// (`1 t T TRUE true True 0 f F FALSE false False`).
    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| DriverError::InvalidOption {
                    key: key.to_owned(),
                    value: v.to_owned(),
                    reason: "expected a boolean (true or false)".into(),
                }),
        }
    }

    /// A value parsed with [`FromStr`]; `what` describes the expected form for the error.
    pub fn parse<T: FromStr>(&mut self, key: &'static str, what: &str) -> Result<Option<T>> {
        match self.string(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| DriverError::InvalidOption {
                    key: key.to_owned(),
                    value: v.to_owned(),
                    reason: format!("expected {what}"),
                }),
        }
    }

    /// Fails on the first key that no read asked for, naming it and the known keys.
    pub fn finish(self) -> Result<()> {
        match self.raw.keys().find(|k| !self.known.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => Err(DriverError::UnknownOption {
                key: k.clone(),
                driver: self.driver,
                known: self.known.iter().copied().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Parses `raw` with `parse`, leaving out each key it refuses as unknown
/// ([`DriverError::UnknownOption`]) unless `strict`, as Docker's drivers ignore options they do
/// not know (a vendor key, an option of a later Docker). Returns the parsed options and the keys
/// left out, in the order they were found; any other error is returned as it is.
pub fn parse_known<T>(
    raw: &RawOptions,
    strict: bool,
    parse: impl Fn(&RawOptions) -> Result<T>,
) -> Result<(T, Vec<String>)> {
    let mut known = raw.clone();
    let mut unknown = Vec::new();
    loop {
        match parse(&known) {
            Ok(parsed) => return Ok((parsed, unknown)),
            Err(DriverError::UnknownOption { key, .. })
                if !strict && known.remove(&key).is_some() =>
            {
                unknown.push(key);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawOptions {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn typed_reads_and_unknown_keys() {
        let r = raw(&[("a", "true"), ("n", "1500"), ("s", "x")]);
        let mut rd = OptionReader::new("test", &r);
        assert_eq!(rd.bool("a").unwrap(), Some(true));
        assert_eq!(rd.parse::<u32>("n", "a number").unwrap(), Some(1500));
        assert_eq!(rd.bool("missing").unwrap(), None);
        let err = rd.finish().unwrap_err();
        assert!(matches!(&err, DriverError::UnknownOption { key, .. } if key == "s"));
        assert!(
            err.to_string().contains("known options: a, missing, n"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let r = raw(&[("a", "yes"), ("n", "big")]);
        let mut rd = OptionReader::new("test", &r);
        let e = rd.bool("a").unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("\"yes\""), "{e}");
        let e = rd.parse::<u16>("n", "an MTU").unwrap_err().to_string();
        assert!(e.contains("expected an MTU"), "{e}");
    }

    #[test]
    fn unknown_keys_are_left_out_unless_strict() {
        let parse = |r: &RawOptions| {
            let mut rd = OptionReader::new("test", r);
            let a = rd.bool("a")?;
            rd.finish().map(|()| a)
        };
        let r = raw(&[("a", "true"), ("x", "1"), ("y", "2")]);
        let (a, unknown) = parse_known(&r, false, parse).unwrap();
        assert_eq!(
            (a, unknown),
            (Some(true), vec!["x".to_owned(), "y".to_owned()])
        );
        let e = parse_known(&r, true, parse).unwrap_err();
        assert!(matches!(&e, DriverError::UnknownOption { key, .. } if key == "x"));
        // A bad value of a known key is an error either way.
        let r = raw(&[("a", "maybe"), ("x", "1")]);
        assert!(
            parse_known(&r, false, parse)
                .unwrap_err()
                .to_string()
                .contains("maybe")
        );
    }

    #[test]
    fn go_bool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["", "yes", "tRuE", " true"] {
            assert_eq!(parse_bool(bad), None);
        }
    }
}
