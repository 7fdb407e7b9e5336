//! The UDP answer path's system calls: datagrams received in batches (`recvmmsg`), answers
//! sent in batches (`sendmmsg`), a client's answers coalesced into segmented datagrams (UDP GSO)
//! where the kernel can cut them back into one datagram per answer.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::RawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Answers sent per system call (at most).
pub(crate) const UDP_SEND_BATCH: usize = 128;

/// Receives up to `bufs.len()` datagrams in one `recvmmsg`; `got` gets (length, sender) of each,
/// with length `usize::MAX` for a datagram that did not fit its buffer.
pub(crate) fn recv_batch(
    fd: RawFd,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, SocketAddrV4)>,
) -> io::Result<()> {
    got.clear();
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(bufs.len(), None);
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let results = recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for r in results {
        let Some(from) = r.address else { continue };
        let len = if r.flags.contains(MsgFlags::MSG_TRUNC) {
            usize::MAX
        } else {
            r.bytes
        };
        got.push((len, SocketAddrV4::from(from)));
    }
    Ok(())
}

/// Answers coalesced into one segmented (UDP GSO) datagram at most; older kernels take 64.
const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes of answers in one segmented datagram at most (an IPv4 packet holds 65507).
const GSO_MAX_BYTES: usize = 60_000;

/// One message of a flush: `count` answers `order[first..first + count]` for `to`, each `len`
/// bytes long but the last (which may be shorter). With `count > 1` it goes out as one
/// segmented (UDP GSO) datagram, which the kernel carries through routing, the redirect's
/// nftables chain and the loopback device once, and cuts into `count` datagrams only when it
/// queues them on the client's socket (so each answer still arrives as its own datagram).
#[derive(Debug, Clone, Copy)]
struct UdpMessage {
    first: usize,
    count: usize,
    len: usize,
    to: SocketAddrV4,
}

/// Groups the answers `outs[..targets.len()]` into messages: a client's answers of one length,
/// plus one shorter answer at the end, become one segmented message (when `gso`); the rest go
/// as single ones. Segmented messages come first, ordered by segment length (each length is one
/// `sendmmsg`), then the single ones (one `sendmmsg` for all). `order` gets the answers' indices
/// in message order.
fn plan_flush(
    outs: &[Vec<u8>],
    targets: &[SocketAddrV4],
    gso: bool,
    order: &mut Vec<usize>,
    msgs: &mut Vec<UdpMessage>,
) {
    order.clear();
    msgs.clear();
    order.extend(0..targets.len());
    if !gso {
        msgs.extend(order.iter().map(|&i| UdpMessage {
            first: i,
            count: 1,
            len: outs[i].len(),
            to: targets[i],
        }));
        return;
    }
    // By client, longest answers first; stable, so a client's answers of one length keep
    // their order.
    order.sort_by_key(|&i| {
        (
            u32::from(*targets[i].ip()),
            targets[i].port(),
            std::cmp::Reverse(outs[i].len()),
        )
    });
    let mut k = 0;
    while k < order.len() {
        let (len, to) = (outs[order[k]].len(), targets[order[k]]);
        let limit = if len == 0 || len > usize::from(u16::MAX) {
            1
        } else {
            GSO_MAX_SEGMENTS.min((GSO_MAX_BYTES / len).max(1))
        };
        let mut count = 1;
        while k + count < order.len() && count < limit && targets[order[k + count]] == to {
            let next = outs[order[k + count]].len();
            if next == 0 {
                break;
            }
            count += 1;
            if next < len {
                // only the last segment may be shorter
                break;
            }
        }
        msgs.push(UdpMessage {
            first: k,
            count,
            len,
            to,
        });
        k += count;
    }
    // segmented messages by segment length, single answers last
    msgs.sort_by_key(|m| (m.count == 1, m.len));
}

/// Sends `msgs` in one `sendmmsg`, each as one datagram of its answers, cut by the kernel into
/// datagrams of `segment` bytes when given (UDP GSO); returns how many messages went out.
fn send_batch(
    fd: RawFd,
    outs: &[Vec<u8>],
    order: &[usize],
    msgs: &[UdpMessage],
    segment: Option<u16>,
) -> io::Result<usize> {
    if msgs.is_empty() {
        return Ok(0);
    }
    let iovs: Vec<IoSlice<'_>> = msgs
        .iter()
        .flat_map(|m| order[m.first..m.first + m.count].iter())
        .map(|&i| IoSlice::new(&outs[i]))
        .collect();
    let mut slices: Vec<&[IoSlice<'_>]> = Vec::with_capacity(msgs.len());
    let mut at = 0;
    for m in msgs {
        slices.push(&iovs[at..at + m.count]);
        at += m.count;
    }
    let addrs: Vec<Option<SockaddrIn>> =
        msgs.iter().map(|m| Some(SockaddrIn::from(m.to))).collect();
    let segment_size = segment.unwrap_or(0);
    let gso = [ControlMessage::UdpGsoSegments(&segment_size)];
    let cmsgs: &[ControlMessage<'_>] = if segment.is_some() { &gso } else { &[] };
    let mut headers =
        MultiHeaders::<SockaddrIn>::preallocate(msgs.len(), segment.map(|_| nix::cmsg_space!(u16)));
    let sent = sendmmsg(
        fd,
        &mut headers,
        slices.iter(),
        &addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// Whether the kernel segments UDP datagrams (Linux 4.18 and later know `UDP_SEGMENT`; older
/// ones would ignore the control message and send the answers glued into one datagram).
fn gso_supported(sock: &UdpSocket) -> bool {
    nix::sys::socket::getsockopt(sock, nix::sys::socket::sockopt::UdpGsoSegment).is_ok()
}

/// Whether a send error says the kernel cannot segment UDP datagrams (then answers go out one
/// by one).
fn gso_refused(e: &io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    [
        Errno::EIO,
        Errno::EINVAL,
        Errno::ENOPROTOOPT,
        Errno::EOPNOTSUPP,
        Errno::EMSGSIZE,
    ]
    .iter()
    .any(|&x| x as i32 == code)
}

/// What [`flush`] reuses from one call to the next.
#[derive(Default)]
pub(crate) struct FlushState {
    /// Whether answers to one client may be coalesced (UDP GSO); off after the kernel refused.
    gso: bool,
    order: Vec<usize>,
    msgs: Vec<UdpMessage>,
}

impl FlushState {
    /// The state of a new server socket: coalescing on if the kernel segments UDP datagrams.
    pub(crate) fn new(sock: &UdpSocket) -> FlushState {
        FlushState {
            gso: gso_supported(sock),
            ..FlushState::default()
        }
    }
}

/// Replaces message `k` of a flush by single answers, appended at the end (sent last).
fn split_message(outs: &[Vec<u8>], order: &[usize], msgs: &mut Vec<UdpMessage>, k: usize) {
    let m = msgs[k];
    msgs[k].count = 0;
    msgs.extend((m.first..m.first + m.count).map(|first| UdpMessage {
        first,
        count: 1,
        len: outs[order[first]].len(),
        to: m.to,
    }));
}

/// Sends the answers `outs[..targets.len()]` to `targets`; false if the socket is gone.
pub(crate) async fn flush(
    sock: &UdpSocket,
    fd: RawFd,
    outs: &[Vec<u8>],
    targets: &[SocketAddrV4],
    st: &mut FlushState,
) -> bool {
    let FlushState { gso, order, msgs } = st;
    plan_flush(outs, targets, *gso, order, msgs);
    let mut done = 0;
    while done < msgs.len() {
        let m = msgs[done];
        let segment = match (m.count > 1, u16::try_from(m.len)) {
            (false, _) => None,
            (true, Ok(size)) => Some(size),
            // (plan_flush coalesces only answers whose length fits a segment size)
            (true, Err(_)) => {
                split_message(outs, order, msgs, done);
                done += 1;
                continue;
            }
        };
        // the run of messages that share this segment length (or are all single answers)
        let run = msgs[done..]
            .iter()
            .take_while(|n| (n.count > 1) == (m.count > 1) && (m.count == 1 || n.len == m.len))
            .count();
        let batch = &msgs[done..done + run.min(UDP_SEND_BATCH)];
        match sock.try_io(Interest::WRITABLE, || {
            send_batch(fd, outs, order, batch, segment)
        }) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if sock.writable().await.is_err() {
                    return false;
                }
            }
            Err(e) if segment.is_some() && gso_refused(&e) => {
                // This kernel (or route) cannot segment: from now on, answers go out one by one.
                tracing::debug!(
                    error = %e,
                    "berth-dns: UDP GSO refused, sending answers one by one"
                );
                *gso = false;
                split_message(outs, order, msgs, done);
                done += 1;
            }
            // One unreachable sender must not cost the others their answers.
            Err(_) => done += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
    }

    /// The answers of each message, as (segment length, client, lengths in send order).
    fn plan(
        lens: &[usize],
        ports: &[u16],
        gso: bool,
    ) -> (Vec<UdpMessage>, Vec<usize>, Vec<Vec<u8>>) {
        let outs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![u8::try_from(i).unwrap(); n])
            .collect();
        let targets: Vec<SocketAddrV4> = ports.iter().map(|&p| to(p)).collect();
        let (mut order, mut msgs) = (Vec::new(), Vec::new());
        plan_flush(&outs, &targets, gso, &mut order, &mut msgs);
        (msgs, order, outs)
    }

    /// Every answer is in exactly one message, for its own client; in a segmented message all
    /// answers but the last are exactly the segment length, the last at most that.
    fn check(lens: &[usize], ports: &[u16], msgs: &[UdpMessage], order: &[usize]) {
        let mut seen = vec![0; lens.len()];
        for m in msgs {
            let members = &order[m.first..m.first + m.count];
            for (j, &i) in members.iter().enumerate() {
                seen[i] += 1;
                assert_eq!(to(ports[i]), m.to);
                if j + 1 < members.len() {
                    assert_eq!(lens[i], m.len);
                } else {
                    assert!(lens[i] <= m.len);
                }
            }
            assert!(m.count <= GSO_MAX_SEGMENTS);
            assert!(m.count == 1 || m.count * m.len <= GSO_MAX_BYTES);
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn answers_to_one_client_are_coalesced_by_length_with_one_shorter_last() {
        // client 1: 40, 41, 41, 40, 41; client 2: 41, 41; client 3: 30
        let lens = [40, 41, 41, 40, 41, 41, 41, 30];
        let ports = [1, 1, 1, 1, 1, 2, 2, 3];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        let shape: Vec<(usize, u16, usize)> =
            msgs.iter().map(|m| (m.count, m.to.port(), m.len)).collect();
        // client 1: three 41s and one 40 in one message, the other 40 alone; client 2: two
        // 41s; segmented messages first (by segment length), single answers last
        assert_eq!(shape, vec![(4, 1, 41), (2, 2, 41), (1, 3, 30), (1, 1, 40)]);
        // a client's answers of one length keep their order
        assert_eq!(&order[msgs[0].first..msgs[0].first + 4], &[1, 2, 4, 0]);
    }

    #[test]
    fn without_gso_every_answer_is_its_own_message_in_order() {
        let lens = [40, 41, 41, 40];
        let ports = [1, 1, 2, 1];
        let (msgs, order, _) = plan(&lens, &ports, false);
        check(&lens, &ports, &msgs, &order);
        assert_eq!(msgs.len(), 4);
        assert!(msgs.iter().all(|m| m.count == 1));
        let firsts: Vec<usize> = msgs.iter().map(|m| order[m.first]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3]);
    }

    #[test]
    fn segmented_messages_respect_the_kernels_limits() {
        // 200 small answers to one client: at most 64 segments per message
        let lens = vec![50; 200];
        let ports = vec![7; 200];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        assert_eq!(
            msgs.iter().map(|m| m.count).collect::<Vec<_>>(),
            vec![64, 64, 64, 8]
        );
        // 40 answers of 4096 bytes: at most 60000 bytes per message
        let lens = vec![4096; 40];
        let ports = vec![7; 40];
        let (msgs, order, _) = plan(&lens, &ports, true);
        check(&lens, &ports, &msgs, &order);
        assert!(msgs.iter().all(|m| m.count <= 14));
        assert_eq!(msgs.iter().map(|m| m.count).sum::<usize>(), 40);
    }

    #[test]
    fn a_refused_segmented_message_becomes_single_answers_sent_last() {
        let lens = [41, 41, 40, 30];
        let ports = [1, 1, 1, 2];
        let (mut msgs, order, outs) = plan(&lens, &ports, true);
        assert_eq!(msgs[0].count, 3);
        split_message(&outs, &order, &mut msgs, 0);
        assert_eq!(msgs[0].count, 0);
        let tail: Vec<(usize, u16, usize)> = msgs[2..]
            .iter()
            .map(|m| (order[m.first], m.to.port(), m.len))
            .collect();
        assert_eq!(tail, vec![(0, 1, 41), (1, 1, 41), (2, 1, 40)]);
        // every answer is still sent exactly once
        let live: Vec<UdpMessage> = msgs.iter().copied().filter(|m| m.count > 0).collect();
        check(&lens, &ports, &live, &order);
    }

    #[test]
    fn send_errors_that_mean_no_gso_are_recognised() {
        assert!(gso_refused(&io::Error::from_raw_os_error(nix::libc::EIO)));
        assert!(gso_refused(&io::Error::from_raw_os_error(
            nix::libc::EINVAL
        )));
        assert!(!gso_refused(&io::Error::from_raw_os_error(
            nix::libc::ECONNREFUSED
        )));
        assert!(!gso_refused(&io::Error::other("x")));
    }
}
