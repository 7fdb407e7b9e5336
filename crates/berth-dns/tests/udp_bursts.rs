//! Kernel tests of the UDP answer path under bursts: answers to one client socket are coalesced
//! into segmented (UDP GSO) datagrams, which the kernel must cut back into one correct datagram
//! per answer, each rewritten to come from 127.0.0.11:53 by the redirect (stateless, or Docker's
//! conntrack DNAT). Run as root;
//! every namespace is a throwaway one, deleted also on panic.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use berth_dns::{EndpointDns, ResolverConfig};
use common::{Mode, World};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// Names `n0` .. `n<NAMES-1>`: three lengths of answers (n7, n42, n123).
const NAMES: u32 = 200;
/// Queries per client socket, sent without waiting for answers.
const PER_SOCKET: u32 = 600;

fn addr_of(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a58_0000 + i + 2)
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id).set_recursion_desired(true);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Packets counted by the `answers` counter of table `ip bursts-count` in the sandbox.
fn counted_packets(sb: &berth_testhost::TestHost) -> u64 {
    let out = sb
        .run("nft", &["list", "counter", "ip", "bursts-count", "answers"])
        .unwrap();
    let packets = out
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .unwrap_or_else(|| panic!("no packet count in {out}"));
    packets.parse().unwrap()
}

/// Sends bursts of queries from three client sockets in one sandbox and checks every answer;
/// returns (answers, packets of answers counted on the postrouting hook, after any NAT).
fn bursts(config: ResolverConfig) -> (u64, u64) {
    let mut w = World::with_config(Mode::Answer, config);
    w.network("net1", 1, false, true);
    for i in 0..NAMES {
        let id = format!("n{i}");
        w.resolver.names().add_sandbox(&id, &id, &[]).unwrap();
        w.resolver
            .names()
            .connect(
                &id,
                "net-net1",
                &EndpointDns {
                    endpoint_id: id.clone(),
                    ipv4: Some(addr_of(i)),
                    ..EndpointDns::default()
                },
            )
            .unwrap();
    }
    let a = w.sandbox("alpha", &[]);
    w.connect(a, "net1", 2, &[]);
    let sb = &w.sb(a).ns;
    // Counts the answers' packets on the postrouting hook, after the redirect's rewrite (nftables
    // at raw priority, or conntrack's reverse NAT at srcnat): a segmented datagram is one packet
    // there, however many answers it carries.
    sb.run(
        "sh",
        &[
            "-c",
            "nft -f - <<'EOF'\n\
             table ip bursts-count {\n\
               counter answers { }\n\
               chain output {\n\
                 type filter hook postrouting priority srcnat + 10; policy accept;\n\
                 ip saddr 127.0.0.11 udp sport 53 counter name \"answers\"\n\
               }\n\
             }\n\
             EOF",
        ],
    )
    .unwrap();

    // Two connected sockets (they accept datagrams from 127.0.0.11:53 only) and one unconnected
    // one (which checks the source of each answer), queries interleaved.
    let target: SocketAddr = "127.0.0.11:53".parse().unwrap();
    let socks: Vec<UdpSocket> = (0..3)
        .map(|k| {
            let s = sb
                .netns()
                .run(|| UdpSocket::bind("127.0.0.1:0").unwrap())
                .unwrap();
            if k < 2 {
                s.connect(target).unwrap();
            }
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            common::big_receive_buffer(&s);
            s
        })
        .collect();
    for q in 0..PER_SOCKET {
        for (k, s) in socks.iter().enumerate() {
            let id = u16::try_from(q).unwrap();
            let name = format!("n{}", (q + k as u32 * 7) % NAMES);
            if k < 2 {
                s.send(&query(&name, id)).unwrap();
            } else {
                s.send_to(&query(&name, id), target).unwrap();
            }
        }
    }

    let mut answers = 0u64;
    for (k, s) in socks.iter().enumerate() {
        let mut seen: BTreeMap<u16, Ipv4Addr> = BTreeMap::new();
        let mut buf = [0u8; 1024];
        while seen.len() < PER_SOCKET as usize {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                break;
            };
            assert_eq!(from, target, "socket {k}: an answer from {from}");
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(m.response_code(), ResponseCode::NoError);
            let [rr] = m.answers() else {
                panic!("socket {k}: not one answer: {m:?}");
            };
            let RData::A(a) = rr.data() else {
                panic!("socket {k}: not an A record: {m:?}");
            };
            let expect = format!("n{}.", (u32::from(m.id()) + k as u32 * 7) % NAMES);
            assert_eq!(m.queries()[0].name().to_ascii(), expect);
            assert_eq!(
                rr.name().to_ascii(),
                expect,
                "socket {k}: answer for id {}",
                m.id()
            );
            let i: u32 = expect[1..expect.len() - 1].parse().unwrap();
            assert_eq!(a.0, addr_of(i), "socket {k}: address of {expect}");
            assert!(
                seen.insert(m.id(), a.0).is_none(),
                "socket {k}: id {} answered twice",
                m.id()
            );
        }
        assert_eq!(seen.len(), PER_SOCKET as usize, "socket {k}: answers");
        answers += seen.len() as u64;
    }
    (answers, counted_packets(sb))
}

#[test]
fn bursts_of_answers_to_one_socket_arrive_whole_and_from_port_53() {
    let (answers, packets) = bursts(ResolverConfig::default());
    // Every answer arrived as its own datagram; fewer packets went through the hook than
    // answers, so some were carried as segmented datagrams.
    assert!(
        packets < answers,
        "{packets} answer packets for {answers} answers: nothing was coalesced"
    );
    eprintln!("stateless redirect: {answers} answers in {packets} packets");
}

#[test]
fn bursts_of_answers_survive_dockers_conntrack_dnat_too() {
    let mut config = ResolverConfig::default();
    config.redirect = berth_dns::Redirect::Conntrack(berth_firewall::FirewallConfig::new(
        berth_firewall::Backend::Iptables,
    ));
    let (answers, packets) = bursts(config);
    assert!(
        packets < answers,
        "{packets} answer packets for {answers} answers: nothing was coalesced"
    );
    eprintln!("conntrack DNAT: {answers} answers in {packets} packets");
}
