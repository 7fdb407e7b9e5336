//! Clients that do not read their responses: they lose their connection after the write timeout,
//! and while they hold every connection slot, normal clients wait only until then.
//! The daemon runs with a 4 s write timeout (`BERTH_TEST_WRITE_TIMEOUT_MS`, debug builds only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Fixture;

/// The daemon's connection limit (`MAX_CONNECTIONS` in src/daemon.rs).
const MAX_CONNECTIONS: usize = 256;
const WRITE_TIMEOUT: Duration = Duration::from_secs(4);

/// A daemon with a short write timeout and a network whose inspect answer is about 640 KiB,
/// far more than a unix socket buffers for a client that does not read.
fn daemon_with_a_big_network() -> (Fixture, usize) {
    let mut f = Fixture::unstarted(&[]);
    let timeout_ms = WRITE_TIMEOUT.as_millis().to_string();
    if let Err(status) = f.try_start_with_env(&[("BERTH_TEST_WRITE_TIMEOUT_MS", &timeout_ms)]) {
        panic!("berth daemon exited early ({status}):\n{}", f.log());
    }
    let labels: serde_json::Map<String, serde_json::Value> = (0..64)
        .map(|i| (format!("label{i}"), "x".repeat(10_000).into()))
        .collect();
    let body = serde_json::json!({"Name": "big", "Driver": "bridge", "Labels": labels}).to_string();
    let r = f.http("POST", "/networks/create", Some(&body));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let (status, full) = get_big(&mut connect(&f)).unwrap();
    assert_eq!(status, 200);
    assert!(full > 640_000, "{full}");
    (f, full)
}

fn connect(f: &Fixture) -> UnixStream {
    UnixStream::connect(f.socket()).unwrap()
}

fn send_get(s: &mut UnixStream, path: &str, close: bool) {
    let conn = if close { "Connection: close\r\n" } else { "" };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: berth\r\n{conn}\r\n").as_bytes())
        .unwrap();
}

/// Reads one response's head; returns it and its Content-Length.
fn read_head(s: &mut UnixStream) -> std::io::Result<(String, usize)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    Ok((head, len))
}

/// Sends `GET /networks/big` on a kept-alive connection and reads the whole answer: its status
/// and body length.
fn get_big(s: &mut UnixStream) -> std::io::Result<(u16, usize)> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    send_get(s, "/networks/big", false);
    let (head, len) = read_head(s)?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, len))
}

/// Reads what the daemon sent on a stalled connection until it closes it; `None` when the whole
/// response of `full` body bytes arrived (the daemon never gave up) or nothing ended within 20 s.
fn read_until_closed(s: &mut UnixStream, full: usize) -> Option<usize> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
        if got >= full {
            return None;
        }
    }
}

/// Whether the daemon has sent anything on `s` (nothing is consumed).
fn answered(s: &UnixStream) -> bool {
    use nix::sys::socket::MsgFlags;
    nix::sys::socket::recv(
        s.as_raw_fd(),
        &mut [0u8; 1],
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    )
    .is_ok_and(|n| n > 0)
}

#[test]
fn clients_that_never_read_are_cut_off_and_do_not_starve_the_daemon() {
    let (f, full) = daemon_with_a_big_network();
    // Every connection slot: a request for a big answer, never read.
    let started = Instant::now();
    let mut stalled: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = connect(&f);
            send_get(&mut s, "/networks/big", false);
            s
        })
        .collect();
    // A normal client now waits: the daemon is saturated (this proves the test's premise)...
    let mut normal = connect(&f);
    send_get(&mut normal, "/_ping", true);
    normal
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut early = [0u8; 1];
    match normal.read(&mut early) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "the daemon answered while {MAX_CONNECTIONS} connections were stalled ({other:?}): MAX_CONNECTIONS changed?"
        ),
    }
    // ...but only until the stalled connections' write timeout: then it is served.
    normal
        .set_read_timeout(Some(WRITE_TIMEOUT + Duration::from_secs(15)))
        .unwrap();
    let mut answer = Vec::new();
    let served = normal.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        served.is_ok() && answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"OK"),
        "a normal client was not served within {:?} while clients did not read ({served:?}): {:?}\n{}",
        WRITE_TIMEOUT + Duration::from_secs(15),
        String::from_utf8_lossy(&answer),
        f.log()
    );
    assert!(
        waited >= WRITE_TIMEOUT - Duration::from_millis(500),
        "{waited:?}"
    );
    assert!(
        waited < WRITE_TIMEOUT + Duration::from_secs(15),
        "{waited:?}"
    );
    // Every stalled connection is closed with its answer cut short. Reading one before its own
    // time is up would let the daemon finish it: wait (by peeking, which reads nothing) until the
    // daemon has started to answer on each, then for the timeout past the last of them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answering = vec![false; stalled.len()];
    let mut last_start = Instant::now();
    while answering.iter().any(|a| !a) {
        assert!(
            Instant::now() < deadline,
            "the daemon did not answer every stalled request"
        );
        for (s, a) in stalled.iter().zip(answering.iter_mut()) {
            if !*a && answered(s) {
                *a = true;
                last_start = Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(
        (last_start + WRITE_TIMEOUT + Duration::from_secs(2))
            .saturating_duration_since(Instant::now()),
    );
    for (i, s) in stalled.iter_mut().enumerate() {
        let got = read_until_closed(s, full);
        assert!(
            got.is_some_and(|g| g < full),
            "stalled connection {i} was not closed ({got:?} of {full} bytes)"
        );
    }
    // And the daemon serves as before, big answers included.
    assert_eq!(get_big(&mut connect(&f)).unwrap(), (200, full));
    assert_eq!(f.http("GET", "/networks", None).status, 200);
}

#[test]
fn a_client_that_reads_a_trickle_is_cut_off_and_a_prompt_one_is_not() {
    let (f, full) = daemon_with_a_big_network();
    // Prompt client on one kept-alive connection: several big answers, together longer than the
    // timeout (which bounds each answer, not the connection).
    let mut s = connect(&f);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(get_big(&mut s).unwrap(), (200, full));
        std::thread::sleep(Duration::from_millis(1800));
    }
    assert!(started.elapsed() > WRITE_TIMEOUT);
    assert_eq!(get_big(&mut s).unwrap(), (200, full));

    // A trickle: 16 KiB every 250 ms takes about 10 s for the answer; the daemon keeps writing
    // as it is read, but closes once the timeout has passed.
    let mut s = connect(&f);
    send_get(&mut s, "/networks/big", false);
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("reading the trickle: {e}"),
        }
        if got >= full {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let took = started.elapsed();
    assert!(
        closed && got < full,
        "a client reading a trickle kept its connection for {took:?} ({got} of {full} bytes)"
    );
    // Closed at the timeout; what was already in the socket buffer drains at the trickle's pace.
    assert!(took < WRITE_TIMEOUT + Duration::from_secs(8), "{took:?}");
    // It got more than a socket buffer holds: the daemon kept writing as it was read (a timeout
    // on stalled writes alone would never fire here), and still cut it off.
    assert!(got > 256 * 1024, "{got}");
}
