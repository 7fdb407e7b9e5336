//! berth-dns benchmarks (pure, no root, no sockets).
//!
//! - `dns/answer_a_query`: answer one A query for a name of a network holding 10,000 endpoints,
//!   from the wire bytes of the query to the wire bytes of the answer, exactly as the UDP server
//!   does per datagram. Budget: 1 µs.
//! - `dns/answer_a_query_round_robin`: the same for a name shared by 8 endpoints (all 8
//!   addresses, shuffled).
//! - `dns/answer_ptr_query`: a reverse lookup of an endpoint's address.
//! - `dns/answer_name_dot_network`: `name.network` on a sandbox attached to 4 networks.
//! - `dns/connect_disconnect`: one endpoint joining and leaving a 10,000-endpoint network (names
//!   visible to every sandbox at once): the cost is the endpoint's own, not the table's.
//!
//! Run with `cargo bench -p berth-benches --bench dns`. The load test against aardvark-dns is
//! `benches/dns-compare.sh` (root).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use berth_dns::{Action, EndpointDns, Names, NetworkDns, SandboxHandle, Transport};
use criterion::{Criterion, criterion_group, criterion_main};

const ENDPOINTS: u32 = 10_000;

fn addr(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n + 2)
}

/// A network `net0` with 10,000 endpoints `c0..`, 8 of them sharing the alias `pool`, plus
/// networks `net1..net3`, and the querying sandbox attached to all four.
fn setup() -> (Names, SandboxHandle) {
    let names = Names::new();
    for n in 0..4 {
        names
            .add_network(&NetworkDns {
                id: format!("net{n}"),
                name: format!("net{n}"),
                internal: false,
                embedded_dns: true,
            })
            .expect("network");
    }
    for i in 0..ENDPOINTS {
        let id = format!("c{i}");
        names.add_sandbox(&id, &id, &[]).expect("sandbox");
        let aliases = if i < 8 {
            vec!["pool".to_string()]
        } else {
            vec![]
        };
        names
            .connect(
                &id,
                "net0",
                &EndpointDns {
                    endpoint_id: id.clone(),
                    aliases,
                    ipv4: Some(addr(i)),
                    ..EndpointDns::default()
                },
            )
            .expect("connect");
    }
    let me = names
        .add_sandbox("me", "me", &["192.0.2.53:53".parse().expect("addr")])
        .expect("sandbox");
    for n in 0..4 {
        names
            .connect(
                "me",
                &format!("net{n}"),
                &EndpointDns {
                    endpoint_id: format!("me{n}"),
                    ipv4: Some(Ipv4Addr::new(10, 200, n, 2)),
                    ..EndpointDns::default()
                },
            )
            .expect("connect me");
    }
    (names, me)
}

/// A query as dig sends it (RD set, no EDNS).
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn answer(handle: &SandboxHandle, q: &[u8], out: &mut Vec<u8>) {
    match handle.respond(black_box(q), Transport::Udp, out) {
        Action::Reply => {}
        other => panic!("expected a local answer, got {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let (names, me) = setup();
    let mut group = c.benchmark_group("dns");
    group.measurement_time(Duration::from_secs(4));
    let mut out = Vec::with_capacity(512);

    let q = query("c4711", 1);
    answer(&me, &q, &mut out);
    assert!(out.len() > q.len(), "an answer with a record");
    group.bench_function("answer_a_query", |b| {
        b.iter(|| answer(&me, &q, &mut out));
    });

    let q = query("pool", 1);
    group.bench_function("answer_a_query_round_robin", |b| {
        b.iter(|| answer(&me, &q, &mut out));
    });

    let rev = addr(4711).octets();
    let q = query(
        &format!("{}.{}.{}.{}.in-addr.arpa", rev[3], rev[2], rev[1], rev[0]),
        12,
    );
    answer(&me, &q, &mut out);
    group.bench_function("answer_ptr_query", |b| {
        b.iter(|| answer(&me, &q, &mut out));
    });

    let q = query("c4711.net0", 1);
    group.bench_function("answer_name_dot_network", |b| {
        b.iter(|| answer(&me, &q, &mut out));
    });

    names
        .add_sandbox("newcomer", "newcomer", &[])
        .expect("sandbox");
    group.bench_function("connect_disconnect", |b| {
        b.iter(|| {
            names
                .connect(
                    "newcomer",
                    "net0",
                    &EndpointDns {
                        endpoint_id: "newcomer".into(),
                        aliases: vec!["extra".into()],
                        ipv4: Some(Ipv4Addr::new(10, 250, 0, 2)),
                        ..EndpointDns::default()
                    },
                )
                .expect("connect");
            names.disconnect("newcomer", "net0").expect("disconnect");
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
