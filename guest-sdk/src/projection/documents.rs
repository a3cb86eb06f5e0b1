//! [`Documents`]: the typed read model a projection writes, over a
//! [`DocumentStore`] that is the host's `documents` import in a component and an
//! in-memory map in native tests.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// Where documents live: JSON bytes by table and key. The component's store calls
/// the host; [`MemoryDocuments`] is the native tests' stand-in. A trait object
/// rather than a `cfg` switch, so that the same [`Documents`] code runs in both.
/// Public only through `__private::projection_wire` (the benchmark's native
/// reference runs a projection over [`MemoryDocuments`]).
pub trait DocumentStore {
    /// The document at `key` in `table`, if there is one.
    fn get(&self, table: &str, key: &str) -> Option<Vec<u8>>;
    /// Stores `data` (JSON text) at `key` in `table`, replacing any.
    fn put(&mut self, table: &str, key: &str, data: &[u8]);
    /// Removes the document at `key` in `table`, if there is one.
    fn delete(&mut self, table: &str, key: &str);
}

/// The documents of every table, in memory, ordered by table and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryDocuments {
    tables: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl MemoryDocuments {
    /// The documents of `table`, by key (empty for a table never written).
    pub(crate) fn table(&self, table: &str) -> impl Iterator<Item = (&str, &[u8])> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(key, data)| (key.as_str(), data.as_slice()))
    }

    /// Every document as (table, key, JSON text), by table and key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str, &[u8])> {
        self.tables.iter().flat_map(|(table, documents)| {
            documents
                .iter()
                .map(move |(key, data)| (table.as_str(), key.as_str(), data.as_slice()))
        })
    }
}

impl DocumentStore for MemoryDocuments {
    fn get(&self, table: &str, key: &str) -> Option<Vec<u8>> {
        self.tables.get(table)?.get(key).cloned()
    }

    fn put(&mut self, table: &str, key: &str, data: &[u8]) {
        self.tables
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_owned(), data.to_vec());
    }

    fn delete(&mut self, table: &str, key: &str) {
        if let Some(documents) = self.tables.get_mut(table) {
            documents.remove(key);
            // An emptied table is no different from one never written.
            if documents.is_empty() {
                self.tables.remove(table);
            }
        }
    }
}

/// A projection's read model during one batch: JSON documents by table and key.
///
/// Reads see the batch's earlier writes; the host keeps the batch's writes only if
/// the whole batch applies. Documents are stored as their serde JSON, so any
/// `Serialize` type can be written and read back as itself or as a
/// [`serde_json::Value`].
///
/// Within a batch each document is read from the store at most once and written to
/// it at most once, when the batch has applied: a document every event touches (a
/// total, say) costs one read and one write per batch, not per event.
///
/// Every method refuses, with a panic, a table that is not one of the projection's
/// [`TABLES`](crate::Projection::TABLES) and an empty key: bugs in the projection,
/// which its tests find. The host also limits the size of keys and documents (by
/// default 1 KiB and 1 MiB) and traps on larger ones.
pub struct Documents<'a> {
    store: &'a mut dyn DocumentStore,
    tables: &'static [&'static str],
    /// Per table (in the order of `tables`), the documents this batch has read or
    /// written.
    batch: Vec<HashMap<String, Cached>>,
}

/// A document as the batch knows it: `None` for no document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cached {
    /// As the store has it.
    Read(Option<Vec<u8>>),
    /// Changed by the batch, not yet written to the store.
    Written(Option<Vec<u8>>),
}

impl Cached {
    fn document(&self) -> Option<&[u8]> {
        match self {
            Cached::Read(document) | Cached::Written(document) => document.as_deref(),
        }
    }
}

impl<'a> Documents<'a> {
    /// Documents in `store`, limited to `tables`.
    pub(crate) fn new(store: &'a mut dyn DocumentStore, tables: &'static [&'static str]) -> Self {
        let batch = tables.iter().map(|_| HashMap::new()).collect();
        Self {
            store,
            tables,
            batch,
        }
    }

    /// Writes the batch's changes to the store: the end of a batch that applied.
    pub(crate) fn finish(self) {
        for (table, documents) in self.tables.iter().zip(self.batch) {
            for (key, cached) in documents {
                match cached {
                    Cached::Read(_) => {}
                    Cached::Written(Some(data)) => self.store.put(table, &key, &data),
                    Cached::Written(None) => self.store.delete(table, &key),
                }
            }
        }
    }

    /// The document at `key` in `table` as a `T`, if there is one; an error, naming
    /// the document, if it does not decode as a `T`.
    #[track_caller]
    pub fn get<T: DeserializeOwned>(
        &mut self,
        table: &str,
        key: &str,
    ) -> Result<Option<T>, String> {
        let Some(data) = self.get_raw(table, key) else {
            return Ok(None);
        };
        serde_json::from_slice(&data).map(Some).map_err(|error| {
            format!("document {key:?} of table {table} cannot be decoded: {error}")
        })
    }

    /// The document at `key` in `table` as the JSON text stored, if there is one.
    #[track_caller]
    pub fn get_raw(&mut self, table: &str, key: &str) -> Option<Vec<u8>> {
        let table_index = self.check_place(table, key);
        let documents = &mut self.batch[table_index];
        if let Some(cached) = documents.get(key) {
            return cached.document().map(<[u8]>::to_vec);
        }
        let document = self.store.get(table, key);
        documents.insert(key.to_owned(), Cached::Read(document.clone()));
        document
    }

    /// Stores `value`'s serde JSON as the document at `key` in `table`, replacing
    /// any.
    ///
    /// # Panics
    /// If `value` cannot be serialized as JSON (a map with non-string keys, say): a
    /// bug in the projection's document type.
    #[track_caller]
    pub fn put<T: Serialize + ?Sized>(&mut self, table: &str, key: &str, value: &T) {
        let data = serde_json::to_vec(value).unwrap_or_else(|error| {
            panic!("document {key:?} of table {table} cannot be encoded as JSON: {error}")
        });
        self.store_checked(table, key, &data);
    }

    /// Stores `json`, which must be one JSON value, as the document at `key` in
    /// `table`, replacing any.
    ///
    /// # Panics
    /// If `json` is not JSON text.
    #[track_caller]
    pub fn put_raw(&mut self, table: &str, key: &str, json: &[u8]) {
        if let Err(error) = serde_json::from_slice::<IgnoredAny>(json) {
            panic!("document {key:?} of table {table} is not JSON: {error}");
        }
        self.store_checked(table, key, json);
    }

    /// Removes the document at `key` in `table`, if there is one.
    #[track_caller]
    pub fn delete(&mut self, table: &str, key: &str) {
        self.record(table, key, None);
    }

    /// Reads the document at `key` in `table` (`None` if there is none), and stores
    /// what `change` makes of it: `Some` is put, `None` deleted.
    ///
    /// ```
    /// # use tally_sdk::Documents;
    /// fn count(docs: &mut Documents<'_>, key: &str) -> Result<(), String> {
    ///     docs.update("counts", key, |count: Option<u64>| Some(count.unwrap_or(0) + 1))
    /// }
    /// ```
    #[track_caller]
    pub fn update<T, F>(&mut self, table: &str, key: &str, change: F) -> Result<(), String>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> Option<T>,
    {
        match change(self.get(table, key)?) {
            Some(value) => self.put(table, key, &value),
            None => self.delete(table, key),
        }
        Ok(())
    }

    /// Stores JSON text already checked, in a declared table.
    #[track_caller]
    fn store_checked(&mut self, table: &str, key: &str, json: &[u8]) {
        self.record(table, key, Some(json.to_vec()));
    }

    /// Records the batch's new version of a document (`None`: deleted).
    #[track_caller]
    fn record(&mut self, table: &str, key: &str, document: Option<Vec<u8>>) {
        let table_index = self.check_place(table, key);
        let documents = &mut self.batch[table_index];
        match documents.get_mut(key) {
            Some(cached) => *cached = Cached::Written(document),
            None => {
                documents.insert(key.to_owned(), Cached::Written(document));
            }
        }
    }

    /// The index of `table` among the projection's tables. Panics unless it is one
    /// of them and `key` is not empty: the host would trap on either, with a less
    /// precise message.
    #[track_caller]
    fn check_place(&self, table: &str, key: &str) -> usize {
        let Some(table_index) = self.tables.iter().position(|declared| *declared == table) else {
            panic!(
                "table {table:?} is not one of the projection's TABLES {:?}",
                self.tables
            );
        };
        assert!(!key.is_empty(), "a document key in table {table} is empty");
        table_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const TABLES: &[&str] = &["accounts", "totals"];

    #[test]
    fn reads_see_earlier_writes_and_deletes() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        assert_eq!(docs.get::<Value>("accounts", "a").unwrap(), None);
        docs.put("accounts", "a", &json!({"balance": 5}));
        assert_eq!(
            docs.get::<Value>("accounts", "a").unwrap(),
            Some(json!({"balance": 5}))
        );
        assert_eq!(docs.get_raw("accounts", "a").unwrap(), br#"{"balance":5}"#);
        docs.delete("accounts", "a");
        assert_eq!(docs.get::<Value>("accounts", "a").unwrap(), None);
        docs.finish();
        assert_eq!(store, MemoryDocuments::default());
    }

    /// A store that counts the calls it gets.
    #[derive(Default)]
    struct CountingStore {
        documents: MemoryDocuments,
        gets: std::cell::Cell<u32>,
        puts: u32,
        deletes: u32,
    }

    impl DocumentStore for CountingStore {
        fn get(&self, table: &str, key: &str) -> Option<Vec<u8>> {
            self.gets.set(self.gets.get() + 1);
            self.documents.get(table, key)
        }

        fn put(&mut self, table: &str, key: &str, data: &[u8]) {
            self.puts += 1;
            self.documents.put(table, key, data);
        }

        fn delete(&mut self, table: &str, key: &str) {
            self.deletes += 1;
            self.documents.delete(table, key);
        }
    }

    #[test]
    fn a_batch_reads_each_document_once_and_writes_it_once_at_its_end() {
        let mut store = CountingStore::default();
        store.documents.put("accounts", "gone", b"1");
        let mut docs = Documents::new(&mut store, TABLES);
        for _ in 0..5 {
            docs.update("totals", "n", |n: Option<u64>| Some(n.unwrap_or(0) + 1))
                .unwrap();
        }
        docs.put("accounts", "a", &1);
        docs.put("accounts", "a", &2);
        assert_eq!(docs.get::<u64>("accounts", "gone").unwrap(), Some(1));
        docs.delete("accounts", "gone");
        docs.finish();
        assert_eq!((store.gets.get(), store.puts, store.deletes), (2, 2, 1));
        let written: Vec<_> = store.documents.iter().collect();
        assert_eq!(
            written,
            [("accounts", "a", &b"2"[..]), ("totals", "n", &b"5"[..])]
        );
    }

    #[test]
    fn a_batch_that_does_not_finish_writes_nothing() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        docs.put("accounts", "a", &1);
        drop(docs);
        assert_eq!(store, MemoryDocuments::default());
    }

    #[test]
    fn update_puts_what_the_change_returns_and_deletes_on_none() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        for _ in 0..3 {
            docs.update("totals", "n", |n: Option<u64>| Some(n.unwrap_or(0) + 1))
                .unwrap();
        }
        assert_eq!(docs.get::<u64>("totals", "n").unwrap(), Some(3));
        docs.update("totals", "n", |_: Option<u64>| None).unwrap();
        assert_eq!(docs.get::<u64>("totals", "n").unwrap(), None);
    }

    #[test]
    fn a_document_of_another_shape_is_an_error_naming_it() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        docs.put("accounts", "a", "text");
        let error = docs.get::<u64>("accounts", "a").unwrap_err();
        assert!(
            error.starts_with("document \"a\" of table accounts cannot be decoded"),
            "{error}"
        );
    }

    #[test]
    #[should_panic(expected = "table \"audit\" is not one of the projection's TABLES")]
    fn an_undeclared_table_is_refused() {
        let mut store = MemoryDocuments::default();
        Documents::new(&mut store, TABLES).put("audit", "a", &1);
    }

    #[test]
    #[should_panic(expected = "a document key in table accounts is empty")]
    fn an_empty_key_is_refused() {
        let mut store = MemoryDocuments::default();
        Documents::new(&mut store, TABLES).get_raw("accounts", "");
    }

    #[test]
    #[should_panic(expected = "document \"a\" of table totals is not JSON")]
    fn raw_documents_must_be_json() {
        let mut store = MemoryDocuments::default();
        Documents::new(&mut store, TABLES).put_raw("totals", "a", b"{oops");
    }
}
