//! Output formatting shared by the client verbs: the docker CLI's table layout (Go's tabwriter with
//! minimum width 10 and padding 3), `--format` handling, natural sort, Go's time and JSON layouts.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::Result;
use crate::template::{Methods, Template, go_json};

/// Lays out tab-separated lines like Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`: each column
/// is as wide as its widest cell plus 3, at least 10; the last cell of a line is not padded.
pub(crate) fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for cells in &lines {
        let n = cells.len();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count());
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// `sortorder.NaturalLess`: digit runs compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let xn = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let yn = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let xs = trim_zeros(&x[..xn]);
                let ys = trim_zeros(&y[..yn]);
                let o = xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[xn..];
                y = &y[yn..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n.min(s.len().saturating_sub(1))..]
}

/// Go's `time.Time.String()` of an RFC 3339 UTC time: `2026-11-27 20:57:38.83422576 +0000 UTC`.
pub(crate) fn go_time(rfc3339: &str) -> String {
    let Some(t) = rfc3339.strip_suffix('Z') else {
        return rfc3339.to_owned();
    };
    let Some((date, time)) = t.split_once('T') else {
        return rfc3339.to_owned();
    };
    let time = match time.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_owned()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => time.to_owned(),
    };
    format!("{date} {time} +0000 UTC")
}

/// Re-indents raw JSON text with 4 spaces, keeping its key order (Go's `json.Indent`), and
/// escapes `<`, `>` and `&` as Go does. The input must be valid JSON (as the daemon sends it).
pub(crate) fn reindent(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            out.push('\\');
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            out.push('"');
                            break;
                        }
                        '<' => out.push_str("\\u003c"),
                        '>' => out.push_str("\\u003e"),
                        '&' => out.push_str("\\u0026"),
                        c => out.push(c),
                    }
                }
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Renders list rows with a `--format` value the way the docker CLI does: `table ...` lays out a
/// header row (the template run on `headers`) and the rows with [`tabwrite`]; `json` prints each
/// row as JSON; anything else is a template printed once per row. `\t` and `\n` written literally
/// in the format become tabs and newlines.
pub(crate) fn render_rows(
    format: &str,
    headers: &Value,
    rows: &[(Value, Methods<'_>)],
    header_methods: &Methods<'_>,
) -> Result<String> {
    let format = format.replace("\\t", "\t").replace("\\n", "\n");
    if format == "json" {
        let mut out = String::new();
        for (row, _) in rows {
            out.push_str(&go_json(row));
            out.push('\n');
        }
        return Ok(out);
    }
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start().to_owned()),
        None => (false, format),
    };
    let t = Template::parse(&body)?;
    let mut out = String::new();
    if table {
        out.push_str(&t.render_with(headers, header_methods)?);
        out.push('\n');
    }
    for (row, methods) in rows {
        out.push_str(&t.render_with(row, methods)?);
        out.push('\n');
    }
    Ok(if table { tabwrite(&out) } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_matches_docker() {
        let text = "NETWORK ID\tNAME\tDRIVER\tSCOPE\n222542f54748\tbridge\tbridge\tlocal\n";
        assert_eq!(
            tabwrite(text),
            "NETWORK ID     NAME      DRIVER    SCOPE\n222542f54748   bridge    bridge    local\n"
        );
        assert_eq!(
            tabwrite("NAME\tDRIVER\nprobe_nw\tbridge\n"),
            "NAME       DRIVER\nprobe_nw   bridge\n"
        );
    }

    #[test]
    fn natural_order_and_time() {
        let mut v = vec!["n10", "n2", "bridge", "n1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["bridge", "n1", "n2", "n10"]);
        assert_eq!(
            go_time("2026-11-27T20:57:38.834225760Z"),
            "2026-11-27 20:57:38.83422576 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-11-27T20:57:38.000000000Z"),
            "2026-11-27 20:57:38 +0000 UTC"
        );
    }

    #[test]
    fn reindent_keeps_order_like_go() {
        let raw = r#"[{"Name":"n","Id":"x","Containers":{},"L":[],"IPAM":{"Config":[{"Subnet":"10.0.0.0/24"}]},"S":"a<b \\\" ,:{"}]"#;
        let want = "[\n    {\n        \"Name\": \"n\",\n        \"Id\": \"x\",\n        \"Containers\": {},\n        \"L\": [],\n        \"IPAM\": {\n            \"Config\": [\n                {\n                    \"Subnet\": \"10.0.0.0/24\"\n                }\n            ]\n        },\n        \"S\": \"a\\u003cb \\\\\\\" ,:{\"\n    }\n]";
        assert_eq!(reindent(raw), want);
        assert_eq!(reindent("[]"), "[]");
    }
}
