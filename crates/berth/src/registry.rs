//! In-memory indexes of live objects: by id and by name, with Docker's lookup order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Objects by id, with a name index. Exact ids and names are found by hash (one comparison
/// whatever the number of objects: every connect looks up a sandbox and a network); the ordered
/// index serves listings and id prefixes.
pub(crate) struct Registry<T> {
    by_id: BTreeMap<String, Arc<T>>,
    exact: HashMap<String, Arc<T>>,
    by_name: HashMap<String, String>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            by_id: BTreeMap::new(),
            exact: HashMap::new(),
            by_name: HashMap::new(),
        }
    }
}

/// Why a lookup found nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Nothing matches.
    None,
    /// An id prefix matches several objects.
    Ambiguous,
}

impl<T> Registry<T> {
    pub(crate) fn insert(&mut self, id: &str, name: &str, value: Arc<T>) {
        self.by_name.insert(name.to_owned(), id.to_owned());
        self.exact.insert(id.to_owned(), value.clone());
        self.by_id.insert(id.to_owned(), value);
    }

    pub(crate) fn remove(&mut self, id: &str, name: &str) {
        self.by_id.remove(id);
        self.exact.remove(id);
        if self.by_name.get(name).is_some_and(|i| i == id) {
            self.by_name.remove(name);
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<T>> {
        self.exact.get(id)
    }

    /// The object with exactly this name (no id or prefix matching).
    pub(crate) fn named(&self, name: &str) -> Option<&Arc<T>> {
        self.by_name.get(name).and_then(|id| self.exact.get(id))
    }

    /// The object with exactly this id, else exactly this name.
    pub(crate) fn exact(&self, key: &str) -> Option<&Arc<T>> {
        self.get(key).or_else(|| self.named(key))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.by_id.values()
    }

    /// Docker's lookup order: exact id, exact name, then a unique id prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<T>, Miss> {
        if key.is_empty() {
            return Err(Miss::None);
        }
        if let Some(v) = self.exact(key) {
            return Ok(v.clone());
        }
        let mut prefixed = self
            .by_id
            .range(key.to_owned()..)
            .take_while(|(id, _)| id.starts_with(key));
        match (prefixed.next(), prefixed.next()) {
            (Some((_, v)), None) => Ok(v.clone()),
            (Some(_), Some(_)) => Err(Miss::Ambiguous),
            _ => Err(Miss::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_id_then_name_then_unique_prefix() {
        let mut r = Registry::default();
        r.insert("abc123", "web", Arc::new(1));
        r.insert("abd456", "abc123x", Arc::new(2));
        r.insert("fff000", "abc", Arc::new(3));
        assert_eq!(*r.find("abc123").unwrap(), 1);
        assert_eq!(
            *r.find("abc").unwrap(),
            3,
            "an exact name wins over an id prefix"
        );
        assert_eq!(*r.find("web").unwrap(), 1);
        assert_eq!(*r.find("abd").unwrap(), 2);
        assert_eq!(r.find("ab").unwrap_err(), Miss::Ambiguous);
        assert_eq!(r.find("zzz").unwrap_err(), Miss::None);
        assert_eq!(r.find("").unwrap_err(), Miss::None);
        r.remove("fff000", "abc");
        assert!(r.get("fff000").is_none(), "gone from the exact index too");
        assert!(r.named("abc").is_none());
        assert_eq!(*r.find("abc").unwrap(), 1, "now a unique id prefix");
        let ids: Vec<i32> = r.values().map(|v| **v).collect();
        assert_eq!(ids, [1, 2], "listed in id order");
        assert_eq!(r.values().count(), 2);
        assert!(r.named("abd").is_none(), "names never match id prefixes");
        assert_eq!(**r.named("web").unwrap(), 1);
    }
}
