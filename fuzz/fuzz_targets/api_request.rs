//! berth-cli's request decoding: any method, request target, Content-Type and body must come back
//! as a request or an `ApiError` with a 4xx status and a JSON error body, never a panic.
//!
//! Input layout (so that seeds are readable): `METHOD TARGET\nC\nBODY`, where `C` is `J` for
//! `Content-Type: application/json`, `-` for none, anything else for `text/plain`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
    let (ct, body) = match rest.split_first() {
        Some((b'J', body)) => (Some("application/json"), body.strip_prefix(b"\n").unwrap_or(body)),
        Some((b'-', body)) => (None, body.strip_prefix(b"\n").unwrap_or(body)),
        Some((_, body)) => (Some("text/plain"), body),
        None => (None, &[][..]),
    };
    match berth_cli::api::decode(method, target, ct, body) {
        Ok(_) => {}
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e:?}");
            let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("a JSON error body");
            assert!(v["message"].is_string());
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = berth_cli::api::Filters::parse(text);
        let _ = berth_cli::api::parse_rfc3339_nanos(text);
    }
});
