//! The node's durable store (redb): receipts it has signed with the signed
//! requests they answer, its descriptor sequence counter, and (for the trust
//! plane) reputation.
//!
//! Receipts are written by one writer thread that commits in groups: every
//! caller of [`Store::put_receipt`] waits until a commit that includes its
//! receipt has been made durable (fsync), but concurrent callers share one
//! commit. So a receipt the node has returned to a requester survives a
//! crash, and throughput under load does not pay one fsync per request.
//!
//! A stored receipt is never overwritten: the write transaction that would
//! store a second receipt for the same requester and request id refuses it
//! ([`StoreError::ReceiptExists`]), and the first stands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use errand_core::PeerId;
use errand_core::receipt::{RequestId, SignedReceipt};
use errand_core::request::SignedRequest;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

/// Keyed by requester ‖ request id: a nonce is single-use per requester,
/// so nobody can burn another requester's nonces, or read its receipts.
const RECEIPTS: TableDefinition<'_, &[u8; 48], &[u8]> = TableDefinition::new("receipts-v2");
const REQUESTS: TableDefinition<'_, &[u8; 48], &[u8]> = TableDefinition::new("requests-v2");

/// The key of `requester`'s request `id`.
fn key(requester: &PeerId, id: &RequestId) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..32].copy_from_slice(requester.as_bytes());
    k[32..].copy_from_slice(&id.0);
    k
}
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const BLOBS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("blobs");

/// Most receipts committed in one group.
const MAX_GROUP: usize = 256;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open store {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A read or write failed.
    #[error("store: {0}")]
    Db(String),
    /// The writer thread is gone (the node is shutting down).
    #[error("store writer has stopped")]
    Stopped,
    /// A stored receipt no longer decodes (disk corruption).
    #[error("stored receipt {0} is corrupt")]
    Corrupt(RequestId),
    /// A receipt for this requester's request id is already stored; it is
    /// never overwritten.
    #[error("a receipt for request {id} of {requester} is already stored")]
    ReceiptExists {
        /// The requester.
        requester: PeerId,
        /// The request id.
        id: RequestId,
    },
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// What the writer thread tells one caller of [`Store::put_receipt`].
#[derive(Debug, Clone)]
enum Put {
    /// Stored durably.
    Stored,
    /// A receipt with this key was already there; nothing was written.
    Exists,
    /// The commit failed.
    Failed(String),
}

type Job = (
    [u8; 48],
    Vec<u8>,
    Option<Vec<u8>>,
    tokio::sync::oneshot::Sender<Put>,
);

/// The writer thread and its queue. Dropping the last handle closes the
/// queue and waits for the thread, which holds the database, to finish:
/// after a `Store` is dropped the database can be reopened at once.
struct Writer {
    queue: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop.
        drop(self.queue.get_mut().map(Option::take));
        if let Ok(Some(t)) = self.thread.get_mut().map(Option::take) {
            let _ = t.join();
        }
    }
}

/// The node's store (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// redb's page cache. Its default (1 GiB) let a busy executor's memory
/// grow with its receipt history (about 1.5 KiB per receipt in the soak
/// run); lookups touch the newest pages, which this easily holds.
const CACHE_BYTES: usize = 16 << 20;

impl Store {
    /// Opens (or creates) `dir/errand.redb`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("errand.redb");
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| open_err(e.to_string()))?,
        );
        {
            let tx = db.begin_write().map_err(|e| open_err(e.to_string()))?;
            tx.open_table(RECEIPTS)
                .map_err(|e| open_err(e.to_string()))?;
            tx.open_table(REQUESTS)
                .map_err(|e| open_err(e.to_string()))?;
            tx.open_table(META).map_err(|e| open_err(e.to_string()))?;
            tx.open_table(BLOBS).map_err(|e| open_err(e.to_string()))?;
            tx.commit().map_err(|e| open_err(e.to_string()))?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let wdb = db.clone();
        let thread = std::thread::Builder::new()
            .name("errand-store".into())
            .spawn(move || writer(wdb, rx))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            db,
            writer: Arc::new(Writer {
                queue: std::sync::Mutex::new(Some(tx)),
                thread: std::sync::Mutex::new(Some(thread)),
            }),
        })
    }

    /// Stores a receipt, with the signed request it answers, durably;
    /// returns once both are on disk. Refuses (and writes nothing) if a
    /// receipt for the same requester and request id is already stored.
    pub async fn put_receipt(
        &self,
        r: &SignedReceipt,
        request: Option<&SignedRequest>,
    ) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let queue = self
            .writer
            .queue
            .lock()
            .map_err(|_| StoreError::Stopped)?
            .clone()
            .ok_or(StoreError::Stopped)?;
        queue
            .send((
                key(&r.body().requester, &r.body().request_id),
                r.to_bytes(),
                request.map(SignedRequest::to_bytes),
                done,
            ))
            .map_err(|_| StoreError::Stopped)?;
        match wait.await {
            Ok(Put::Stored) => Ok(()),
            Ok(Put::Exists) => Err(StoreError::ReceiptExists {
                requester: r.body().requester,
                id: r.body().request_id,
            }),
            Ok(Put::Failed(e)) => Err(StoreError::Db(e)),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    /// The receipt for `requester`'s request `id`, if stored.
    pub fn get_receipt(
        &self,
        requester: &PeerId,
        id: &RequestId,
    ) -> Result<Option<SignedReceipt>, StoreError> {
        self.get(RECEIPTS, requester, id, SignedReceipt::decode)
    }

    /// The signed request `requester`'s receipt `id` answers, if stored.
    pub fn get_request(
        &self,
        requester: &PeerId,
        id: &RequestId,
    ) -> Result<Option<SignedRequest>, StoreError> {
        self.get(REQUESTS, requester, id, SignedRequest::decode)
    }

    fn get<T, E>(
        &self,
        table: TableDefinition<'_, &[u8; 48], &[u8]>,
        requester: &PeerId,
        id: &RequestId,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(table).map_err(db)?;
        match t.get(&key(requester, id)).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(v.value())
                .map(Some)
                .map_err(|_| StoreError::Corrupt(*id)),
        }
    }

    /// Every stored receipt with its request, in request-id order, passed
    /// to `f` one at a time (the store may be large); stops at `f`'s first
    /// error.
    pub fn for_each_receipt<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(SignedReceipt, Option<SignedRequest>) -> Result<(), E>,
    ) -> Result<(), E> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(RECEIPTS).map_err(db)?;
        let q = tx.open_table(REQUESTS).map_err(db)?;
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&k.value()[32..]);
            let id = RequestId(raw);
            let receipt = SignedReceipt::decode(v.value()).map_err(|_| StoreError::Corrupt(id))?;
            let request = match q.get(k.value()).map_err(db)? {
                Some(r) => {
                    Some(SignedRequest::decode(r.value()).map_err(|_| StoreError::Corrupt(id))?)
                }
                None => None,
            };
            f(receipt, request)?;
        }
        Ok(())
    }

    /// Whether a receipt for `requester`'s request `id` is stored.
    pub fn has_receipt(&self, requester: &PeerId, id: &RequestId) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(RECEIPTS).map_err(db)?;
        Ok(t.get(&key(requester, id)).map_err(db)?.is_some())
    }

    /// How many receipts are stored.
    pub fn receipt_count(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(RECEIPTS).map_err(db)?;
        t.len().map_err(db)
    }

    /// Reserves `n` descriptor sequence numbers, strictly above every one
    /// handed out before (also across restarts) and at least `floor` (the
    /// current time in ms, so a wiped store still moves forward).
    pub fn reserve_seqs(&self, n: u64, floor: u64) -> Result<std::ops::Range<u64>, StoreError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        let start = {
            let mut t = tx.open_table(META).map_err(db)?;
            let last = t
                .get("last_seq")
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0);
            let start = last.saturating_add(1).max(floor);
            t.insert("last_seq", start.saturating_add(n).saturating_sub(1))
                .map_err(db)?;
            start
        };
        tx.commit().map_err(db)?;
        Ok(start..start.saturating_add(n))
    }

    /// Stores a small blob durably (e.g. serialized reputation).
    pub fn put_blob(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        tx.open_table(BLOBS)
            .map_err(db)?
            .insert(name, value)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// A stored blob.
    pub fn get_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(BLOBS).map_err(db)?;
        Ok(t.get(name).map_err(db)?.map(|v| v.value().to_vec()))
    }
}

/// The group-commit loop: take one job, sweep up every job already queued,
/// commit them together durably, then answer every waiter. A job whose key
/// already holds a receipt (stored before, or earlier in the same group) is
/// skipped and answered [`Put::Exists`].
fn writer(db: Arc<Database>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let mut fresh = vec![true; group.len()];
        let result = (|| -> Result<(), String> {
            let mut tx = db.begin_write().map_err(|e| e.to_string())?;
            tx.set_durability(Durability::Immediate)
                .map_err(|e| e.to_string())?;
            {
                let mut t = tx.open_table(RECEIPTS).map_err(|e| e.to_string())?;
                let mut q = tx.open_table(REQUESTS).map_err(|e| e.to_string())?;
                for ((k, bytes, request, _), fresh) in group.iter().zip(&mut fresh) {
                    if t.get(k).map_err(|e| e.to_string())?.is_some() {
                        *fresh = false;
                        continue;
                    }
                    t.insert(k, bytes.as_slice()).map_err(|e| e.to_string())?;
                    if let Some(r) = request {
                        q.insert(k, r.as_slice()).map_err(|e| e.to_string())?;
                    }
                }
            }
            tx.commit().map_err(|e| e.to_string())
        })();
        if let Err(e) = &result {
            tracing::error!(error = %e, receipts = group.len(), "failed to store receipts");
        }
        for ((_, _, _, done), fresh) in group.into_iter().zip(fresh) {
            let _ = done.send(match (&result, fresh) {
                (Err(e), _) => Put::Failed(e.clone()),
                (Ok(()), true) => Put::Stored,
                (Ok(()), false) => Put::Exists,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::testing;

    #[tokio::test]
    async fn receipts_persist_across_reopen_and_seqs_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let r = SignedReceipt::sign(
            testing::receipt(&testing::key(1), &testing::key(2)),
            &testing::key(1),
        )
        .unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let q = testing::signed_request(&testing::key(1), &testing::key(2));
            s.put_receipt(&r, Some(&q)).await.unwrap();
            assert_eq!(s.receipt_count().unwrap(), 1);
            assert_eq!(s.reserve_seqs(3, 10).unwrap(), 10..13);
            assert_eq!(s.reserve_seqs(1, 5).unwrap(), 13..14);
        }
        let s = Store::open(dir.path()).unwrap();
        let (me, id) = (r.body().requester, r.body().request_id);
        assert_eq!(s.get_receipt(&me, &id).unwrap().unwrap(), r);
        let q = testing::signed_request(&testing::key(1), &testing::key(2));
        assert_eq!(s.get_request(&me, &id).unwrap().unwrap(), q);
        // Another requester's nonce is another key.
        let other = testing::key(9).peer_id();
        assert!(!s.has_receipt(&other, &id).unwrap());
        assert!(s.get_receipt(&other, &id).unwrap().is_none());
        let mut listed = Vec::new();
        s.for_each_receipt::<StoreError>(|r, q| {
            listed.push((r, q));
            Ok(())
        })
        .unwrap();
        assert_eq!(listed, vec![(r.clone(), Some(q))]);
        assert!(s.has_receipt(&me, &id).unwrap());
        assert_eq!(s.reserve_seqs(1, 0).unwrap(), 14..15);
        assert_eq!(s.reserve_seqs(1, 1000).unwrap(), 1000..1001);
    }

    #[tokio::test]
    async fn a_dropped_store_can_be_reopened_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let s = Store::open(dir.path()).unwrap();
            let s2 = s.clone();
            drop(s);
            drop(s2);
        }
    }

    #[tokio::test]
    async fn a_stored_receipt_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (exec, req) = (testing::key(1), testing::key(2));
        let first = SignedReceipt::sign(testing::receipt(&exec, &req), &exec).unwrap();
        let mut body = testing::receipt(&exec, &req);
        body.fuel_consumed += 1;
        let second = SignedReceipt::sign(body, &exec).unwrap();
        assert_ne!(first, second);
        s.put_receipt(&first, None).await.unwrap();
        let (me, id) = (first.body().requester, first.body().request_id);
        match s.put_receipt(&second, None).await {
            Err(StoreError::ReceiptExists { requester, id: got }) => {
                assert_eq!((requester, got), (me, id))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.get_receipt(&me, &id).unwrap().unwrap(), first);
        // Racing puts of one key, in one commit group or several: exactly
        // one lands, and what is stored is that one.
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..32u64 {
            let s = s.clone();
            let (exec, req) = (exec.clone(), req.clone());
            tasks.push(tokio::spawn(async move {
                let mut body = testing::receipt(&exec, &req);
                body.fuel_consumed = i;
                let r = SignedReceipt::sign(body, &exec).unwrap();
                (s.put_receipt(&r, None).await, r)
            }));
        }
        let mut stored = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (Ok(()), r) => stored.push(r),
                (Err(StoreError::ReceiptExists { .. }), _) => {}
                (Err(e), _) => panic!("{e}"),
            }
        }
        assert_eq!(stored.len(), 1);
        assert_eq!(s.get_receipt(&me, &id).unwrap().unwrap(), stored[0]);
        assert_eq!(s.receipt_count().unwrap(), 1);
    }

    #[tokio::test]
    async fn concurrent_puts_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..100u8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut body = testing::receipt(&testing::key(1), &testing::key(2));
                body.request_id = RequestId([i; 16]);
                let r = SignedReceipt::sign(body, &testing::key(1)).unwrap();
                s.put_receipt(&r, None).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.receipt_count().unwrap(), 100);
    }
}
