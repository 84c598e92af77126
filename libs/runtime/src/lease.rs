//! Named leases: one holder at a time for periodic work that replicas sharing a database must
//! not do twice (billing's reconciliation, the alert evaluator). A lease is a row taken or
//! renewed with one conditional upsert, so two replicas asking at once cannot both get it; a
//! holder that dies keeps it only until it runs out, then another replica takes over.
//!
//! The table comes with the runtime's migrations ([`crate::outbox::MIGRATIONS`]). On SQLite
//! the single process sharing the file is the only one asking, so it always holds its leases.
//! Work done under a lease should still be safe to repeat (conditional updates): a holder
//! stalled past its lease may finish a pass while its successor starts one.

use diesel::prelude::*;

use crate::{db::DbConnection, on_backend};

mod schema {
    diesel::table! {
        leases (name) {
            name -> Text,
            holder -> Text,
            held_until -> BigInt,
        }
    }
}

use schema::leases;

/// Takes `name` for `holder` until `until` if nobody holds it at `now` (an expired lease is
/// free). For once-per-period work: the holder itself cannot take it again before it runs out.
pub fn take(conn: &mut DbConnection, name: &str, holder: &str, now: i64, until: i64) -> QueryResult<bool> {
    upsert(conn, name, holder, now, until, false)
}

/// Takes or renews `name` for `holder` until `until`: granted when the lease is free, expired,
/// or already `holder`'s. For a leader that keeps its role while it keeps renewing.
pub fn hold(conn: &mut DbConnection, name: &str, holder: &str, now: i64, until: i64) -> QueryResult<bool> {
    upsert(conn, name, holder, now, until, true)
}

/// Gives `name` up if `holder` has it (a clean shutdown hands over at once).
pub fn release(conn: &mut DbConnection, name: &str, holder: &str) -> QueryResult<bool> {
    let n = diesel::delete(
        leases::table
            .filter(leases::name.eq(name))
            .filter(leases::holder.eq(holder)),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Who holds `name` and until when, if anyone ever took it.
pub fn holder(conn: &mut DbConnection, name: &str) -> QueryResult<Option<(String, i64)>> {
    leases::table
        .filter(leases::name.eq(name))
        .select((leases::holder, leases::held_until))
        .first(conn)
        .optional()
}

fn upsert(conn: &mut DbConnection, name: &str, holder: &str, now: i64, until: i64, renew: bool) -> QueryResult<bool> {
    use diesel::{query_dsl::methods::FilterDsl, sql_types::Bool, upsert::excluded};
    // Free when expired; with `renew`, also when it is already the holder's.
    let free = leases::held_until
        .le(now)
        .or(leases::holder.eq(holder).and(renew.into_sql::<Bool>()));
    let n = on_backend!(conn, |c| FilterDsl::filter(
        diesel::insert_into(leases::table)
            .values((
                leases::name.eq(name),
                leases::holder.eq(holder),
                leases::held_until.eq(until),
            ))
            .on_conflict(leases::name)
            .do_update()
            .set((
                leases::holder.eq(excluded(leases::holder)),
                leases::held_until.eq(excluded(leases::held_until)),
            )),
        free,
    )
    .execute(c))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::db::{Db, DbError};

    #[tokio::test]
    async fn one_holder_at_a_time_and_takeover_after_expiry() {
        for backend in portico_testkit::backends() {
            let test_db = portico_testkit::TestDb::new(backend, "lease");
            let db = Db::connect(&test_db.url, crate::outbox::MIGRATIONS, 4).await.unwrap();
            let ask =
                |f: fn(&mut DbConnection, &str, &str, i64, i64) -> QueryResult<bool>, who: &'static str, now: i64| {
                    let db = db.clone();
                    async move {
                        db.write(move |c| f(c, "job", who, now, now + 100).map_err(DbError::from))
                            .await
                            .unwrap()
                    }
                };
            assert!(ask(hold, "a", 0).await, "{backend:?}: a free lease is granted");
            assert!(!ask(hold, "b", 50).await, "{backend:?}: held by a until 100");
            assert!(ask(hold, "a", 60).await, "{backend:?}: the holder renews (to 160)");
            assert!(!ask(take, "a", 70).await, "{backend:?}: take does not renew");
            assert!(!ask(hold, "b", 150).await, "{backend:?}: still a's");
            assert!(ask(hold, "b", 160).await, "{backend:?}: expired: b takes over");
            assert!(!ask(hold, "a", 170).await, "{backend:?}: a lost it");
            let released = db
                .write(|c| release(c, "job", "b").map_err(DbError::from))
                .await
                .unwrap();
            assert!(released);
            assert!(ask(take, "a", 171).await, "{backend:?}: released: free at once");
        }
    }

    #[tokio::test]
    async fn concurrent_askers_get_it_once() {
        for backend in portico_testkit::backends() {
            let test_db = portico_testkit::TestDb::new(backend, "lease_race");
            let db = Db::connect(&test_db.url, crate::outbox::MIGRATIONS, 8).await.unwrap();
            let asks = (0..16).map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| hold(c, "leader", &format!("r{i}"), 1_000, 2_000).map_err(DbError::from))
                        .await
                        .unwrap()
                })
            });
            let granted = futures_util::future::join_all(asks)
                .await
                .into_iter()
                .filter(|r| *r.as_ref().unwrap())
                .count();
            assert_eq!(granted, 1, "{backend:?}");
        }
    }
}
