//! The transactional outbox: side effects that must happen exactly when a change commits
//! (a mail, an erasure request to another service) are written as rows in the same
//! transaction as the change, then delivered by a worker until they succeed.
//!
//! A crash between the commit and the delivery loses nothing: the row is still due. A worker
//! claims a row with a lease (one conditional UPDATE), so replicas never deliver the same row
//! at the same time, and a worker that dies mid-delivery hands the row over when its lease
//! runs out. Delivery is at least once; handlers are idempotent or deduplicate by the row id.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use diesel::prelude::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbConnection, DbError, Migrations, now_ms};

/// The outbox table's migrations; run them on a database with [`Db::migrate`].
pub const MIGRATIONS: Migrations = crate::embed_migrations!();

/// A claimed row is someone else's for this long (a delivery must finish within it).
const LEASE_MS: i64 = 60_000;
/// Rows claimed per pass.
const BATCH: i64 = 32;
/// Longest wait between two attempts of a failing row.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// How often due rows are looked for when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// Longest error text kept per row.
const MAX_ERROR_LEN: usize = 500;

mod schema {
    diesel::table! {
        outbox (id) {
            id -> Text,
            topic -> Text,
            payload -> Text,
            created_at -> BigInt,
            attempts -> Integer,
            next_attempt_at -> BigInt,
            claimed_until -> Nullable<BigInt>,
            delivered_at -> Nullable<BigInt>,
            last_error -> Nullable<Text>,
        }
    }
}

use schema::outbox;

/// Adds a row for `topic` inside the caller's transaction; it becomes due at once.
pub fn enqueue(conn: &mut DbConnection, topic: &str, payload: &str) -> QueryResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(&id),
            outbox::topic.eq(topic),
            outbox::payload.eq(payload),
            outbox::created_at.eq(now),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

/// One row handed to a handler.
#[derive(Clone, Debug)]
pub struct Item {
    /// The row id (stable across retries: a handler can deduplicate by it).
    pub id: String,
    /// What was enqueued.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i32,
}

/// A delivery function: `Ok` marks the row delivered, `Err` schedules a retry.
pub type Handler = Arc<dyn Fn(Item) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A write done in the same transaction that marks a row delivered (a handler's own
/// bookkeeping, such as "this event is processed"), so the two cannot disagree and a delivery
/// costs one write transaction, not two.
pub type OnDelivered = Arc<dyn Fn(&mut DbConnection, &Item) -> QueryResult<()> + Send + Sync>;

/// Counts of one topic's rows, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Not yet delivered.
    pub pending: i64,
    /// Delivered.
    pub delivered: i64,
}

/// The outbox of one database, with a wake-up for its workers.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    wake: Arc<Notify>,
}

impl Outbox {
    /// The outbox of `db` (whose migrations include [`MIGRATIONS`]).
    pub fn new(db: Db) -> Self {
        Outbox {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the workers (after committing a transaction that enqueued rows).
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }

    /// Delivers `topic`'s due rows with `handler` until `shutdown`: woken by [`Outbox::notify`],
    /// and every second in any case (rows enqueued by other replicas, retries coming due).
    pub fn spawn(&self, topic: &'static str, handler: Handler, shutdown: CancellationToken) {
        self.spawn_with(topic, handler, None, shutdown);
    }

    /// [`Outbox::spawn`], with `on_delivered` run in each successful delivery's transaction.
    pub fn spawn_with(
        &self,
        topic: &'static str,
        handler: Handler,
        on_delivered: Option<OnDelivered>,
        shutdown: CancellationToken,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let woken = me.wake.notified();
                if let Err(e) = me.deliver_due_with(topic, &handler, on_delivered.as_ref()).await {
                    tracing::warn!(topic, error = %e, "outbox pass failed");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = woken => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    /// One pass: claims up to a batch of due rows of `topic` and delivers them. Returns how
    /// many were delivered.
    pub async fn deliver_due(&self, topic: &'static str, handler: &Handler) -> Result<usize, DbError> {
        self.deliver_due_with(topic, handler, None).await
    }

    /// [`Outbox::deliver_due`], with `on_delivered` run in each successful delivery's
    /// transaction.
    pub async fn deliver_due_with(
        &self,
        topic: &'static str,
        handler: &Handler,
        on_delivered: Option<&OnDelivered>,
    ) -> Result<usize, DbError> {
        let claimed = self.claim(topic).await?;
        let mut delivered = 0;
        for item in claimed {
            let id = item.id.clone();
            let attempts = item.attempts;
            let delivered_item = on_delivered.map(|hook| (Arc::clone(hook), item.clone()));
            let outcome = handler(item).await;
            let now = now_ms();
            let ok = outcome.is_ok();
            metrics::counter!("portico_outbox_deliveries_total", "topic" => topic, "outcome" => if ok { "delivered" } else { "failed" })
                .increment(1);
            // Every write here goes through `Db::write`: on SQLite it queues on the one
            // writer's turn instead of meeting a concurrent writer in SQLite's busy handler,
            // which sleeps 1, 2, 5, 10 … ms between retries (the tail a webhook's intake saw).
            self.db
                .write(move |conn| {
                    let row = outbox::table.find(&id);
                    match outcome {
                        Ok(()) => {
                            if let Some((hook, item)) = &delivered_item {
                                hook(conn, item)?;
                            }
                            diesel::update(row)
                                .set((outbox::delivered_at.eq(now), outbox::claimed_until.eq(None::<i64>)))
                                .execute(conn)
                        }
                        Err(e) => {
                            let mut e = e;
                            e.truncate(e.floor_char_boundary(MAX_ERROR_LEN));
                            diesel::update(row)
                                .set((
                                    outbox::attempts.eq(attempts + 1),
                                    outbox::next_attempt_at.eq(now + backoff_ms(attempts + 1)),
                                    outbox::claimed_until.eq(None::<i64>),
                                    outbox::last_error.eq(e),
                                ))
                                .execute(conn)
                        }
                    }
                    .map_err(DbError::from)
                })
                .await?;
            if ok {
                delivered += 1;
            } else {
                tracing::warn!(topic, attempts = attempts + 1, "outbox delivery failed; will retry");
            }
        }
        Ok(delivered)
    }

    /// Reads the due rows (a read: no writer's turn is taken when nothing is due, which is
    /// most passes), then claims them in one write transaction.
    async fn claim(&self, topic: &'static str) -> Result<Vec<Item>, DbError> {
        let now = now_ms();
        let due: Vec<(String, String, i32)> = self
            .db
            .run(move |conn| {
                outbox::table
                    .filter(outbox::topic.eq(topic))
                    .filter(outbox::delivered_at.is_null())
                    .filter(outbox::next_attempt_at.le(now))
                    .filter(outbox::claimed_until.is_null().or(outbox::claimed_until.lt(now)))
                    .order(outbox::next_attempt_at.asc())
                    .limit(BATCH)
                    .select((outbox::id, outbox::payload, outbox::attempts))
                    .load(conn)
                    .map_err(DbError::from)
            })
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .write(move |conn| {
                let mut mine = Vec::with_capacity(due.len());
                for (id, payload, attempts) in due {
                    // The claim is a conditional UPDATE: of two workers that read the same due
                    // row, only one changes it.
                    let won = diesel::update(
                        outbox::table
                            .find(&id)
                            .filter(outbox::delivered_at.is_null())
                            .filter(outbox::claimed_until.is_null().or(outbox::claimed_until.lt(now))),
                    )
                    .set(outbox::claimed_until.eq(now + LEASE_MS))
                    .execute(conn)?;
                    if won == 1 {
                        mine.push(Item { id, payload, attempts });
                    }
                }
                Ok(mine)
            })
            .await
    }

    /// How many of `topic`'s rows are pending and delivered.
    pub async fn backlog(&self, topic: &'static str) -> Result<Backlog, DbError> {
        self.db
            .run(move |conn| {
                let pending = outbox::table
                    .filter(outbox::topic.eq(topic))
                    .filter(outbox::delivered_at.is_null())
                    .count()
                    .get_result(conn)?;
                let delivered = outbox::table
                    .filter(outbox::topic.eq(topic))
                    .filter(outbox::delivered_at.is_not_null())
                    .count()
                    .get_result(conn)?;
                Ok(Backlog { pending, delivered })
            })
            .await
    }
}

/// Removes rows delivered before `before` (retention).
pub fn purge_delivered(conn: &mut DbConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(outbox::table.filter(outbox::delivered_at.lt(before))).execute(conn)
}

/// Milliseconds before attempt `n + 1` of a row that failed `n` times: 2, 4, 8 … seconds,
/// at most an hour.
fn backoff_ms(failures: i32) -> i64 {
    let exp = u32::try_from(failures.clamp(1, 30)).unwrap_or(1);
    1000_i64.saturating_mul(1_i64 << exp.min(22)).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(super::backoff_ms(1), 2_000);
        assert_eq!(super::backoff_ms(2), 4_000);
        assert_eq!(super::backoff_ms(11), 2_048_000);
        assert_eq!(super::backoff_ms(12), 3_600_000);
        assert_eq!(super::backoff_ms(1000), 3_600_000);
    }
}
