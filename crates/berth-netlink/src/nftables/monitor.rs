//! Change notifications: [`NftMonitor`], a `NETLINK_NETFILTER` socket subscribed to the
//! `NFNLGRP_NFTABLES` group of one namespace, which reports every committed nf_tables
//! transaction: what it changed and which process committed it.
//!
//! It is what lets a firewall notice changes made outside it (`iptables -t nat -F`, `nft flush
//! ruleset`, a firewall script's reload) and repair them while it runs. For each transaction the
//! kernel sends one message per table, chain, rule, set and set element added or removed, then
//! `NFT_MSG_NEWGEN` with the new ruleset generation and the pid and name (`comm`) of the task
//! that committed; the monitor groups them into one [`Commit`]. The pid lets a caller skip its own
//! commits ([`Commit::is_from_this_process`]); the name says which tool changed the rules.
//!
//! Only nf_tables sends notifications: `nft`, and `iptables-nft` / `ip6tables-nft` (also when
//! reached through an `iptables` link to them). The legacy x_tables backend
//! (`iptables-legacy`) sends nothing; a caller has to look at that ruleset another way.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::consts::*;
use super::types::Family;
use crate::Netns;
use crate::error::{Error, Result};
use crate::socket::{align4, open_socket, read_u16, read_u32, recv_datagram};

/// The most changes a [`Commit`] lists; the rest are counted out ([`Commit::truncated`]), so a
/// flush of a huge ruleset cannot exhaust memory.
pub const MAX_CHANGES_PER_COMMIT: usize = 10_000;

/// The receive buffer [`NftMonitor::open`] asks for (4 MiB, set with `SO_RCVBUFFORCE`; the
/// kernel grants 8 MiB of accounting): it held the notifications of 1,000 one-element commits,
/// or of one commit of 12,000 elements, made while the reader slept (kernel 6.18).
pub const DEFAULT_RECEIVE_BUFFER: usize = 4 << 20;

/// Initial size of the datagram buffer (grown when a larger datagram waits).
const RX_INITIAL: usize = 64 * 1024;
/// At most this many waiting datagrams are discarded after an overrun, per [`NftMonitor::next`].
const MAX_DRAIN: usize = 65_536;
/// The type bits of an attribute's type (without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `TASK_COMM_LEN` less the terminating NUL: the longest process name the kernel reports.
const MAX_PROCESS_NAME_LEN: usize = 15;

/// What [`NftMonitor::next`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// One committed transaction.
    Commit(Commit),
    /// Notifications were lost: the socket's receive buffer overflowed (`ENOBUFS`: the reader
    /// fell behind a burst, or the kernel could not allocate a notification), or a notification
    /// could not be read. Some changes are unknown: check the whole ruleset. Everything that was
    /// waiting when the overrun was noticed is discarded with it (it is older than the check the
    /// caller is about to make); the first [`Commit`] after an overrun may list only part of its
    /// changes.
    Overrun,
}

/// One committed nf_tables transaction, as the kernel announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The ruleset generation the transaction created (`NFTA_GEN_ID`); consecutive commits in a
    /// namespace have consecutive generations.
    pub generation: u32,
    /// The committing task (`NFTA_GEN_PROC_PID`): the id of the thread that sent the batch, as
    /// the initial pid namespace numbers it. For single-threaded tools (`nft`, `iptables-nft`) it
    /// is the process id. `None` from kernels that do not send it.
    pub pid: Option<u32>,
    /// The committing task's name (`NFTA_GEN_PROC_NAME`, the thread's `comm`, at most 15 bytes):
    /// `nft`, `iptables-nft`, `iptables` (the nf_tables variant behind the alternatives link),
    /// `xtables-nft-mul` (`xtables-nft-multi` cut to 15 bytes), or a thread's name. `None` from
    /// kernels that do not send it.
    pub process: Option<String>,
    /// The netlink port id of the socket that committed (the notification header's `nlmsg_pid`);
    /// unique among the namespace's open netlink sockets.
    pub port_id: u32,
    /// What the transaction changed, in the kernel's order (at most
    /// [`MAX_CHANGES_PER_COMMIT`]).
    pub changes: Vec<Change>,
    /// True when the transaction changed more than [`MAX_CHANGES_PER_COMMIT`] objects and the
    /// rest are not listed.
    pub truncated: bool,
}

impl Commit {
    /// True when a thread of the calling process committed this transaction: [`Commit::pid`] is
    /// the process id or one of its live threads' ids (`/proc/self/task/PID`).
    ///
    /// The kernel numbers tasks in the initial pid namespace, so the answer is only meaningful
    /// when the caller runs there (a daemon on the host); inside a container with its own pid
    /// namespace, compare [`Commit::port_id`] with the committing socket's port id instead. A
    /// thread that has exited since it committed is no longer recognised.
    pub fn is_from_this_process(&self) -> bool {
        match self.pid {
            Some(0) | None => false,
            Some(pid) => {
                pid == std::process::id()
                    || std::path::Path::new(&format!("/proc/self/task/{pid}")).exists()
            }
        }
    }
}

/// One object a [`Commit`] added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The table's family, as the raw `NFPROTO_*` number ([`Change::known_family`] maps it).
    pub family: u8,
    /// The table's name (empty for a message of an unknown type that names none).
    pub table: String,
    /// The chain, for chain and rule changes.
    pub chain: Option<String>,
    /// The set (or map), for set and element changes.
    pub set: Option<String>,
}

impl Change {
    /// [`Change::family`] as a [`Family`], when it is one berth knows.
    pub fn known_family(&self) -> Option<Family> {
        [
            Family::Inet,
            Family::Ip,
            Family::Ip6,
            Family::Arp,
            Family::Bridge,
            Family::Netdev,
        ]
        .into_iter()
        .find(|f| f.number() == self.family)
    }
}

/// The kind of a [`Change`]. A rule replaced in place is reported as a new rule; `destroy`
/// operations (kernel 6.3+) as deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A table was added (or its flags changed).
    NewTable,
    /// A table was deleted, with everything in it.
    DelTable,
    /// A chain was added (or a base chain's policy changed).
    NewChain,
    /// A chain was deleted.
    DelChain,
    /// A rule was added or replaced.
    NewRule,
    /// A rule was deleted (one message per rule, also when its chain is flushed).
    DelRule,
    /// A set or map was added.
    NewSet,
    /// A set or map was deleted.
    DelSet,
    /// Elements were added to a set or map (one message per element).
    NewElem,
    /// Elements were removed from a set or map.
    DelElem,
    /// Any other change, by its `NFT_MSG_*` type: a stateful object (18 added, 20 deleted) or a
    /// flowtable (22 added, 24 deleted).
    Other(u16),
}

impl ChangeKind {
    fn from_message(msg: u16) -> ChangeKind {
        match msg {
            NFT_MSG_NEWTABLE => ChangeKind::NewTable,
            NFT_MSG_DELTABLE | NFT_MSG_DESTROYTABLE => ChangeKind::DelTable,
            NFT_MSG_NEWCHAIN => ChangeKind::NewChain,
            NFT_MSG_DELCHAIN | NFT_MSG_DESTROYCHAIN => ChangeKind::DelChain,
            NFT_MSG_NEWRULE => ChangeKind::NewRule,
            NFT_MSG_DELRULE | NFT_MSG_DESTROYRULE => ChangeKind::DelRule,
            NFT_MSG_NEWSET => ChangeKind::NewSet,
            NFT_MSG_DELSET | NFT_MSG_DESTROYSET => ChangeKind::DelSet,
            NFT_MSG_NEWSETELEM => ChangeKind::NewElem,
            NFT_MSG_DELSETELEM | NFT_MSG_DESTROYSETELEM => ChangeKind::DelElem,
            other => ChangeKind::Other(other),
        }
    }

    /// True for the kinds that remove something (`Del*`, and deleted objects and flowtables).
    pub fn is_deletion(self) -> bool {
        matches!(
            self,
            ChangeKind::DelTable
                | ChangeKind::DelChain
                | ChangeKind::DelRule
                | ChangeKind::DelSet
                | ChangeKind::DelElem
                | ChangeKind::Other(NFT_MSG_DELOBJ | NFT_MSG_DELFLOWTABLE)
        )
    }
}

/// A monitor of nf_tables changes in one network namespace: the in-process equivalent of
/// `nft monitor`, for a firewall that notices when something outside it changes the packet
/// filter.
///
/// Open it with [`NftMonitor::open`] (inside a given [`Netns`]) or [`NftMonitor::current`], then
/// call [`NftMonitor::next`] in a loop; every transaction committed in the namespace after the
/// open comes back as one [`Notice::Commit`], in commit order. Nothing from other namespaces is
/// seen. When notifications were lost, [`Notice::Overrun`] says so: check everything.
///
/// Its file descriptor ([`AsFd`]) becomes readable when notifications wait, for callers that
/// poll several sources; then call `next(Duration::ZERO)`.
pub struct NftMonitor {
    socket: Socket,
    rx: Vec<u8>,
    grouper: Grouper,
}

/// Compile-time proof that an [`NftMonitor`] can move to a watcher thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<NftMonitor>();
};

impl fmt::Debug for NftMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NftMonitor")
            .field("fd", &self.socket.as_raw_fd())
            .field("pending_changes", &self.grouper.pending.len())
            .field("ready", &self.grouper.ready.len())
            .finish_non_exhaustive()
    }
}

impl AsFd for NftMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.socket`, which lives as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}

/// What one non-blocking receive found.
enum Received {
    Datagram(usize),
    Overrun,
    Empty,
}

impl NftMonitor {
    /// Subscribes to the nf_tables notifications of `ns` (the socket is created with the calling
    /// thread inside `ns` for the moment, see [`Netns::run`]), with a receive buffer of
    /// [`DEFAULT_RECEIVE_BUFFER`]. Needs CAP_NET_ADMIN in the namespace.
    pub fn open(ns: &Netns) -> Result<NftMonitor> {
        NftMonitor::open_with_buffer(ns, DEFAULT_RECEIVE_BUFFER)
    }

    /// Like [`NftMonitor::open`] with a receive buffer of `bytes` (the kernel doubles the value
    /// for its bookkeeping; without CAP_NET_ADMIN it caps it at `net.core.rmem_max`). A smaller
    /// buffer overruns sooner.
    pub fn open_with_buffer(ns: &Netns, bytes: usize) -> Result<NftMonitor> {
        let socket = ns.run(|| subscribe(bytes))??;
        Ok(NftMonitor::with_socket(socket))
    }

    /// Subscribes to the nf_tables notifications of the calling thread's current namespace.
    pub fn current() -> Result<NftMonitor> {
        Ok(NftMonitor::with_socket(subscribe(DEFAULT_RECEIVE_BUFFER)?))
    }

    fn with_socket(socket: Socket) -> NftMonitor {
        NftMonitor {
            socket,
            rx: vec![0; RX_INITIAL],
            grouper: Grouper::new(MAX_CHANGES_PER_COMMIT),
        }
    }

    /// The receive buffer the kernel granted, in bytes (`SO_RCVBUF`: twice what was asked).
    pub fn receive_buffer(&self) -> Result<usize> {
        self.socket
            .get_rx_buf_sz()
            .map_err(|e| Error::io("reading the nf_tables monitor's receive buffer size", e))
    }

    /// Waits up to `timeout` for the next notice: a complete [`Commit`] (its `NFT_MSG_NEWGEN`
    /// has arrived) or an [`Notice::Overrun`]. `None` when the time is up; changes of a commit
    /// still in flight are kept for the next call. `Duration::ZERO` only reads what is waiting.
    ///
    /// Errors are those of the socket itself; malformed notifications are reported as
    /// [`Notice::Overrun`] (and logged), since what they said is lost.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Notice>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(notice) = self.grouper.ready.pop_front() {
                return Ok(Some(notice));
            }
            let idle = match self.receive()? {
                Received::Datagram(n) => {
                    self.grouper.scan(&self.rx[..n]);
                    false
                }
                Received::Overrun => {
                    let discarded = self.drain();
                    tracing::debug!(
                        discarded,
                        "nf_tables notifications overflowed the monitor's receive buffer"
                    );
                    self.grouper.overrun();
                    false
                }
                Received::Empty => true,
            };
            if !self.grouper.ready.is_empty() {
                continue;
            }
            // Checked after every datagram too, so that one huge transaction still in flight
            // does not hold the caller past its timeout.
            let remaining = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if remaining.is_zero() {
                return Ok(None);
            }
            if idle {
                self.wait(remaining)?;
            }
        }
    }

    /// Receives one waiting datagram, without blocking.
    fn receive(&mut self) -> Result<Received> {
        match recv_datagram(&self.socket, &mut self.rx) {
            Ok(n) => Ok(Received::Datagram(n)),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Received::Overrun),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Received::Empty),
            Err(e) => Err(Error::io("receiving nf_tables notifications", e)),
        }
    }

    /// Discards what waits after an overrun: it all describes commits made before the caller
    /// learns of the overrun, which its check of the whole ruleset covers. Returns the number
    /// of datagrams discarded.
    fn drain(&mut self) -> usize {
        let mut discarded = 0;
        while discarded < MAX_DRAIN {
            match self.socket.recv(&mut &mut self.rx[..], libc::MSG_TRUNC) {
                Ok(_) => discarded += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        discarded
    }

    /// Blocks until the socket is readable (or has an error), `timeout` passes, or a signal
    /// arrives.
    fn wait(&self, timeout: Duration) -> Result<()> {
        let millis = timeout.as_millis().saturating_add(1);
        let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call, and the count says one.
        let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("waiting for nf_tables notifications", e));
            }
        }
        Ok(())
    }
}

/// A non-blocking `NETLINK_NETFILTER` socket in the current namespace, subscribed to
/// `NFNLGRP_NFTABLES`, with a receive buffer of `bytes`.
fn subscribe(bytes: usize) -> Result<Socket> {
    let socket = open_socket(NETLINK_NETFILTER, "nftables monitor")?;
    super::handle::set_buffer(&socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bytes)
        .map_err(|e| Error::io("sizing the nf_tables monitor's receive buffer", e))?;
    socket.add_membership(NFNLGRP_NFTABLES).map_err(|e| {
        Error::io(
            "subscribing to nf_tables notifications (NFNLGRP_NFTABLES)",
            e,
        )
    })?;
    socket
        .set_non_blocking(true)
        .map_err(|e| Error::io("making the nf_tables monitor's socket non-blocking", e))?;
    Ok(socket)
}

/// The pure part of the monitor: groups the messages of received datagrams into notices.
#[derive(Debug)]
struct Grouper {
    max_changes: usize,
    /// The changes of the transaction whose `NFT_MSG_NEWGEN` has not arrived yet.
    pending: Vec<Change>,
    truncated: bool,
    /// Notices not yet returned.
    ready: VecDeque<Notice>,
}

impl Grouper {
    fn new(max_changes: usize) -> Grouper {
        Grouper {
            max_changes,
            pending: Vec::new(),
            truncated: false,
            ready: VecDeque::new(),
        }
    }

    /// Scans one datagram: changes join the pending commit, each `NFT_MSG_NEWGEN` completes it.
    /// A malformed message ends the datagram: the pending commit is dropped for an overrun.
    fn scan(&mut self, datagram: &[u8]) {
        let mut rest = datagram;
        while rest.len() >= HEADER_LEN {
            let len = read_u32(rest, 0) as usize;
            if len < HEADER_LEN || len > rest.len() {
                self.damaged(&format!(
                    "a message claims {len} bytes but {} are left in the datagram",
                    rest.len()
                ));
                return;
            }
            let message_type = read_u16(rest, 4);
            let port_id = read_u32(rest, 12);
            let payload = &rest[HEADER_LEN..len];
            rest = rest.get(align4(len)..).unwrap_or(&[]);
            if message_type >> 8 != NFNL_SUBSYS_NFTABLES {
                continue;
            }
            if let Err(why) = self.message(message_type & 0xff, port_id, payload) {
                self.damaged(&why);
                return;
            }
        }
    }

    fn message(&mut self, msg: u16, port_id: u32, payload: &[u8]) -> Result<(), String> {
        let (header, attrs) = payload
            .split_at_checked(NFGENMSG_LEN)
            .ok_or_else(|| format!("a {}-byte message has no nfgenmsg header", payload.len()))?;
        let a = first_attrs(attrs)?;
        if msg == NFT_MSG_NEWGEN {
            let be32 = |what: &str, v: &[u8]| -> Result<u32, String> {
                let raw: [u8; 4] = v
                    .try_into()
                    .map_err(|_| format!("a {what} of {} bytes", v.len()))?;
                Ok(u32::from_be_bytes(raw))
            };
            let generation = match a[usize::from(NFTA_GEN_ID)] {
                Some(v) => be32("generation", v)?,
                // nfgenmsg's res_id holds the generation's low 16 bits.
                None => u32::from(u16::from_be_bytes([header[2], header[3]])),
            };
            let pid = a[usize::from(NFTA_GEN_PROC_PID)]
                .map(|v| be32("pid", v))
                .transpose()?;
            let process = a[usize::from(NFTA_GEN_PROC_NAME)].map(|v| text(v, MAX_PROCESS_NAME_LEN));
            self.ready.push_back(Notice::Commit(Commit {
                generation,
                pid,
                process,
                port_id,
                changes: std::mem::take(&mut self.pending),
                truncated: std::mem::take(&mut self.truncated),
            }));
            return Ok(());
        }
        if self.pending.len() >= self.max_changes {
            self.truncated = true;
            return Ok(());
        }
        let kind = ChangeKind::from_message(msg);
        let name = |attr: u16| a[usize::from(attr)].map(|v| text(v, MAX_NAME_LEN));
        let (chain, set) = match kind {
            ChangeKind::NewChain | ChangeKind::DelChain => (name(NFTA_CHAIN_NAME), None),
            ChangeKind::NewRule | ChangeKind::DelRule => (name(NFTA_RULE_CHAIN), None),
            ChangeKind::NewSet | ChangeKind::DelSet => (None, name(NFTA_SET_NAME)),
            ChangeKind::NewElem | ChangeKind::DelElem => (None, name(NFTA_SET_ELEM_LIST_SET)),
            _ => (None, None),
        };
        self.pending.push(Change {
            kind,
            family: header[0],
            // The table is attribute 1 of every nf_tables object message (NFTA_TABLE_NAME,
            // NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_ELEM_LIST_TABLE, NFTA_OBJ_TABLE, ...).
            table: name(NFTA_TABLE_NAME).unwrap_or_default(),
            chain,
            set,
        });
        Ok(())
    }

    /// An unreadable message: what the pending commit holds is incomplete.
    fn damaged(&mut self, why: &str) {
        tracing::warn!(
            problem = why,
            "an nf_tables notification could not be read; reporting an overrun"
        );
        self.pending.clear();
        self.truncated = false;
        if self.ready.back() != Some(&Notice::Overrun) {
            self.ready.push_back(Notice::Overrun);
        }
    }

    /// The socket overflowed: everything before it is superseded by one overrun.
    fn overrun(&mut self) {
        self.pending.clear();
        self.truncated = false;
        self.ready.clear();
        self.ready.push_back(Notice::Overrun);
    }
}

/// The first values of attributes 1 to 3 of a message (index = type), after checking that the
/// whole attribute stream is well formed.
fn first_attrs(mut buf: &[u8]) -> Result<[Option<&[u8]>; 4], String> {
    let mut found = [None; 4];
    while buf.len() >= 4 {
        let len = usize::from(read_u16(buf, 0));
        if len < 4 || len > buf.len() {
            return Err(format!(
                "an attribute claims {len} bytes but {} are left",
                buf.len()
            ));
        }
        let kind = usize::from(read_u16(buf, 2) & NLA_TYPE_MASK);
        if let Some(slot) = found.get_mut(kind) {
            slot.get_or_insert(&buf[4..len]);
        }
        buf = buf.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(found)
}

/// A NUL-terminated name, at most `max` bytes, with invalid UTF-8 replaced.
fn text(value: &[u8], max: usize) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end.min(max)]).into_owned()
}

/// The change cap of the fuzz entry: small, so that truncation is reached.
const FUZZ_MAX_CHANGES: usize = 8;

/// Scans `data` as datagrams of nf_tables notifications split at every `ff ff ff ff` marker,
/// exactly as an [`NftMonitor`] does (with a cap of 8 changes per commit), and checks the
/// notices' invariants. Only for fuzzing: it must never panic.
#[doc(hidden)]
pub fn fuzz_scan_nftables_notices(data: &[u8]) {
    let mut grouper = Grouper::new(FUZZ_MAX_CHANGES);
    let mut rest = data;
    while !rest.is_empty() {
        let cut = rest
            .windows(4)
            .position(|w| w == [0xff; 4])
            .unwrap_or(rest.len());
        grouper.scan(&rest[..cut]);
        rest = rest.get(cut + 4..).unwrap_or(&[]);
        while let Some(notice) = grouper.ready.pop_front() {
            if let Notice::Commit(c) = notice {
                // The invariants the fuzzer checks: the cap holds, names stay within the
                // kernel's limits.
                assert!(c.changes.len() <= FUZZ_MAX_CHANGES);
                assert!(c.process.as_ref().is_none_or(|p| p.len() <= 3 * 15));
                for change in &c.changes {
                    let _ = change.known_family();
                    let _ = change.kind.is_deletion();
                    assert!(change.table.len() <= 3 * MAX_NAME_LEN);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
