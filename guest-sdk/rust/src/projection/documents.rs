//! [`Documents`]: the typed read model a projection writes, over a
//! [`DocumentStore`] that is the host's `documents` import in a component and an
//! in-memory map in native tests.

use std::any::Any;
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
enum Cached {
    /// As the store has it.
    Read(Option<Vec<u8>>),
    /// Changed by the batch, not yet written to the store.
    Written(Option<Vec<u8>>),
    /// Decoded by [`Documents::modify`], and encoded again only when the batch ends
    /// (or when it is read as another type): changed, not yet written.
    Typed(TypedDocument),
}

impl Cached {
    /// The document's JSON text.
    fn document(&self) -> Option<Vec<u8>> {
        match self {
            Cached::Read(document) | Cached::Written(document) => document.clone(),
            Cached::Typed(typed) => typed.encode(),
        }
    }
}

/// A decoded document: an `Option<T>` (`None`: deleted) for the `T` that
/// [`Documents::modify`] was called with, and how to encode it.
struct TypedDocument {
    value: Box<dyn Any>,
    encode: fn(&dyn Any) -> Option<Vec<u8>>,
}

impl TypedDocument {
    fn new<T: Serialize + 'static>(value: Option<T>) -> TypedDocument {
        TypedDocument {
            value: Box::new(value),
            encode: encode_typed::<T>,
        }
    }

    fn encode(&self) -> Option<Vec<u8>> {
        (self.encode)(self.value.as_ref())
    }
}

/// Decodes the document at `key` in `table` (`None`: there is none) as a `T`; an error
/// names the document.
fn decode<T: DeserializeOwned>(
    table: &str,
    key: &str,
    data: Option<Vec<u8>>,
) -> Result<Option<T>, String> {
    let Some(data) = data else {
        return Ok(None);
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|error| format!("document {key:?} of table {table} cannot be decoded: {error}"))
}

/// Encodes the `Option<T>` in `value` as JSON text (`None` stays `None`).
///
/// # Panics
/// If `value` is not an `Option<T>` (the cache keeps the two together) or cannot be
/// encoded as JSON (a map with non-string keys, say): a bug in the document type.
fn encode_typed<T: Serialize + 'static>(value: &dyn Any) -> Option<Vec<u8>> {
    let value = value
        .downcast_ref::<Option<T>>()
        .expect("a typed document holds the type it was decoded as");
    value.as_ref().map(|value| {
        serde_json::to_vec(value)
            .unwrap_or_else(|error| panic!("a document cannot be encoded as JSON: {error}"))
    })
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
                let written = match cached {
                    Cached::Read(_) => continue,
                    Cached::Written(document) => document,
                    Cached::Typed(typed) => typed.encode(),
                };
                match written {
                    Some(data) => self.store.put(table, &key, &data),
                    None => self.store.delete(table, &key),
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
        let data = self.get_raw(table, key);
        decode(table, key, data)
    }

    /// The document at `key` in `table` as the JSON text stored, if there is one.
    #[track_caller]
    pub fn get_raw(&mut self, table: &str, key: &str) -> Option<Vec<u8>> {
        let table_index = self.check_place(table, key);
        let documents = &mut self.batch[table_index];
        if let Some(cached) = documents.get(key) {
            return cached.document();
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
        T: Serialize + DeserializeOwned + 'static,
        F: FnOnce(Option<T>) -> Option<T>,
    {
        self.modify(table, key, |document: &mut Option<T>| {
            *document = change(document.take());
        })
    }

    /// Changes the document at `key` in `table` in place, as a `T`: `change` gets
    /// `None` if there is none, and what it leaves is stored (`None` deletes it).
    /// Returns what `change` returns; an error, naming the document, if it does not
    /// decode as a `T`.
    ///
    /// The fast way to change a document many events of a batch touch: it is decoded
    /// once per batch and encoded once, when the batch ends, rather than at every
    /// `get` and `put`.
    ///
    /// ```
    /// # use tally_sdk::Documents;
    /// fn add(docs: &mut Documents<'_>, amount: i64) -> Result<i64, String> {
    ///     docs.modify("totals", "all", |total: &mut Option<i64>| {
    ///         let total = total.get_or_insert(0);
    ///         *total += amount;
    ///         *total
    ///     })
    /// }
    /// ```
    #[track_caller]
    pub fn modify<T, R>(
        &mut self,
        table: &str,
        key: &str,
        change: impl FnOnce(&mut Option<T>) -> R,
    ) -> Result<R, String>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let table_index = self.check_place(table, key);
        let typed = match self.batch[table_index].get_mut(key) {
            Some(Cached::Typed(typed)) if typed.value.is::<Option<T>>() => typed,
            _ => {
                let document = self.typed::<T>(table, key)?;
                let documents = &mut self.batch[table_index];
                documents.insert(key.to_owned(), Cached::Typed(document));
                match documents.get_mut(key) {
                    Some(Cached::Typed(typed)) => typed,
                    _ => unreachable!("the typed document was just cached"),
                }
            }
        };
        let value = typed
            .value
            .downcast_mut::<Option<T>>()
            .expect("a typed document holds the type it was decoded as");
        Ok(change(value))
    }

    /// The document at `key` in `table`, decoded as a `T` for [`Self::modify`].
    #[track_caller]
    fn typed<T>(&mut self, table: &str, key: &str) -> Result<TypedDocument, String>
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        // Not through `get`: the typed document replaces the cache entry, so the text
        // is not kept beside it.
        let table_index = self.check_place(table, key);
        let data = match self.batch[table_index].get(key) {
            Some(cached) => cached.document(),
            None => self.store.get(table, key),
        };
        Ok(TypedDocument::new(decode::<T>(table, key, data)?))
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
    fn modify_changes_a_document_in_place_and_writes_it_once() {
        let mut store = CountingStore::default();
        store.documents.put("totals", "n", b"10");
        let mut docs = Documents::new(&mut store, TABLES);
        for expected in 11..=15 {
            let now = docs
                .modify("totals", "n", |n: &mut Option<u64>| {
                    let n = n.get_or_insert(0);
                    *n += 1;
                    *n
                })
                .unwrap();
            assert_eq!(now, expected);
        }
        assert_eq!(docs.get::<u64>("totals", "n").unwrap(), Some(15));
        assert_eq!(docs.get_raw("totals", "n").unwrap(), b"15");
        docs.finish();
        assert_eq!((store.gets.get(), store.puts, store.deletes), (1, 1, 0));
        assert_eq!(store.documents.get("totals", "n").unwrap(), b"15");
    }

    #[test]
    fn modify_sees_puts_and_puts_replace_what_it_changed() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        docs.put("accounts", "a", &json!({"balance": 5}));
        docs.modify("accounts", "a", |account: &mut Option<Value>| {
            account.as_mut().unwrap()["balance"] = json!(6);
        })
        .unwrap();
        assert_eq!(
            docs.get::<Value>("accounts", "a").unwrap(),
            Some(json!({"balance": 6}))
        );
        docs.put("accounts", "a", &json!({"balance": 7}));
        let seen = docs
            .modify("accounts", "a", |account: &mut Option<Value>| {
                account.clone()
            })
            .unwrap();
        assert_eq!(seen, Some(json!({"balance": 7})));
        docs.modify("accounts", "b", |_: &mut Option<u64>| ())
            .unwrap();
        docs.modify("accounts", "a", |account: &mut Option<Value>| {
            *account = None
        })
        .unwrap();
        docs.finish();
        assert_eq!(store, MemoryDocuments::default(), "a deleted, b never made");
    }

    #[test]
    fn modify_as_another_type_decodes_what_was_changed() {
        let mut store = MemoryDocuments::default();
        let mut docs = Documents::new(&mut store, TABLES);
        docs.modify("totals", "n", |n: &mut Option<u64>| *n = Some(3))
            .unwrap();
        let as_value = docs
            .modify("totals", "n", |n: &mut Option<Value>| n.clone())
            .unwrap();
        assert_eq!(as_value, Some(json!(3)));
        let error = docs
            .modify("totals", "n", |_: &mut Option<String>| ())
            .unwrap_err();
        assert!(
            error.starts_with("document \"n\" of table totals cannot be decoded"),
            "{error}"
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
