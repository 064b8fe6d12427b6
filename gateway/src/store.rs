//! The /c1 conversation store: SQLite (bundled) in WAL mode, migrated at start.
//!
//! Only this module touches rusqlite. Calls run on the blocking pool; one exchange (the
//! user's new messages and the assistant's answer) is written in ONE transaction, so a
//! conversation never holds half an exchange. A per-conversation async lock keeps the
//! exchanges of concurrent requests in order.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::fault::Fault;

#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub model: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: i64,
}

#[derive(Debug, Serialize)]
pub struct Conversation {
    #[serde(flatten)]
    pub summary: Summary,
    pub messages: Vec<Value>,
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        user_id TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX conversations_owner ON conversations (tenant, user_id, updated_at);
    CREATE TABLE messages (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    );"];

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Set only on the per-request view of [`Store::with_fault`]: every read and write of
    /// that request fails as a broken disk would.
    failing: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a /c1 exchange acknowledged to the caller survives power loss, not only a
        // process crash (NORMAL in WAL mode may lose the last commits on power loss); the
        // cost is one fsync per commit (ARCHITECTURE.md, "Durability").
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            conn.execute_batch(&format!(
                "BEGIN; {m}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))?;
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            locks: Arc::new(Mutex::new(HashMap::new())),
            failing: false,
        })
    }

    /// The store as one request sees it: with an injected [`Fault::Storage`], a view whose
    /// calls fail (the shared store and every other request are untouched).
    pub fn with_fault(&self, fault: Option<Fault>) -> Store {
        Store {
            failing: fault == Some(Fault::Storage),
            ..self.clone()
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.failing {
            return Err(StoreError("injected storage failure".into()));
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(|e| StoreError(format!("storage task failed: {e}")))?
    }

    /// Holds a conversation's exchange lock; concurrent requests to it queue here.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock();
            // Drop locks nobody holds any more, so the map stays as small as the traffic.
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(id.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// The stored messages of a conversation owned by (tenant, user), or None.
    pub async fn history(
        &self,
        tenant: &str,
        user: &str,
        id: &str,
    ) -> Result<Option<Vec<Value>>, StoreError> {
        self.recent_history(tenant, user, id, usize::MAX).await
    }

    /// The newest stored messages of a conversation whose stored JSON fits in `max_bytes`
    /// (C1_MAX_HISTORY_BYTES), starting at a user turn: older turns are dropped rather than
    /// growing the upstream request without bound (and failing the conversation forever).
    /// Only the messages kept are read into memory.
    pub async fn recent_history(
        &self,
        tenant: &str,
        user: &str,
        id: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<Value>>, StoreError> {
        let (tenant, user, id) = (tenant.to_owned(), user.to_owned(), id.to_owned());
        self.run(move |c| {
            let owned: Option<String> = c
                .query_row(
                    "SELECT id FROM conversations WHERE id = ?1 AND tenant = ?2 AND user_id = ?3",
                    params![id, tenant, user],
                    |r| r.get(0),
                )
                .optional()?;
            if owned.is_none() {
                return Ok(None);
            }
            let mut stmt = c.prepare_cached(
                "SELECT length(CAST(body AS BLOB)), body FROM messages
                 WHERE conversation_id = ?1 ORDER BY seq DESC",
            )?;
            let mut rows = stmt.query(params![id])?;
            let mut out = Vec::new();
            let mut total = 0usize;
            while let Some(r) = rows.next()? {
                let len: i64 = r.get(0)?;
                total = total.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                if total > max_bytes {
                    break;
                }
                let body: String = r.get(1)?;
                out.push(serde_json::from_str(&body).unwrap_or(Value::Null));
            }
            out.reverse();
            if total > max_bytes {
                // Cut at a turn boundary: a kept history never opens with an answer or a tool
                // result whose question was dropped.
                let first_user = out
                    .iter()
                    .position(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                    .unwrap_or(out.len());
                out.drain(..first_user);
            }
            Ok(Some(out))
        })
        .await
    }

    /// Appends one exchange in one transaction; creates the conversation when `id` is new.
    pub async fn append(
        &self,
        tenant: &str,
        user: &str,
        id: &str,
        model: &str,
        messages: Vec<Value>,
    ) -> Result<(), StoreError> {
        let (tenant, user, id, model) = (
            tenant.to_owned(),
            user.to_owned(),
            id.to_owned(),
            model.to_owned(),
        );
        self.run(move |c| {
            let tx = c.transaction()?;
            let t = now();
            let owner: Option<(String, String)> = tx
                .query_row(
                    "SELECT tenant, user_id FROM conversations WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if owner.is_some_and(|(t2, u2)| t2 != tenant || u2 != user) {
                return Err(StoreError("conversation belongs to another owner".into()));
            }
            tx.execute(
                "INSERT INTO conversations (id, tenant, user_id, model, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at, model = excluded.model",
                params![id, tenant, user, model, t],
            )?;
            let next: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE conversation_id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            for (i, m) in messages.iter().enumerate() {
                tx.execute(
                    "INSERT INTO messages (conversation_id, seq, body) VALUES (?1, ?2, ?3)",
                    params![id, next + i as i64, m.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn list(&self, tenant: &str, user: &str) -> Result<Vec<Summary>, StoreError> {
        self.list_page(tenant, user, 1000, None).await
    }

    /// One page of a user's conversations, newest first: at most `limit`, after the
    /// conversation `after` (the cursor: the last id of the previous page). A cursor that is
    /// not one of this user's conversations gives an empty page, as an unknown id does: another
    /// user's id must not work as a position (it would tell that the id exists).
    pub async fn list_page(
        &self,
        tenant: &str,
        user: &str,
        limit: u32,
        after: Option<String>,
    ) -> Result<Vec<Summary>, StoreError> {
        let (tenant, user) = (tenant.to_owned(), user.to_owned());
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT c.id, c.model, c.created_at, c.updated_at,
                        (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)
                 FROM conversations c WHERE c.tenant = ?1 AND c.user_id = ?2
                   AND (?3 IS NULL OR (c.updated_at, c.id) <
                        (SELECT updated_at, id FROM conversations
                         WHERE id = ?3 AND tenant = ?1 AND user_id = ?2))
                 ORDER BY c.updated_at DESC, c.id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![tenant, user, after, limit], |r| {
                Ok(Summary {
                    id: r.get(0)?,
                    model: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                    message_count: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn get(
        &self,
        tenant: &str,
        user: &str,
        id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(messages) = self.history(tenant, user, id).await? else {
            return Ok(None);
        };
        // A direct lookup by id, not a search in the (bounded) list: a user with more
        // conversations than one list page still gets each of them.
        let (tenant, user, id) = (tenant.to_owned(), user.to_owned(), id.to_owned());
        let summary = self
            .run(move |c| {
                Ok(c.query_row(
                    "SELECT c.id, c.model, c.created_at, c.updated_at,
                            (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)
                     FROM conversations c WHERE c.id = ?1 AND c.tenant = ?2 AND c.user_id = ?3",
                    params![id, tenant, user],
                    |r| {
                        Ok(Summary {
                            id: r.get(0)?,
                            model: r.get(1)?,
                            created_at: r.get(2)?,
                            updated_at: r.get(3)?,
                            message_count: r.get(4)?,
                        })
                    },
                )
                .optional()?)
            })
            .await?;
        Ok(summary.map(|summary| Conversation { summary, messages }))
    }

    pub async fn delete(&self, tenant: &str, user: &str, id: &str) -> Result<bool, StoreError> {
        let (tenant, user, id) = (tenant.to_owned(), user.to_owned(), id.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "DELETE FROM conversations WHERE id = ?1 AND tenant = ?2 AND user_id = ?3",
                params![id, tenant, user],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Readiness: a real committed write of one row in the main database (not a TEMP
    /// table, which lives elsewhere), so a full or read-only disk makes the gateway not ready.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.run(|c| {
            let tx = c.transaction()?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS readyz_probe (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
                 INSERT INTO readyz_probe (id, n) VALUES (1, 1)
                   ON CONFLICT (id) DO UPDATE SET n = n + 1;",
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn exchanges_are_scoped_ordered_and_deletable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.sqlite3")).unwrap();
        store
            .append(
                "t",
                "u",
                "c1",
                "m",
                vec![
                    json!({"role": "user", "content": "1"}),
                    json!({"role": "assistant", "content": "2"}),
                ],
            )
            .await
            .unwrap();
        store
            .append(
                "t",
                "u",
                "c1",
                "m",
                vec![json!({"role": "user", "content": "3"})],
            )
            .await
            .unwrap();
        let h = store.history("t", "u", "c1").await.unwrap().unwrap();
        assert_eq!(
            h.iter()
                .map(|m| m["content"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        assert!(store.history("t", "other", "c1").await.unwrap().is_none());
        assert!(store.history("t2", "u", "c1").await.unwrap().is_none());
        // another user cannot write into it either
        store
            .append(
                "t",
                "intruder",
                "c1",
                "m",
                vec![json!({"role": "user", "content": "x"})],
            )
            .await
            .ok();
        assert_eq!(
            store.history("t", "u", "c1").await.unwrap().unwrap().len(),
            3
        );
        assert_eq!(store.list("t", "u").await.unwrap()[0].message_count, 3);
        assert!(!store.delete("t", "other", "c1").await.unwrap());
        assert!(store.delete("t", "u", "c1").await.unwrap());
        assert!(store.history("t", "u", "c1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.sqlite3");
        {
            let s = Store::open(&p).unwrap();
            s.append(
                "t",
                "u",
                "c",
                "m",
                vec![json!({"role": "user", "content": "kept"})],
            )
            .await
            .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(
            s.history("t", "u", "c").await.unwrap().unwrap()[0]["content"],
            "kept"
        );
        s.check_writable().await.unwrap();
    }

    /// A full disk as SQLite sees it (`max_page_count` reached: SQLITE_FULL on the next new
    /// page) makes the probe fail; a TEMP-table probe would still have passed.
    #[tokio::test]
    async fn the_readiness_probe_is_a_real_write_and_fails_on_a_full_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite3");
        let s = Store::open(&path).unwrap();
        s.check_writable().await.unwrap();
        s.check_writable().await.unwrap();
        let n: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT n FROM readyz_probe WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "each probe commits a write another connection sees");

        let full = Store::open(&dir.path().join("full.sqlite3")).unwrap();
        {
            let c = full.conn.lock();
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            c.pragma_update(None, "max_page_count", pages).unwrap();
        }
        assert!(full.check_writable().await.is_err());
    }
    /// Issue 15 "also from reading": WAL with `synchronous=FULL` (2), so an acknowledged /c1
    /// exchange survives power loss, not only a process crash.
    #[tokio::test]
    async fn the_store_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("w.sqlite3")).unwrap();
        let c = s.conn.lock();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }
}
