//! Values and functions: printing JSON values as Go does, key lookup, truthiness, comparison,
//! and the builtin functions (`json`, `index`, `len`, `printf`, `eq`, ...).

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

pub(super) fn has_key(v: &Value, key: &str) -> bool {
    matches!(v, Value::Object(m) if lookup(m, key).is_some())
}

/// Exact key first; then a case-insensitive match (`.ID` finds `Id`, as the Docker CLI's typed
/// structs allow both spellings).
pub(super) fn lookup<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Go's `fmt.Sprint` of a decoded JSON value.
pub fn print_value(v: &Value) -> String {
    let mut s = String::new();
    print_into(&mut s, v, true);
    s
}

fn print_into(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::Null => out.push_str(if top { "<no value>" } else { "<nil>" }),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_into(out, x, false);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_into(out, x, false);
            }
            out.push(']');
        }
    }
}

fn format_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() >= 1e21 {
            format!("{f:e}")
        } else {
            format!("{f:.0}")
        }
    } else {
        f.to_string()
    }
}

/// JSON as Go's encoder writes it: compact, with `<`, `>` and `&` escaped.
pub fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn as_str<'v>(v: &'v Value, what: &str) -> Result<&'v str, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("{what} wants a string, got {}", type_name(other))),
    }
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("{what} wants an integer")),
        other => Err(format!("{what} wants an integer, got {}", type_name(other))),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y)
                .ok_or_else(|| "incomparable numbers".to_owned())
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Null, Value::Null) => Ok(std::cmp::Ordering::Equal),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            type_name(a),
            type_name(b)
        )),
    }
}

fn want(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        let prev_str = i > 0 && matches!(args[i - 1], Value::String(_));
        if i > 0 && !is_str && !prev_str {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = it.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        match verb {
            'q' => out.push_str(&serde_json::to_string(&print_value(arg)).unwrap_or_default()),
            'd' => match arg {
                Value::Number(n) => out.push_str(&format_number(n)),
                other => {
                    let _ = write!(out, "%!d({})", print_value(other));
                }
            },
            _ => out.push_str(&print_value(arg)),
        }
    }
    let extra: Vec<String> = it.map(print_value).collect();
    if !extra.is_empty() {
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

pub(super) fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    Ok(match name {
        "json" => {
            want(args, 1, name)?;
            Value::String(go_json(&args[0]))
        }
        "len" => {
            want(args, 1, name)?;
            Value::from(match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => 0,
                other => return Err(format!("len of type {}", type_name(other))),
            })
        }
        "index" => {
            let Some((base, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut cur = base.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Object(m), Value::String(key)) => {
                        m.get(key).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(_)) => {
                        let i = as_int(k, "index")?;
                        let idx = usize::try_from(i)
                            .ok()
                            .filter(|&i| i < a.len())
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })?;
                        a[idx].clone()
                    }
                    (Value::Null, _) => Value::Null,
                    (base, key) => {
                        return Err(format!(
                            "error calling index: cannot index {} with {}",
                            type_name(base),
                            type_name(key)
                        ));
                    }
                };
            }
            cur
        }
        "join" => {
            want(args, 2, name)?;
            let sep = as_str(&args[1], "join")?;
            let parts: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(print_value).collect(),
                Value::Null => Vec::new(),
                other => return Err(format!("join wants a list, got {}", type_name(other))),
            };
            Value::String(parts.join(sep))
        }
        "split" => {
            want(args, 2, name)?;
            let s = as_str(&args[0], "split")?;
            let sep = as_str(&args[1], "split")?;
            if sep.is_empty() {
                Value::Array(s.chars().map(|c| Value::String(c.to_string())).collect())
            } else {
                Value::Array(s.split(sep).map(|p| Value::String(p.to_owned())).collect())
            }
        }
        "upper" => {
            want(args, 1, name)?;
            Value::String(print_value(&args[0]).to_uppercase())
        }
        "lower" => {
            want(args, 1, name)?;
            Value::String(print_value(&args[0]).to_lowercase())
        }
        "title" => {
            want(args, 1, name)?;
            let s = print_value(&args[0]);
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Value::String(out)
        }
        "pad" => {
            want(args, 3, name)?;
            let l = usize::try_from(as_int(&args[1], "pad")?)
                .unwrap_or(0)
                .min(4096);
            let r = usize::try_from(as_int(&args[2], "pad")?)
                .unwrap_or(0)
                .min(4096);
            Value::String(format!(
                "{}{}{}",
                " ".repeat(l),
                print_value(&args[0]),
                " ".repeat(r)
            ))
        }
        "truncate" => {
            want(args, 2, name)?;
            let s = print_value(&args[0]);
            let n = usize::try_from(as_int(&args[1], "truncate")?).unwrap_or(0);
            Value::String(s.chars().take(n).collect())
        }
        "print" => Value::String(sprint(args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(print_value).collect();
            Value::String(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Value::String(sprintf(as_str(f, "printf")?, rest))
        }
        "eq" => {
            let Some((a, rest)) = args.split_first() else {
                return Err("missing argument for comparison".into());
            };
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for b in rest {
                if compare(a, b)? == std::cmp::Ordering::Equal {
                    any = true;
                }
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(args, 2, name)?;
            let o = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "not" => {
            want(args, 1, name)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => {
            let Some(first) = args.first() else {
                return Err("wrong number of args for and: want at least 1 got 0".into());
            };
            match args.iter().find(|a| !truthy(a)) {
                Some(a) => a.clone(),
                None => args.last().unwrap_or(first).clone(),
            }
        }
        "or" => {
            let Some(first) = args.first() else {
                return Err("wrong number of args for or: want at least 1 got 0".into());
            };
            match args.iter().find(|a| truthy(a)) {
                Some(a) => a.clone(),
                None => args.last().unwrap_or(first).clone(),
            }
        }
        other => return Err(format!("function \"{other}\" not defined")),
    })
}
