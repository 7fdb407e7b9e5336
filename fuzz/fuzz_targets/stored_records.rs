//! The controller's stored records (`network/`, `sandbox/`, `endpoint/`, `meta/` values): any bytes
//! under any of those keys decode to a record or to an error (which start-up quarantines), never a
//! panic, and a record that decodes survives an encode/decode round trip unchanged.
//!
//! Input layout: the first byte picks the key's prefix, the rest is the stored value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, value)) = data.split_first() else {
        return;
    };
    let key = match kind % 4 {
        0 => "network/x",
        1 => "sandbox/x",
        2 => "endpoint/x",
        _ => "meta/forwarding",
    };
    let _ = berth::check_stored_record(key, value);
});
