//! berth-cli's `--format` templates: any template text parses or fails cleanly, and rendering it
//! over an inspect-shaped value finishes without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = berth_cli::template::Template::parse(text) else {
        return;
    };
    let value = serde_json::json!({
        "Name": "isolated_nw",
        "Id": "3a3a3a3a3a3a",
        "Labels": {"a": "1", "b": ""},
        "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}], "Options": null},
        "Containers": {"c1": {"Name": "web", "IPv4Address": "172.18.0.2/16"}},
        "Num": 1500,
        "Flag": true,
        "List": [1, 2.5, "x", null, [], {}]
    });
    let _ = t.render(&value);
});
