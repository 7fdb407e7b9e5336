//! The socket: [`NftHandle`], a `NETLINK_NETFILTER` connection opened inside a namespace, which
//! sends a [`Batch`] in one `sendmsg` and reads the answers back.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::batch::Batch;
use super::reply::Replies;
use crate::Netns;
use crate::error::{Error, Result};
use crate::socket::{open_socket, recv_datagram};

/// Receive buffer budget per expected reply (the kernel charges a reply's full skb).
const RX_BUDGET_PER_REPLY: usize = 1024;
/// Messages per batch that the default socket buffers comfortably hold the replies of.
const DEFAULT_BUFFER_MESSAGES: usize = 128;
/// Initial size of the receive buffer (one datagram at a time).
const RX_INITIAL: usize = 64 * 1024;

/// A synchronous `NETLINK_NETFILTER` connection bound to one network namespace, committing
/// nf_tables [`Batch`]es.
///
/// Open it with [`NftHandle::open`] (inside a given [`Netns`]) or [`NftHandle::current`]. The
/// socket stays in the namespace it was opened in, whichever thread uses it. Commits are
/// serialised on an internal mutex; the handle is `Send + Sync`.
///
/// Dropping the handle never blocks: the kernel makes the close of a `NETLINK_NETFILTER` socket
/// wait until the memory of recent nf_tables transactions (of any namespace) is released, one
/// RCU grace period (10-20 ms here), so the socket is closed on a short-lived background thread.
/// A caller that installs a few rules per namespace pays the open and the commit only
/// (a few hundred microseconds).
#[derive(Debug)]
pub struct NftHandle {
    /// `None` only while the handle is being dropped.
    conn: Mutex<Option<Conn>>,
}

/// Compile-time proof that an [`NftHandle`] can be shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<NftHandle>();
};

pub(super) struct Conn {
    socket: Socket,
    seq: u32,
    pub(super) tx: Vec<u8>,
    pub(super) rx: Vec<u8>,
    /// The receive and send buffer sizes berth asked for (0: the system default).
    rcvbuf: usize,
    sndbuf: usize,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl NftHandle {
    /// Opens a `NETLINK_NETFILTER` socket inside `ns` (created with the calling thread inside
    /// `ns` for the moment, see [`Netns::run`]).
    pub fn open(ns: &Netns) -> Result<NftHandle> {
        let conn = ns.run(Conn::open)??;
        Ok(NftHandle {
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Opens a `NETLINK_NETFILTER` socket in the calling thread's current namespace.
    pub fn current() -> Result<NftHandle> {
        Ok(NftHandle {
            conn: Mutex::new(Some(Conn::open()?)),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Conn>> {
        // A panic while the lock was held can at worst leave replies of an abandoned batch in the
        // socket; they carry old sequence numbers and are skipped by the next commit.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `batch` atomically: one `sendmsg` of the whole transaction, then one answer per
    /// message. If the kernel refuses any message, nothing of the batch takes effect and the
    /// first refusal is returned, naming its object. An empty batch is a no-op.
    pub fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return batch.encode(1, &mut Vec::new());
        }
        match self.lock().as_mut() {
            Some(conn) => conn.commit(batch),
            None => Err(Error::Protocol {
                context: "committing an nftables transaction".into(),
                message: "the handle is being closed".into(),
            }),
        }
    }
}

impl Drop for NftHandle {
    fn drop(&mut self) {
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(conn) = conn {
            // If no thread can be started, the closure (and with it the socket) is dropped here.
            let spawned = std::thread::Builder::new()
                .name("berth-nft-close".into())
                .spawn(move || drop(conn));
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "closed an nftables socket inline: no thread for it");
            }
        }
    }
}

impl Conn {
    fn open() -> Result<Conn> {
        let socket = open_socket(NETLINK_NETFILTER, "nftables netlink")?;
        Ok(Conn {
            socket,
            seq: 0,
            tx: Vec::with_capacity(4096),
            rx: vec![0; RX_INITIAL],
            rcvbuf: 0,
            sndbuf: 0,
        })
    }

    /// Reserves `count` consecutive sequence numbers and returns the first; never 0 and never
    /// wrapping inside one batch.
    pub(super) fn reserve_seqs(&mut self, count: usize) -> u32 {
        reserve_seqs(&mut self.seq, count)
    }

    /// Grows the socket buffers so that the batch fits one `sendmsg` and all its answers fit
    /// the receive queue (the kernel answers every message before `sendmsg` returns).
    fn size_buffers(&mut self, messages: usize) -> Result<()> {
        let need_tx = self.tx.len() + 64 * 1024;
        if self.tx.len() > 64 * 1024 && need_tx > self.sndbuf {
            set_buffer(&self.socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, need_tx)
                .map_err(|e| Error::io("growing the nftables socket's send buffer", e))?;
            self.sndbuf = need_tx;
        }
        if messages > DEFAULT_BUFFER_MESSAGES {
            let need_rx = (messages + 2).saturating_mul(RX_BUDGET_PER_REPLY);
            if need_rx > self.rcvbuf {
                set_buffer(&self.socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, need_rx)
                    .map_err(|e| Error::io("growing the nftables socket's receive buffer", e))?;
                self.rcvbuf = need_rx;
            }
        }
        Ok(())
    }

    fn commit(&mut self, batch: &Batch) -> Result<()> {
        let begin_seq = self.reserve_seqs(batch.len() + 2);
        let mut tx = std::mem::take(&mut self.tx);
        let encoded = batch.encode(begin_seq, &mut tx);
        self.tx = tx;
        encoded?;
        self.size_buffers(batch.len())?;
        self.send()?;
        let mut replies = Replies::new(begin_seq, batch.len());
        while !replies.done() {
            let n = self.recv()?;
            replies.scan(&self.rx[..n])?;
        }
        replies.outcome(batch)
    }
    pub(super) fn send(&mut self) -> Result<()> {
        loop {
            match self.socket.send(&self.tx, 0) {
                Ok(n) if n == self.tx.len() => return Ok(()),
                Ok(n) => {
                    return Err(Error::Protocol {
                        context: "sending an nftables transaction".into(),
                        message: format!("only {n} of {} bytes were sent", self.tx.len()),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("sending an nftables transaction", e)),
            }
        }
    }

    /// Receives one datagram into `rx`, growing it first if the waiting datagram is larger.
    pub(super) fn recv(&mut self) -> Result<usize> {
        let lost = |e: io::Error| {
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                Error::Protocol {
                    context: "reading the replies to an nftables transaction".into(),
                    message: "the kernel's answers overflowed the socket's receive buffer; list \
                              the ruleset to see whether the transaction was applied"
                        .into(),
                }
            } else {
                Error::io("receiving the replies to an nftables transaction", e)
            }
        };
        recv_datagram(&self.socket, &mut self.rx).map_err(lost)
    }
}

/// Advances `seq` by `count` and returns the first reserved number: never 0, and the range never
/// wraps (it restarts at 1 instead).
fn reserve_seqs(seq: &mut u32, count: usize) -> u32 {
    let count = u32::try_from(count).unwrap_or(u32::MAX / 2);
    if seq.checked_add(count).is_none_or(|end| end == u32::MAX) {
        *seq = 0;
    }
    let first = *seq + 1;
    *seq = seq.saturating_add(count);
    first
}

/// Sets a socket buffer size with the privileged `*FORCE` option (beyond the system maximum),
/// falling back to the plain option without CAP_NET_ADMIN.
pub(super) fn set_buffer(
    socket: &Socket,
    force: libc::c_int,
    plain: libc::c_int,
    size: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let set = |option: libc::c_int| -> io::Result<()> {
        // SAFETY: the fd is a live socket owned by `socket`; the option value points to a c_int
        // that outlives the call, and its exact size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(force).or_else(|_| set(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_reservation_never_wraps_inside_a_batch() {
        let mut seq = u32::MAX - 3;
        assert_eq!(reserve_seqs(&mut seq, 10), 1);
        assert_eq!(reserve_seqs(&mut seq, 2), 11);
        assert_eq!(seq, 12);
        let mut seq = 0;
        assert_eq!(reserve_seqs(&mut seq, 3), 1);
        let mut seq = u32::MAX - 1;
        assert_eq!(reserve_seqs(&mut seq, 1), 1);
    }
}
