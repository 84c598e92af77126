//! The billing tables and the queries on them, written once for both backends. Every rule
//! that must hold under concurrency is a single statement: one customer per user (primary
//! key), one row per event id, a subscription view never overwritten by an older fetch
//! (conditional upsert), one message per notice key.

use diesel::{prelude::*, upsert::excluded};
use portico_runtime::{db::DbConnection, on_backend};

/// Diesel's view of the schema (see `migrations/`).
pub mod schema {
    diesel::table! {
        customers (user_id) {
            user_id -> Text,
            customer_id -> Text,
            email -> Text,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        subscriptions (id) {
            id -> Text,
            user_id -> Text,
            customer_id -> Text,
            plan -> Text,
            price -> Text,
            status -> Text,
            current_period_end -> Nullable<BigInt>,
            cancel_at_period_end -> Bool,
            fetched_at -> BigInt,
            updated_at -> BigInt,
        }
    }

    diesel::table! {
        events (id) {
            id -> Text,
            #[sql_name = "type"]
            kind -> Text,
            created -> BigInt,
            livemode -> Bool,
            payload -> Text,
            received_at -> BigInt,
            processed_at -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        notices (key) {
            key -> Text,
            user_id -> Text,
            outbox_id -> Text,
            created_at -> BigInt,
        }
    }
}

use schema::{customers, events, notices, subscriptions};

/// A user's provider customer.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    pub user_id: String,
    pub customer_id: String,
    pub email: String,
    pub created_at: i64,
}

impl CustomerRow {
    /// The user's customer.
    pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<CustomerRow>> {
        customers::table.find(user_id).first(conn).optional()
    }

    /// The customer with a provider id.
    pub fn by_customer(conn: &mut DbConnection, customer_id: &str) -> QueryResult<Option<CustomerRow>> {
        customers::table
            .filter(customers::customer_id.eq(customer_id))
            .first(conn)
            .optional()
    }

    /// Records the row unless the user has a customer already; answers the user's customer
    /// either way (so racing first checkouts agree on one).
    pub fn insert_or_get(self, conn: &mut DbConnection) -> QueryResult<CustomerRow> {
        on_backend!(conn, |c| diesel::insert_into(customers::table)
            .values(&self)
            .on_conflict_do_nothing()
            .execute(c))?;
        customers::table.find(&self.user_id).first(conn)
    }
}

/// A subscription as last fetched.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = subscriptions)]
pub struct SubscriptionRow {
    pub id: String,
    pub user_id: String,
    pub customer_id: String,
    pub plan: String,
    pub price: String,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl SubscriptionRow {
    /// Stores this view unless one fetched later is stored already: true when it was stored.
    /// One statement, so two events processed at once for one subscription can only ever
    /// leave the newer view.
    pub fn upsert_if_newer(&self, conn: &mut DbConnection) -> QueryResult<bool> {
        // `FilterDsl` puts the WHERE on the DO UPDATE (the prelude's `filter` is for queries).
        use diesel::query_dsl::methods::FilterDsl;
        let changed = on_backend!(conn, |c| FilterDsl::filter(
            diesel::insert_into(subscriptions::table)
                .values(self)
                .on_conflict(subscriptions::id)
                .do_update()
                .set((
                    subscriptions::user_id.eq(excluded(subscriptions::user_id)),
                    subscriptions::customer_id.eq(excluded(subscriptions::customer_id)),
                    subscriptions::plan.eq(excluded(subscriptions::plan)),
                    subscriptions::price.eq(excluded(subscriptions::price)),
                    subscriptions::status.eq(excluded(subscriptions::status)),
                    subscriptions::current_period_end.eq(excluded(subscriptions::current_period_end)),
                    subscriptions::cancel_at_period_end.eq(excluded(subscriptions::cancel_at_period_end)),
                    subscriptions::fetched_at.eq(excluded(subscriptions::fetched_at)),
                    subscriptions::updated_at.eq(excluded(subscriptions::updated_at)),
                )),
            subscriptions::fetched_at.le(excluded(subscriptions::fetched_at)),
        )
        .execute(c))?;
        Ok(changed > 0)
    }

    /// A user's subscriptions, newest first.
    pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<SubscriptionRow>> {
        subscriptions::table
            .filter(subscriptions::user_id.eq(user_id))
            .order(subscriptions::updated_at.desc())
            .load(conn)
    }

    /// One subscription.
    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SubscriptionRow>> {
        subscriptions::table.find(id).first(conn).optional()
    }

    /// Subscriptions not yet ended, for the reconciliation pass.
    pub fn live_ids(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
        subscriptions::table
            .filter(subscriptions::status.ne_all(["canceled", "incomplete_expired"]))
            .select(subscriptions::id)
            .load(conn)
    }
}

/// A received event.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub created: i64,
    pub livemode: bool,
    pub payload: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

impl EventRow {
    /// Records the event unless its id is known: true when it is new.
    pub fn insert_once(&self, conn: &mut DbConnection) -> QueryResult<bool> {
        let inserted = on_backend!(conn, |c| diesel::insert_into(events::table)
            .values(self)
            .on_conflict_do_nothing()
            .execute(c))?;
        Ok(inserted > 0)
    }

    /// One event.
    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EventRow>> {
        events::table.find(id).first(conn).optional()
    }

    /// Marks it processed.
    pub fn mark_processed(conn: &mut DbConnection, id: &str, at: i64) -> QueryResult<()> {
        diesel::update(events::table.find(id))
            .set(events::processed_at.eq(Some(at)))
            .execute(conn)
            .map(|_| ())
    }
}

/// Takes a notice key (`receipt:<invoice>`, `payment_failed:<invoice>:<attempt>`): true when
/// it was free, so the message the caller queues next (in the same transaction) is the only
/// one. [`note_outbox_id`] then records which outbox row carries it.
pub fn take_notice(conn: &mut DbConnection, key: &str, user_id: &str, now: i64) -> QueryResult<bool> {
    let taken = on_backend!(conn, |c| diesel::insert_into(notices::table)
        .values((
            notices::key.eq(key),
            notices::user_id.eq(user_id),
            notices::outbox_id.eq(""),
            notices::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(taken > 0)
}

/// Records the outbox row (and so the `Message-ID`) of a notice.
pub fn note_outbox_id(conn: &mut DbConnection, key: &str, outbox_id: &str) -> QueryResult<()> {
    diesel::update(notices::table.find(key))
        .set(notices::outbox_id.eq(outbox_id))
        .execute(conn)
        .map(|_| ())
}

/// Whether a notice key is taken.
pub fn notice_taken(conn: &mut DbConnection, key: &str) -> QueryResult<bool> {
    Ok(notices::table.find(key).count().get_result::<i64>(conn)? > 0)
}

/// Everything stored about a user (account erasure): rows removed. Subscriptions and the
/// customer go; the provider keeps its own records (invoices are legal records).
pub fn erase_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<u64> {
    let mut removed = diesel::delete(subscriptions::table.filter(subscriptions::user_id.eq(user_id))).execute(conn)?;
    removed += diesel::delete(notices::table.filter(notices::user_id.eq(user_id))).execute(conn)?;
    removed += diesel::delete(customers::table.find(user_id)).execute(conn)?;
    Ok(removed as u64)
}
