//! Name tables: one per network, read without locks by every query (`scc::HashIndex`, epoch-based
//! reclamation), changed by the controller's calls in proportion to the change (one endpoint's
//! names, never a copy of the table).
//!
//! A sandbox sees the tables of the networks it is attached to through its [`View`], swapped
//! atomically on connect and disconnect.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The longest name the tables hold, in presentation form without the final dot.
pub(crate) const MAX_NAME_LEN: usize = 253;

/// The addresses a name resolves to on one network, in a stable order (shuffled when answered).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Addrs {
    pub(crate) v4: Box<[Ipv4Addr]>,
    pub(crate) v6: Box<[Ipv6Addr]>,
}

/// Lower-cases a name for use as a table key (DNS names compare case-insensitively, ASCII only).
pub(crate) fn key_of(name: &str) -> Box<[u8]> {
    name.trim_end_matches('.')
        .bytes()
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

/// Encodes `labels` joined by dots as an uncompressed wire-format name, or None if a label is
/// empty or longer than 63 octets or the whole name longer than 255 octets.
pub(crate) fn wire_name(dotted: &str) -> Option<Box<[u8]>> {
    let dotted = dotted.trim_end_matches('.');
    let mut out = Vec::with_capacity(dotted.len() + 2);
    if !dotted.is_empty() {
        for label in dotted.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    (out.len() <= 255).then(|| out.into_boxed_slice())
}

/// Inserts or replaces a value; readers see the old value or the new one, never neither.
fn put<K, V>(index: &scc::HashIndex<K, V>, key: K, value: V)
where
    K: 'static + Clone + Eq + std::hash::Hash,
    V: 'static,
{
    match index.entry_sync(key) {
        scc::hash_index::Entry::Occupied(mut o) => o.update(value),
        scc::hash_index::Entry::Vacant(v) => {
            v.insert_entry(value);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One endpoint's entry in a network table.
#[derive(Debug, Clone)]
pub(crate) struct EndpointEntry {
    /// The sandbox the endpoint belongs to.
    pub(crate) sandbox: String,
    /// The sandbox's name (answered, and the PTR target `name.network.`).
    pub(crate) name: String,
    /// Network-scoped aliases.
    pub(crate) aliases: Vec<String>,
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
}

impl EndpointEntry {
    fn keys(&self) -> BTreeSet<Box<[u8]>> {
        std::iter::once(&self.name)
            .chain(self.aliases.iter())
            .map(|n| key_of(n))
            .filter(|k| !k.is_empty() && k.len() <= MAX_NAME_LEN)
            .collect()
    }

    fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.ipv6.map(IpAddr::V6))
    }
}

/// Writer-side bookkeeping of a network table (behind a mutex; queries never take it).
#[derive(Debug, Default)]
struct Book {
    endpoints: HashMap<String, EndpointEntry>,
    by_key: HashMap<Box<[u8]>, BTreeSet<String>>,
}

/// The names of one network.
pub(crate) struct NetTable {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The network name lower-cased, matched against `name.network` queries.
    pub(crate) name_key: Box<[u8]>,
    pub(crate) internal: bool,
    /// User-defined network: its endpoints are registered and its sandboxes get the embedded server.
    pub(crate) embedded: bool,
    names: scc::HashIndex<Box<[u8]>, Arc<Addrs>>,
    ptrs: scc::HashIndex<IpAddr, Arc<[u8]>>,
    book: Mutex<Book>,
}

impl std::fmt::Debug for NetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetTable")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("internal", &self.internal)
            .field("embedded", &self.embedded)
            .finish_non_exhaustive()
    }
}

impl NetTable {
    pub(crate) fn new(id: &str, name: &str, internal: bool, embedded: bool) -> NetTable {
        NetTable {
            id: id.to_owned(),
            name: name.to_owned(),
            name_key: key_of(name),
            internal,
            embedded,
            names: scc::HashIndex::new(),
            ptrs: scc::HashIndex::new(),
            book: Mutex::new(Book::default()),
        }
    }

    /// Addresses of `key` (lower-case) on this network.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<Addrs>> {
        self.names.peek_with(key, |_, v| v.clone())
    }

    /// The PTR target (wire format) of `addr` on this network.
    pub(crate) fn ptr(&self, addr: &IpAddr) -> Option<Arc<[u8]>> {
        self.ptrs.peek_with(addr, |_, v| v.clone())
    }

    /// Number of endpoints registered.
    pub(crate) fn endpoint_count(&self) -> usize {
        lock(&self.book).endpoints.len()
    }

    /// Registers (or replaces) an endpoint. Costs O(its names), whatever the table's size.
    pub(crate) fn upsert(&self, endpoint_id: &str, entry: EndpointEntry) {
        let mut book = lock(&self.book);
        let mut touched: BTreeSet<Box<[u8]>> = entry.keys();
        if let Some(old) = book.endpoints.remove(endpoint_id) {
            for k in old.keys() {
                if let Some(set) = book.by_key.get_mut(&k) {
                    set.remove(endpoint_id);
                    if set.is_empty() {
                        book.by_key.remove(&k);
                    }
                }
                touched.insert(k);
            }
            for a in old.addrs() {
                self.ptrs.remove_sync(&a);
            }
        }
        for k in entry.keys() {
            book.by_key
                .entry(k)
                .or_default()
                .insert(endpoint_id.to_owned());
        }
        if let Some(target) = wire_name(&format!("{}.{}", entry.name, self.name)) {
            let target: Arc<[u8]> = Arc::from(target);
            for a in entry.addrs() {
                put(&self.ptrs, a, target.clone());
            }
        }
        book.endpoints.insert(endpoint_id.to_owned(), entry);
        self.publish(&book, touched);
    }

    /// Removes an endpoint; returns its entry if it was registered.
    pub(crate) fn remove(&self, endpoint_id: &str) -> Option<EndpointEntry> {
        let mut book = lock(&self.book);
        let old = book.endpoints.remove(endpoint_id)?;
        let keys = old.keys();
        for k in &keys {
            if let Some(set) = book.by_key.get_mut(k) {
                set.remove(endpoint_id);
                if set.is_empty() {
                    book.by_key.remove(k);
                }
            }
        }
        for a in old.addrs() {
            self.ptrs.remove_sync(&a);
        }
        self.publish(&book, keys);
        Some(old)
    }

    /// The endpoint ids of a sandbox on this network.
    pub(crate) fn endpoints_of(&self, sandbox: &str) -> Vec<String> {
        lock(&self.book)
            .endpoints
            .iter()
            .filter(|(_, e)| e.sandbox == sandbox)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The entry of one endpoint.
    pub(crate) fn entry(&self, endpoint_id: &str) -> Option<EndpointEntry> {
        lock(&self.book).endpoints.get(endpoint_id).cloned()
    }

    /// Recomputes the published answers of `keys` from the bookkeeping.
    fn publish(&self, book: &Book, keys: BTreeSet<Box<[u8]>>) {
        for k in keys {
            match book.by_key.get(&k) {
                None => {
                    self.names.remove_sync(&k);
                }
                Some(ids) => {
                    let mut v4 = Vec::new();
                    let mut v6 = Vec::new();
                    for id in ids {
                        if let Some(e) = book.endpoints.get(id) {
                            v4.extend(e.ipv4);
                            v6.extend(e.ipv6);
                        }
                    }
                    let addrs = Arc::new(Addrs {
                        v4: v4.into_boxed_slice(),
                        v6: v6.into_boxed_slice(),
                    });
                    put(&self.names, k, addrs);
                }
            }
        }
    }
}

/// One network as a sandbox sees it: the table, plus the sandbox's own link aliases on it
/// (`--link target:alias` on a user-defined network is a name only this sandbox resolves).
#[derive(Debug, Clone)]
pub(crate) struct ViewNet {
    pub(crate) table: Arc<NetTable>,
    /// Link alias (lower-case) to target name (lower-case).
    pub(crate) links: HashMap<Box<[u8]>, Box<[u8]>>,
}

/// What one sandbox's embedded server answers from: swapped as a whole on connect and disconnect.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// User-defined networks in attach order.
    pub(crate) nets: Vec<ViewNet>,
    /// Whether unknown names are forwarded (some attached network is not internal).
    pub(crate) forward: bool,
    /// The upstream servers (at most [`crate::MAX_UPSTREAMS`]).
    pub(crate) upstreams: Arc<[SocketAddr]>,
}

/// The result of looking a name up in a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameLookup {
    /// The name is known; these are its addresses on the first network that has it.
    Found(Arc<Addrs>),
    /// The name is not known to any attached network.
    Unknown,
}

impl View {
    /// Resolves a lower-case dotted name (no final dot) the way Docker does: the whole name on
    /// every attached network first, then `a.b` as name `a` on network `b` (network names may
    /// contain dots, so each split is tried, longest name first). On each level the sandbox's
    /// link aliases come before the network's names.
    pub(crate) fn resolve(&self, key: &[u8]) -> NameLookup {
        if let Some(a) = self.resolve_level(key, None) {
            return NameLookup::Found(a);
        }
        let mut end = key.len();
        while let Some(dot) = key[..end].iter().rposition(|&b| b == b'.') {
            let (name, net) = (&key[..dot], &key[dot + 1..]);
            if let Some(a) = self.resolve_level(name, Some(net)) {
                return NameLookup::Found(a);
            }
            end = dot;
        }
        NameLookup::Unknown
    }

    fn resolve_level(&self, name: &[u8], net: Option<&[u8]>) -> Option<Arc<Addrs>> {
        if name.is_empty() {
            return None;
        }
        let on = |v: &&ViewNet| net.is_none_or(|n| *v.table.name_key == *n);
        for v in self.nets.iter().filter(on) {
            if let Some(target) = v.links.get(name) {
                if let Some(a) = v.table.get(target) {
                    return Some(a);
                }
            }
        }
        for v in self.nets.iter().filter(on) {
            if v.links.contains_key(name) {
                continue;
            }
            if let Some(a) = v.table.get(name) {
                return Some(a);
            }
        }
        None
    }

    /// The PTR target (wire format) of an address on an attached network.
    pub(crate) fn ptr(&self, addr: &IpAddr) -> Option<Arc<[u8]>> {
        self.nets.iter().find_map(|v| v.table.ptr(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sb: &str, name: &str, aliases: &[&str], v4: &str) -> EndpointEntry {
        EndpointEntry {
            sandbox: sb.into(),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ipv4: Some(v4.parse().unwrap()),
            ipv6: None,
        }
    }

    fn view(tables: &[&Arc<NetTable>]) -> View {
        View {
            nets: tables
                .iter()
                .map(|t| ViewNet {
                    table: Arc::clone(t),
                    links: HashMap::new(),
                })
                .collect(),
            forward: true,
            upstreams: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn names_aliases_and_network_suffix() {
        let t = Arc::new(NetTable::new("n1", "My.Net", false, true));
        t.upsert("e1", entry("s1", "Web", &["front"], "10.0.0.2"));
        t.upsert("e2", entry("s2", "db", &["front"], "10.0.0.3"));
        let v = view(&[&t]);
        let found = |k: &str| match v.resolve(&key_of(k)) {
            NameLookup::Found(a) => a.v4.to_vec(),
            NameLookup::Unknown => vec![],
        };
        assert_eq!(found("web"), vec!["10.0.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(found("WEB.my.net"), found("web"));
        assert_eq!(found("front").len(), 2);
        assert_eq!(found("front.my.net").len(), 2);
        assert!(found("web.other").is_empty());
        assert!(found("my.net").is_empty());
        // PTR goes to name.network
        let p = v.ptr(&"10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(&*p, &*wire_name("Web.My.Net").unwrap());
        // removal updates shared aliases
        t.remove("e2");
        assert_eq!(found("front").len(), 1);
        assert!(found("db").is_empty());
        assert!(v.ptr(&"10.0.0.3".parse().unwrap()).is_none());
    }

    #[test]
    fn upsert_replaces_old_names() {
        let t = Arc::new(NetTable::new("n1", "net", false, true));
        t.upsert("e1", entry("s1", "old", &[], "10.0.0.2"));
        t.upsert("e1", entry("s1", "new", &[], "10.0.0.2"));
        let v = view(&[&t]);
        assert_eq!(v.resolve(b"old"), NameLookup::Unknown);
        assert!(matches!(v.resolve(b"new"), NameLookup::Found(_)));
        assert_eq!(t.endpoint_count(), 1);
    }

    #[test]
    fn links_are_local_and_take_precedence() {
        let t = Arc::new(NetTable::new("n1", "net", false, true));
        t.upsert("e1", entry("s1", "db", &[], "10.0.0.2"));
        t.upsert("e2", entry("s2", "cache", &[], "10.0.0.3"));
        let mut v = view(&[&t]);
        v.nets[0].links.insert(key_of("cache"), key_of("db"));
        match v.resolve(b"cache") {
            NameLookup::Found(a) => assert_eq!(a.v4[0], "10.0.0.2".parse::<Ipv4Addr>().unwrap()),
            NameLookup::Unknown => panic!("link alias not resolved"),
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(&*wire_name("a.bc").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(&*wire_name("").unwrap(), b"\x00");
        assert!(wire_name("a..b").is_none());
        assert!(wire_name(&"x".repeat(64)).is_none());
    }
}
