//! The embedded DNS responder end to end, with arbitrary packets: the bytes of one datagram (or
//! TCP message) go through exactly what the server does with it, for a sandbox on two networks
//! with shared names, IPv6 and forwarding. Never a panic; an answer is a well-formed response to
//! the query's id, never larger than the size rules allow (512 bytes over UDP without EDNS, the
//! EDNS size clamped to 4096, 65535 over TCP); oversized input gets nothing and every truncation
//! of a well-formed query gets FORMERR or nothing. Forwarded queries: the same bytes, read as an
//! upstream's answer, are relayed within the requester's limit.

#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use berth_dns::{
    Action, EndpointDns, MAX_QUERY_LEN, MAX_TCP_MESSAGE, MAX_UDP_PAYLOAD, MIN_UDP_PAYLOAD, Names,
    NetworkDns, SandboxHandle, Transport, Upstream, check_upstream, relay,
};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use libfuzzer_sys::fuzz_target;

fn handle() -> &'static SandboxHandle {
    static H: OnceLock<(Names, SandboxHandle)> = OnceLock::new();
    &H.get_or_init(|| {
        let names = Names::new();
        for (id, name) in [("n1", "net1"), ("n2", "my.net")] {
            names
                .add_network(&NetworkDns {
                    id: id.into(),
                    name: name.into(),
                    internal: false,
                    embedded_dns: true,
                })
                .unwrap();
        }
        for i in 0..40u8 {
            let id = format!("c{i}");
            names.add_sandbox(&id, &id, &[]).unwrap();
            names
                .connect(
                    &id,
                    if i % 2 == 0 { "n1" } else { "n2" },
                    &EndpointDns {
                        endpoint_id: id.clone(),
                        aliases: vec!["web".into(), format!("Alias{i}")],
                        ipv4: Some(Ipv4Addr::new(10, 0, 0, i + 2)),
                        ipv6: (i % 3 == 0).then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i) + 2)),
                        links: vec![],
                    },
                )
                .unwrap();
        }
        let h = names
            .add_sandbox("me", "me", &["192.0.2.53:53".parse().unwrap()])
            .unwrap();
        for net in ["n1", "n2"] {
            names
                .connect(
                    "me",
                    net,
                    &EndpointDns {
                        endpoint_id: format!("me-{net}"),
                        links: vec![("c3".into(), "db".into())],
                        ..EndpointDns::default()
                    },
                )
                .unwrap();
        }
        (names, h)
    })
    .1
}

fn check_answer(query: &[u8], out: &[u8], transport: Transport) {
    let limit = match transport {
        Transport::Tcp => MAX_TCP_MESSAGE,
        Transport::Udp => MAX_UDP_PAYLOAD,
    };
    assert!(out.len() <= limit, "answer of {} bytes over {limit}", out.len());
    // ARCOUNT 0: no EDNS, so the classic 512-byte limit over UDP
    if transport == Transport::Udp && query[10..12] == [0, 0] {
        assert!(out.len() <= MIN_UDP_PAYLOAD, "{} bytes without EDNS", out.len());
    }
    assert_eq!(out[..2], query[..2], "the answer carries the query's id");
    assert!(out[2] & 0x80 != 0, "QR set");
    let m = Message::from_vec(out).expect("berth's answers parse");
    assert_eq!(m.message_type(), MessageType::Response);
}

fn run(data: &[u8], transport: Transport) -> Action {
    let mut out = Vec::new();
    let action = handle().respond(data, transport, &mut out);
    match &action {
        Action::Reply => check_answer(data, &out, transport),
        Action::Drop => {}
        Action::Forward(info) => {
            let limit = info.limit();
            assert!(limit >= MIN_UDP_PAYLOAD && limit <= MAX_TCP_MESSAGE);
            // the fuzz input itself as an upstream's message
            let verdict = check_upstream(data, u16::from_be_bytes([data[0], data[1]]), info);
            let mut relayed = Vec::new();
            relay(data, info, &mut relayed);
            assert!(relayed.len() <= limit, "relayed {} > {limit}", relayed.len());
            assert_eq!(relayed[..2], info.id().to_be_bytes());
            if verdict != Upstream::Foreign && data.len() <= limit {
                assert_eq!(relayed[2..], data[2..], "a fitting answer is relayed unchanged");
            }
        }
    }
    if data.len() > MAX_QUERY_LEN {
        assert!(matches!(action, Action::Drop), "oversized input answered");
    }
    action
}

fuzz_target!(|data: &[u8]| {
    run(data, Transport::Udp);
    run(data, Transport::Tcp);
    // Every truncation of a well-formed query: FORMERR or nothing.
    if let Ok(m) = Message::from_vec(data) {
        if m.queries().len() == 1 && m.message_type() == MessageType::Query {
            if let Ok(bytes) = m.to_vec() {
                let cut = 12 + usize::from(data[0]) % bytes.len().saturating_sub(12).max(1);
                if cut < bytes.len() {
                    let mut out = Vec::new();
                    match handle().respond(&bytes[..cut], Transport::Udp, &mut out) {
                        Action::Drop => {}
                        Action::Reply => {
                            let r = Message::from_vec(&out).expect("FORMERR parses");
                            assert!(
                                matches!(r.response_code(), ResponseCode::FormErr | ResponseCode::NotImp),
                                "truncated query answered with {:?}",
                                r.response_code()
                            );
                        }
                        Action::Forward(_) => panic!("a truncated query was forwarded"),
                    }
                }
            }
        }
    }
});
