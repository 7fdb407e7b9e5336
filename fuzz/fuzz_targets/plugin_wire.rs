//! What a remote plugin sends back to berth (`berth_plugin`): any bytes as an HTTP answer (read
//! as the client reads a connection's bytes, before and at its end), and any bytes as the body
//! of every answer of the protocol (the handshake, the network driver's and the IPAM driver's
//! answers, the error reply), decoded with dockerd's Go rules and then read by the typed
//! readers (`parse`). Never a panic; an answer that decodes encodes to JSON that decodes to
//! the same answer. Any string is a plugin address (`unix://`, `tcp://`) or not; one that
//! parses prints as an address that parses to the same.
//!
//! Input layout: the whole input is the HTTP answer, the body, and (as lossy UTF-8) the
//! address.
#![no_main]

use berth_plugin::wire::{self, Answer};
use berth_plugin::{Address, fuzz_http_reply};
use libfuzzer_sys::fuzz_target;

/// Decodes `$body` as `$t`; a decoded answer survives a round trip through berth's encoding.
macro_rules! decoded {
    ($t:ty, $body:expr) => {{
        let answer: Option<$t> = wire::decode($body).ok();
        if let Some(answer) = &answer {
            let _ = answer.error_message();
            let bytes = serde_json::to_vec(answer).expect("an answer encodes");
            let again: $t = wire::decode(&bytes).expect("an encoded answer decodes");
            assert_eq!(&again, answer, "{}", String::from_utf8_lossy(&bytes));
        }
        answer
    }};
}

fn answers(body: &[u8]) {
    let _ = wire::error_reply_message(body);
    decoded!(wire::ActivateResponse, body);
    decoded!(wire::ErrorReply, body);
    if let Some(a) = decoded!(wire::GetCapabilitiesResponse, body) {
        let _ = a.parse();
    }
    decoded!(wire::AllocateNetworkResponse, body);
    if let Some(a) = decoded!(wire::CreateEndpointResponse, body) {
        let _ = a.parse();
    }
    if let Some(a) = decoded!(wire::EndpointInfoResponse, body) {
        let _ = a.strings();
    }
    if let Some(a) = decoded!(wire::JoinResponse, body) {
        let _ = a.parse();
    }
    decoded!(wire::IpamCapabilitiesResponse, body);
    decoded!(wire::AddressSpacesResponse, body);
    if let Some(a) = decoded!(wire::RequestPoolResponse, body) {
        let _ = a.parse(false);
        let _ = a.parse(true);
    }
    if let Some(a) = decoded!(wire::RequestAddressResponse, body) {
        for pool in ["10.0.0.0/8", "0.0.0.0/0", "fd00::/8"] {
            let _ = a.parse(pool.parse().expect("a literal subnet"));
        }
    }
    decoded!(wire::IpamAck, body);
}

fuzz_target!(|data: &[u8]| {
    for eof in [false, true] {
        if let Ok(Some((status, body))) = fuzz_http_reply(data, eof) {
            assert!(status < 1000, "{status}");
            answers(&body);
        }
    }
    answers(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(address) = Address::parse(&text) {
        let shown = address.to_string();
        assert_eq!(
            Address::parse(&shown).as_ref(),
            Ok(&address),
            "{text:?} shows as {shown:?}"
        );
    }
});
