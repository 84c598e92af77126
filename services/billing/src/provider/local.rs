//! The embedded provider of `make run`: no network. Its checkout URL is a page of the gateway
//! (`/v1/billing/local/checkout/{session}`); confirming it creates the subscription here and
//! emits the events Stripe would (`customer.subscription.created`, `checkout.session.completed`,
//! `invoice.paid`), signed with the webhook secret and fed to the same handler as Stripe's.
//! Its objects live in the billing database (`local_*` tables), in Stripe's JSON shape.

use diesel::prelude::*;
use portico_runtime::db::{Db, DbError, now_ms};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{NewCheckout, Provider, ProviderError, ProviderResult, Session};

/// A local period: 30 days.
const PERIOD_MS: i64 = 30 * 86_400_000;

mod schema {
    diesel::table! {
        local_checkouts (id) {
            id -> Text,
            customer_id -> Text,
            user_id -> Text,
            price -> Text,
            status -> Text,
            subscription_id -> Nullable<Text>,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        local_subscriptions (id) {
            id -> Text,
            customer_id -> Text,
            user_id -> Text,
            price -> Text,
            status -> Text,
            current_period_end -> BigInt,
            cancel_at_period_end -> Bool,
            created_at -> BigInt,
        }
    }
}

use schema::{local_checkouts, local_subscriptions};

/// A local checkout, for its page.
#[derive(Clone, Debug, PartialEq, Eq, Queryable)]
pub struct LocalCheckoutRow {
    /// `cs_local_…`.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// User.
    pub user_id: String,
    /// Price id.
    pub price: String,
    /// `open` or `complete`.
    pub status: String,
    /// Set once complete.
    pub subscription_id: Option<String>,
    /// Created.
    pub created_at: i64,
}

#[derive(Clone, Debug, Queryable)]
struct LocalSubscriptionRow {
    id: String,
    customer_id: String,
    user_id: String,
    price: String,
    status: String,
    current_period_end: i64,
    cancel_at_period_end: bool,
    created_at: i64,
}

impl LocalSubscriptionRow {
    fn to_stripe(&self) -> Value {
        json!({
            "id": self.id,
            "object": "subscription",
            "customer": self.customer_id,
            "status": self.status,
            "cancel_at_period_end": self.cancel_at_period_end,
            "created": self.created_at / 1000,
            "metadata": {"user_id": self.user_id},
            "items": {"object": "list", "data": [{
                "object": "subscription_item",
                "price": {"id": self.price},
                "current_period_start": (self.current_period_end - PERIOD_MS) / 1000,
                "current_period_end": self.current_period_end / 1000,
            }]},
        })
    }
}

/// The local provider.
pub struct Local {
    db: Db,
    public_url: String,
    events: mpsc::UnboundedSender<Value>,
}

fn db_error(e: impl std::fmt::Display) -> ProviderError {
    ProviderError {
        status: Some(500),
        kind: "api_error".into(),
        code: None,
        param: None,
        message: format!("local provider: {e}"),
    }
}

fn missing(what: &str, id: &str) -> ProviderError {
    ProviderError {
        status: Some(404),
        kind: "invalid_request_error".into(),
        code: Some("resource_missing".into()),
        param: Some("id".into()),
        message: format!("No such {what}: '{id}'"),
    }
}

fn local_id(prefix: &str) -> String {
    format!("{prefix}_local_{}", uuid::Uuid::new_v4().simple())
}

impl Local {
    /// The provider over the billing database; the events it emits go to `events` (a task
    /// signs them and hands them to the webhook handler).
    pub fn new(db: Db, public_url: String, events: mpsc::UnboundedSender<Value>) -> Self {
        Local { db, public_url, events }
    }

    fn emit(&self, kind: &str, object: Value) {
        let event = json!({
            "id": local_id("evt"),
            "object": "event",
            "type": kind,
            "created": now_ms() / 1000,
            "livemode": false,
            "api_version": super::stripe::DEFAULT_API_VERSION,
            "data": {"object": object},
        });
        if self.events.send(event).is_err() {
            tracing::warn!(kind, "local provider: the event handler has stopped");
        }
    }

    /// A checkout, for its page.
    pub async fn checkout(&self, id: &str) -> Result<Option<LocalCheckoutRow>, DbError> {
        let id = id.to_string();
        self.db
            .run(move |conn| {
                local_checkouts::table
                    .find(&id)
                    .first::<LocalCheckoutRow>(conn)
                    .optional()
                    .map_err(DbError::from)
            })
            .await
    }

    /// Confirms a checkout as paid: the subscription starts, and the events follow. Confirming
    /// again changes nothing and emits nothing.
    pub async fn confirm(&self, id: &str, amount: i64, currency: &str) -> Result<Option<LocalCheckoutRow>, DbError> {
        let session_id = id.to_string();
        let now = now_ms();
        let sub_id = local_id("sub");
        let sid = sub_id.clone();
        let confirmed = self
            .db
            .write(move |conn| {
                let Some(row) = local_checkouts::table
                    .find(&session_id)
                    .first::<LocalCheckoutRow>(conn)
                    .optional()?
                else {
                    return Ok::<_, DbError>(None);
                };
                let taken = diesel::update(
                    local_checkouts::table
                        .find(&session_id)
                        .filter(local_checkouts::status.eq("open")),
                )
                .set((
                    local_checkouts::status.eq("complete"),
                    local_checkouts::subscription_id.eq(&sid),
                ))
                .execute(conn)?;
                if taken == 0 {
                    return Ok(Some((row, None)));
                }
                diesel::insert_into(local_subscriptions::table)
                    .values((
                        local_subscriptions::id.eq(&sid),
                        local_subscriptions::customer_id.eq(&row.customer_id),
                        local_subscriptions::user_id.eq(&row.user_id),
                        local_subscriptions::price.eq(&row.price),
                        local_subscriptions::status.eq("active"),
                        local_subscriptions::current_period_end.eq(now + PERIOD_MS),
                        local_subscriptions::cancel_at_period_end.eq(false),
                        local_subscriptions::created_at.eq(now),
                    ))
                    .execute(conn)?;
                let sub = local_subscriptions::table
                    .find(&sid)
                    .first::<LocalSubscriptionRow>(conn)?;
                Ok(Some((row, Some(sub))))
            })
            .await?;
        let Some((mut row, sub)) = confirmed else {
            return Ok(None);
        };
        if let Some(sub) = sub {
            row.status = "complete".into();
            row.subscription_id = Some(sub_id.clone());
            self.emit("customer.subscription.created", sub.to_stripe());
            self.emit(
                "checkout.session.completed",
                json!({
                    "id": row.id, "object": "checkout.session", "mode": "subscription",
                    "status": "complete", "payment_status": "paid",
                    "customer": row.customer_id, "client_reference_id": row.user_id,
                    "subscription": sub_id,
                }),
            );
            let invoice_id = local_id("in");
            self.emit(
                "invoice.paid",
                json!({
                    "id": invoice_id, "object": "invoice", "status": "paid",
                    "number": format!("LOCAL-{}", &invoice_id[9..17].to_ascii_uppercase()),
                    "customer": row.customer_id,
                    "amount_paid": amount, "currency": currency,
                    "attempt_count": 1,
                    "period_start": now / 1000, "period_end": (now + PERIOD_MS) / 1000,
                    "hosted_invoice_url": format!("{}/v1/billing/subscription", self.public_url),
                    "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub_id}},
                    "lines": {"data": [{"period": {"start": now / 1000, "end": (now + PERIOD_MS) / 1000}}]},
                }),
            );
        }
        Ok(Some(row))
    }
}

impl Provider for Local {
    fn create_customer<'a>(&'a self, _user_id: &'a str, _email: &'a str) -> ProviderResult<'a, String> {
        Box::pin(async move { Ok(local_id("cus")) })
    }

    fn create_checkout<'a>(&'a self, c: &'a NewCheckout) -> ProviderResult<'a, Session> {
        Box::pin(async move {
            let id = local_id("cs");
            let (sid, c2) = (id.clone(), c.clone());
            self.db
                .write(move |conn| {
                    diesel::insert_into(local_checkouts::table)
                        .values((
                            local_checkouts::id.eq(&sid),
                            local_checkouts::customer_id.eq(&c2.customer),
                            local_checkouts::user_id.eq(&c2.user_id),
                            local_checkouts::price.eq(&c2.price),
                            local_checkouts::status.eq("open"),
                            local_checkouts::created_at.eq(now_ms()),
                        ))
                        .execute(conn)
                        .map_err(DbError::from)
                })
                .await
                .map_err(db_error)?;
            Ok(Session {
                url: format!("{}/v1/billing/local/checkout/{id}", self.public_url),
                id,
            })
        })
    }

    fn create_portal<'a>(&'a self, _customer: &'a str, return_url: &'a str) -> ProviderResult<'a, String> {
        // No portal of its own: the app's billing page is where a customer manages the plan.
        Box::pin(async move { Ok(return_url.to_string()) })
    }

    fn subscription<'a>(&'a self, id: &'a str) -> ProviderResult<'a, Value> {
        Box::pin(async move {
            let sid = id.to_string();
            let row = self
                .db
                .run(move |conn| {
                    local_subscriptions::table
                        .find(&sid)
                        .first::<LocalSubscriptionRow>(conn)
                        .optional()
                        .map_err(DbError::from)
                })
                .await
                .map_err(db_error)?;
            row.map(|r| r.to_stripe()).ok_or_else(|| missing("subscription", id))
        })
    }

    fn cancel<'a>(&'a self, id: &'a str, at_period_end: bool) -> ProviderResult<'a, Value> {
        Box::pin(async move {
            let sid = id.to_string();
            let row = self
                .db
                .write(move |conn| {
                    let target = local_subscriptions::table.find(&sid);
                    let changed = if at_period_end {
                        diesel::update(target)
                            .set(local_subscriptions::cancel_at_period_end.eq(true))
                            .execute(conn)?
                    } else {
                        diesel::update(target)
                            .set(local_subscriptions::status.eq("canceled"))
                            .execute(conn)?
                    };
                    if changed == 0 {
                        return Ok::<_, DbError>(None);
                    }
                    Ok(Some(
                        local_subscriptions::table
                            .find(&sid)
                            .first::<LocalSubscriptionRow>(conn)?,
                    ))
                })
                .await
                .map_err(db_error)?
                .ok_or_else(|| missing("subscription", id))?;
            let object = row.to_stripe();
            let kind = if at_period_end {
                "customer.subscription.updated"
            } else {
                "customer.subscription.deleted"
            };
            self.emit(kind, object.clone());
            Ok(object)
        })
    }

    fn live_subscriptions(&self) -> ProviderResult<'_, Vec<String>> {
        Box::pin(async move {
            self.db
                .run(|conn| {
                    local_subscriptions::table
                        .select(local_subscriptions::id)
                        .load::<String>(conn)
                        .map_err(DbError::from)
                })
                .await
                .map_err(db_error)
        })
    }
}
