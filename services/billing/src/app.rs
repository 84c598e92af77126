//! The billing application: checkout, portal, subscription state from the provider's newest
//! view, webhook events recorded once and processed from the outbox, entitlements, mail.

use std::sync::Arc;

use portico_mail::Mail;
use portico_proto::billing::ENTITLEMENTS_CACHE;
use portico_runtime::{
    cache::{Cache, CacheRegistry, CacheSettings},
    config::Secret,
    db::{Db, DbConnection, DbError, now_ms},
    outbox::{self, Handler, Item, OnDelivered, Outbox},
};
use serde_json::Value;

use crate::{
    domain::{self, Plan, Price, Status, SubscriptionView},
    error::BillingError,
    provider::{NewCheckout, Provider, local::Local},
    signature,
    store::{self, CustomerRow, EventRow, SubscriptionRow},
};

/// The outbox topic of received events (payload: the event id).
pub const EVENTS_TOPIC: &str = "billing.events";

/// A paid plan's provider price and what it costs.
#[derive(Clone, Debug)]
pub struct PaidPlan {
    /// Provider price id (`price_…`).
    pub price_id: String,
    /// What the plans endpoint shows.
    pub price: Price,
}

/// What the application is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Pro.
    pub pro: PaidPlan,
    /// Enterprise.
    pub enterprise: PaidPlan,
    /// How long `past_due` keeps entitling after the unpaid period ended.
    pub grace_ms: i64,
    /// Where clients reach Portico (success, cancel and return URLs).
    pub public_url: String,
    /// The webhook endpoint's secret (`whsec_…`).
    pub webhook_secret: Secret<String>,
}

impl Settings {
    fn paid(&self, plan: Plan) -> Option<&PaidPlan> {
        match plan {
            Plan::Free => None,
            Plan::Pro => Some(&self.pro),
            Plan::Enterprise => Some(&self.enterprise),
        }
    }

    fn plan_of_price(&self, price: &str) -> Option<Plan> {
        [Plan::Pro, Plan::Enterprise]
            .into_iter()
            .find(|p| self.paid(*p).is_some_and(|pp| pp.price_id == price))
    }
}

/// A subscription as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionState {
    /// The plan it is for (free when there is none).
    pub plan: Plan,
    /// Its status (none when there is no subscription).
    pub status: Option<Status>,
    /// End of the current period.
    pub current_period_end_ms: Option<i64>,
    /// Ends at the period end.
    pub cancel_at_period_end: bool,
}

/// The billing application. Clones share everything.
#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    provider: Arc<dyn Provider>,
    local: Option<Arc<Local>>,
    settings: Settings,
    outbox: Outbox,
    /// Named like the gateway's cache, only to invalidate its keys on every replica.
    entitlements: Cache<String>,
}

impl Billing {
    /// The application over `db` and `provider` (`local` too when it is the local one).
    pub fn new(
        db: Db,
        provider: Arc<dyn Provider>,
        local: Option<Arc<Local>>,
        settings: Settings,
        caches: &CacheSettings,
        registry: &CacheRegistry,
    ) -> Self {
        let entitlements = Cache::new(
            ENTITLEMENTS_CACHE,
            1,
            caches.l1_ttl,
            caches.ttl,
            caches.redis.clone(),
            registry,
        );
        Billing {
            inner: Arc::new(Inner {
                outbox: Outbox::new(db.clone()),
                db,
                provider,
                local,
                settings,
                entitlements,
            }),
        }
    }

    /// Its outbox (events and mail are delivered from it).
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// The local provider, when that is the provider.
    pub fn local(&self) -> Option<&Arc<Local>> {
        self.inner.local.as_ref()
    }

    /// The webhook endpoint's secret (the local provider signs with it).
    pub fn webhook_secret(&self) -> &str {
        self.inner.settings.webhook_secret.expose()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The plans on sale, cheapest first.
    pub fn plans(&self) -> Vec<(Plan, Price)> {
        let free = Price {
            amount: 0,
            currency: self.inner.settings.pro.price.currency.clone(),
            interval: self.inner.settings.pro.price.interval.clone(),
        };
        vec![
            (Plan::Free, free),
            (Plan::Pro, self.inner.settings.pro.price.clone()),
            (Plan::Enterprise, self.inner.settings.enterprise.price.clone()),
        ]
    }

    /// The plan a provider price is for (free for prices no plan sells).
    pub fn plan_of_price(&self, price: &str) -> Plan {
        self.inner.settings.plan_of_price(price).unwrap_or(Plan::Free)
    }

    /// Where a paid checkout lands.
    pub fn success_url(&self, session_id: &str) -> String {
        format!(
            "{}/billing/success?session_id={session_id}",
            self.inner.settings.public_url
        )
    }

    /// The price of a plan.
    pub fn price(&self, plan: Plan) -> Option<Price> {
        self.plans()
            .into_iter()
            .find(|(p, _)| *p == plan)
            .map(|(_, price)| price)
    }

    /// A checkout for `plan`: the user's customer is created on first use.
    pub async fn checkout(
        &self,
        user_id: &str,
        email: &str,
        plan: &str,
    ) -> Result<crate::provider::Session, BillingError> {
        let wanted = Plan::parse(plan).filter(|p| *p != Plan::Free);
        let Some(wanted) = wanted else {
            return Err(BillingError::NotPurchasable(plan.to_string()));
        };
        let current = self.entitlement(user_id).await?;
        if current.0 == wanted {
            return Err(BillingError::AlreadySubscribed(wanted.as_str()));
        }
        let customer = self.customer(user_id, email).await?;
        let paid = self
            .inner
            .settings
            .paid(wanted)
            .ok_or_else(|| BillingError::NotPurchasable(plan.to_string()))?;
        let base = &self.inner.settings.public_url;
        let checkout = NewCheckout {
            customer: customer.customer_id,
            user_id: user_id.to_string(),
            price: paid.price_id.clone(),
            // Stripe fills in the template.
            success_url: self.success_url("{CHECKOUT_SESSION_ID}"),
            cancel_url: format!("{base}/billing/canceled"),
        };
        let session = self.inner.provider.create_checkout(&checkout).await?;
        metrics::counter!("portico_billing_checkouts_total", "plan" => wanted.as_str()).increment(1);
        Ok(session)
    }

    async fn customer(&self, user_id: &str, email: &str) -> Result<CustomerRow, BillingError> {
        let uid = user_id.to_string();
        if let Some(c) = self
            .inner
            .db
            .run(move |conn| Ok::<_, BillingError>(CustomerRow::of_user(conn, &uid)?))
            .await?
        {
            return Ok(c);
        }
        let customer_id = self.inner.provider.create_customer(user_id, email).await?;
        let row = CustomerRow {
            user_id: user_id.to_string(),
            customer_id,
            email: email.to_string(),
            created_at: now_ms(),
        };
        self.inner
            .db
            .write(move |conn| Ok::<_, BillingError>(row.insert_or_get(conn)?))
            .await
    }

    /// A portal session for the user's customer.
    pub async fn portal(&self, user_id: &str) -> Result<String, BillingError> {
        let uid = user_id.to_string();
        let customer = self
            .inner
            .db
            .run(move |conn| Ok::<_, BillingError>(CustomerRow::of_user(conn, &uid)?))
            .await?
            .ok_or(BillingError::NoAccount)?;
        let return_url = format!("{}/billing", self.inner.settings.public_url);
        Ok(self
            .inner
            .provider
            .create_portal(&customer.customer_id, &return_url)
            .await?)
    }

    async fn rows_of(&self, user_id: &str) -> Result<Vec<SubscriptionRow>, BillingError> {
        let uid = user_id.to_string();
        self.inner
            .db
            .run(move |conn| Ok::<_, BillingError>(SubscriptionRow::of_user(conn, &uid)?))
            .await
    }

    /// The subscription that matters: the one entitling the best plan, else the newest.
    fn current<'a>(&self, rows: &'a [SubscriptionRow], now: i64) -> Option<&'a SubscriptionRow> {
        let entitling = rows
            .iter()
            .filter(|r| {
                Status::parse(&r.status)
                    .is_some_and(|s| s.entitles(r.current_period_end, self.inner.settings.grace_ms, now))
            })
            .max_by_key(|r| Plan::parse(&r.plan).unwrap_or(Plan::Free));
        entitling.or(rows.first())
    }

    fn state(row: Option<&SubscriptionRow>) -> SubscriptionState {
        match row {
            None => SubscriptionState {
                plan: Plan::Free,
                status: None,
                current_period_end_ms: None,
                cancel_at_period_end: false,
            },
            Some(r) => SubscriptionState {
                plan: Plan::parse(&r.plan).unwrap_or(Plan::Free),
                status: Status::parse(&r.status),
                current_period_end_ms: r.current_period_end,
                cancel_at_period_end: r.cancel_at_period_end,
            },
        }
    }

    /// The user's subscription.
    pub async fn subscription(&self, user_id: &str) -> Result<SubscriptionState, BillingError> {
        let rows = self.rows_of(user_id).await?;
        Ok(Self::state(self.current(&rows, now_ms())))
    }

    /// Cancels the user's current subscription at the period end, or now.
    pub async fn cancel(&self, user_id: &str, at_period_end: bool) -> Result<SubscriptionState, BillingError> {
        let rows = self.rows_of(user_id).await?;
        let current = self
            .current(&rows, now_ms())
            .filter(|r| {
                !matches!(
                    Status::parse(&r.status),
                    Some(Status::Canceled | Status::IncompleteExpired)
                )
            })
            .ok_or(BillingError::NoSubscription)?;
        let started = now_ms();
        let object = self.inner.provider.cancel(&current.id, at_period_end).await?;
        let view = SubscriptionView::from_stripe(&object).map_err(BillingError::NotAnEvent)?;
        self.apply(view, Some(user_id.to_string()), started).await?;
        let rows = self.rows_of(user_id).await?;
        Ok(Self::state(rows.iter().find(|r| r.id == current.id)))
    }

    /// The plan a user is entitled to now, and the status behind it.
    pub async fn entitlement(&self, user_id: &str) -> Result<(Plan, Option<Status>), BillingError> {
        let rows = self.rows_of(user_id).await?;
        let subs = rows
            .iter()
            .filter_map(|r| Some((Plan::parse(&r.plan)?, Status::parse(&r.status)?, r.current_period_end)));
        Ok(domain::entitled_plan(subs, self.inner.settings.grace_ms, now_ms()))
    }

    /// A webhook: verified over the raw bytes, recorded once, queued for processing in the
    /// same transaction. Answers the event id and whether it was a redelivery. Nothing is
    /// stored when the signature or the body is refused.
    pub async fn receive_webhook(&self, payload: &[u8], header: &str) -> Result<(String, bool), BillingError> {
        let secret = self.inner.settings.webhook_secret.expose();
        signature::verify(payload, header, secret, now_ms() / 1000).map_err(BillingError::Signature)?;
        let event: Value = serde_json::from_slice(payload).map_err(|e| BillingError::NotAnEvent(e.to_string()))?;
        let id = event["id"].as_str().filter(|s| !s.is_empty() && s.len() <= 255);
        let kind = event["type"].as_str().filter(|s| !s.is_empty() && s.len() <= 255);
        let (Some(id), Some(kind), Some(created)) = (id, kind, event["created"].as_i64()) else {
            return Err(BillingError::NotAnEvent("it needs `id`, `type` and `created`".into()));
        };
        if !event["data"]["object"].is_object() {
            return Err(BillingError::NotAnEvent("it needs `data.object`".into()));
        }
        let row = EventRow {
            id: id.to_string(),
            kind: kind.to_string(),
            created,
            livemode: event["livemode"].as_bool().unwrap_or(false),
            payload: String::from_utf8_lossy(payload).into_owned(),
            received_at: now_ms(),
            processed_at: None,
        };
        let event_id = row.id.clone();
        let new = self
            .inner
            .db
            .write(move |conn| {
                let new = row.insert_once(conn)?;
                if new {
                    outbox::enqueue(conn, EVENTS_TOPIC, &row.id)?;
                }
                Ok::<_, BillingError>(new)
            })
            .await?;
        if new {
            self.inner.outbox.notify();
        }
        metrics::counter!("portico_billing_webhooks_total", "duplicate" => if new { "false" } else { "true" })
            .increment(1);
        Ok((event_id, !new))
    }

    /// The outbox handler of received events.
    pub fn events_handler(&self) -> Handler {
        let billing = self.clone();
        Arc::new(move |item: Item| {
            let billing = billing.clone();
            Box::pin(async move { billing.process_event(&item.payload).await.map_err(|e| e.to_string()) })
        })
    }

    /// Applies one recorded event. Safe to run again (redelivered outbox rows): state comes
    /// from the provider's newest view, and mail from notice keys taken once.
    pub async fn process_event(&self, id: &str) -> Result<(), BillingError> {
        let eid = id.to_string();
        let Some(row) = self
            .inner
            .db
            .run(move |conn| Ok::<_, BillingError>(EventRow::find(conn, &eid)?))
            .await?
        else {
            return Ok(());
        };
        let event: Value = serde_json::from_str(&row.payload).map_err(|e| BillingError::NotAnEvent(e.to_string()))?;
        let object = &event["data"]["object"];
        match row.kind.as_str() {
            "checkout.session.completed" => {
                if let Some(sub) = id_of(&object["subscription"]) {
                    let user = object["client_reference_id"].as_str().map(str::to_string);
                    self.sync(&sub, user).await?;
                }
            }
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
                if let Some(sub) = object["id"].as_str() {
                    self.sync(sub, None).await?;
                }
            }
            "invoice.paid" | "invoice.payment_failed" => {
                if let Some(sub) = domain::invoice_subscription(object) {
                    self.sync(&sub, None).await?;
                }
                self.notify_invoice(&row.kind, object).await?;
            }
            other => tracing::debug!(kind = other, "billing event recorded, nothing to do"),
        }
        metrics::counter!("portico_billing_events_processed_total").increment(1);
        Ok(())
    }

    /// Marks an event processed in the transaction that marks its outbox row delivered.
    pub fn mark_processed() -> OnDelivered {
        Arc::new(|conn, item| EventRow::mark_processed(conn, &item.payload, now_ms()))
    }

    /// Re-fetches a subscription and stores that view (unless a later one is stored).
    pub async fn sync(&self, id: &str, user_hint: Option<String>) -> Result<(), BillingError> {
        let started = now_ms();
        let object = self.inner.provider.subscription(id).await?;
        let view = SubscriptionView::from_stripe(&object).map_err(BillingError::NotAnEvent)?;
        self.apply(view, user_hint, started).await
    }

    async fn apply(
        &self,
        view: SubscriptionView,
        user_hint: Option<String>,
        fetched_at: i64,
    ) -> Result<(), BillingError> {
        let plan = self.inner.settings.plan_of_price(&view.price);
        if plan.is_none() {
            tracing::warn!(subscription = %view.id, price = %view.price, "subscription to a price no plan sells; it entitles nothing");
        }
        let customer = view.customer.clone();
        let stored = self
            .inner
            .db
            .write(move |conn| {
                let user = match view.user_id.clone().or(user_hint) {
                    Some(u) => Some(u),
                    None => CustomerRow::by_customer(conn, &customer)?.map(|c| c.user_id),
                };
                let Some(user_id) = user else {
                    return Ok::<_, BillingError>(Err(view.id));
                };
                let row = SubscriptionRow {
                    id: view.id.clone(),
                    user_id: user_id.clone(),
                    customer_id: view.customer.clone(),
                    plan: plan.unwrap_or(Plan::Free).as_str().to_string(),
                    price: view.price.clone(),
                    status: view.status.as_str().to_string(),
                    current_period_end: view.current_period_end_ms,
                    cancel_at_period_end: view.cancel_at_period_end,
                    fetched_at,
                    updated_at: now_ms(),
                };
                Ok(Ok((user_id, row.upsert_if_newer(conn)?)))
            })
            .await?;
        match stored {
            Ok((user_id, true)) => {
                // After the commit: a gateway reloading at once reads the new state.
                self.inner.entitlements.invalidate(&user_id).await;
                Ok(())
            }
            Ok((_, false)) => Ok(()),
            Err(sub) => {
                tracing::warn!(subscription = %sub, "subscription names no user Portico knows; retried later");
                Err(BillingError::NotFound("the subscription's user"))
            }
        }
    }

    async fn notify_invoice(&self, kind: &str, invoice: &Value) -> Result<(), BillingError> {
        let Some(invoice_id) = invoice["id"].as_str().map(str::to_string) else {
            return Ok(());
        };
        let customer = id_of(&invoice["customer"]).unwrap_or_default();
        let fallback_email = invoice["customer_email"].as_str().map(str::to_string);
        let paid = kind == "invoice.paid";
        let key = if paid {
            format!("receipt:{invoice_id}")
        } else {
            format!(
                "payment_failed:{invoice_id}:{}",
                invoice["attempt_count"].as_i64().unwrap_or(1)
            )
        };
        let text = if paid {
            receipt_text(invoice)
        } else {
            failure_text(invoice, &self.inner.settings.public_url)
        };
        let subject = if paid {
            format!(
                "Your Portico receipt {}",
                invoice["number"].as_str().unwrap_or(&invoice_id)
            )
        } else {
            "Your Portico payment failed".to_string()
        };
        let queued = self
            .inner
            .db
            .write(move |conn: &mut DbConnection| {
                let owner = CustomerRow::by_customer(conn, &customer)?;
                let to = owner
                    .as_ref()
                    .map(|c| c.email.clone())
                    .filter(|e| !e.is_empty())
                    .or(fallback_email);
                let (Some(to), Some(user_id)) = (to, owner.map(|c| c.user_id)) else {
                    return Ok::<_, BillingError>(false);
                };
                if !store::take_notice(conn, &key, &user_id, now_ms())? {
                    return Ok(false);
                }
                let outbox_id = portico_mail::enqueue(conn, &Mail { to, subject, text })?;
                store::note_outbox_id(conn, &key, &outbox_id)?;
                Ok(true)
            })
            .await?;
        if queued {
            self.inner.outbox.notify();
            metrics::counter!("portico_billing_notices_total", "kind" => if paid { "receipt" } else { "payment_failed" })
                .increment(1);
        }
        Ok(())
    }

    /// Repairs what lost webhooks left behind: every subscription the provider lists or the
    /// store holds as live is re-fetched. Answers how many were looked at.
    pub async fn reconcile(&self) -> Result<usize, BillingError> {
        let mut ids = self.inner.provider.live_subscriptions().await?;
        let stored = self
            .inner
            .db
            .run(|conn| Ok::<_, BillingError>(SubscriptionRow::live_ids(conn)?))
            .await?;
        ids.extend(stored);
        ids.sort();
        ids.dedup();
        let mut looked = 0;
        for id in &ids {
            match self.sync(id, None).await {
                Ok(()) => looked += 1,
                Err(e) => {
                    tracing::warn!(subscription = %id, error = %e, "reconciliation could not repair a subscription")
                }
            }
        }
        Ok(looked)
    }

    /// Erases what billing holds about a user (the provider keeps its records).
    pub async fn erase_user(&self, user_id: &str) -> Result<u64, BillingError> {
        let uid = user_id.to_string();
        let removed = self
            .inner
            .db
            .write(move |conn| Ok::<_, BillingError>(store::erase_user(conn, &uid)?))
            .await?;
        self.inner.entitlements.invalidate(user_id).await;
        Ok(removed)
    }

    /// Whether a notice was queued (tests and the reconciliation report).
    pub async fn notice_taken(&self, key: &str) -> Result<bool, DbError> {
        let key = key.to_string();
        self.inner
            .db
            .run(move |conn| store::notice_taken(conn, &key).map_err(DbError::from))
            .await
    }
}

/// An id, or the id of an expanded object.
fn id_of(v: &Value) -> Option<String> {
    v.as_str().or_else(|| v["id"].as_str()).map(str::to_string)
}

fn money(amount: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        amount / 100,
        (amount % 100).abs(),
        currency.to_ascii_uppercase()
    )
}

fn day(seconds: Option<i64>) -> String {
    seconds
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "-".into())
}

fn period(invoice: &Value) -> (Option<i64>, Option<i64>) {
    let line = &invoice["lines"]["data"][0]["period"];
    (
        line["start"].as_i64().or_else(|| invoice["period_start"].as_i64()),
        line["end"].as_i64().or_else(|| invoice["period_end"].as_i64()),
    )
}

fn receipt_text(invoice: &Value) -> String {
    let (start, end) = period(invoice);
    format!(
        "Thank you for your payment.\n\nInvoice: {}\nAmount paid: {}\nPeriod: {} to {}\n\nView or download the invoice: {}\n",
        invoice["number"].as_str().unwrap_or("-"),
        money(
            invoice["amount_paid"].as_i64().unwrap_or(0),
            invoice["currency"].as_str().unwrap_or("usd")
        ),
        day(start),
        day(end),
        invoice["hosted_invoice_url"].as_str().unwrap_or("-"),
    )
}

fn failure_text(invoice: &Value, public_url: &str) -> String {
    format!(
        "We could not collect the payment for invoice {} ({} due).\n\nWe will retry automatically. To avoid losing your plan, update your payment method in the billing portal (Billing → Manage, or POST {public_url}/v1/billing/portal from the app), or pay the invoice directly: {}\n",
        invoice["number"].as_str().unwrap_or("-"),
        money(
            invoice["amount_due"].as_i64().unwrap_or(0),
            invoice["currency"].as_str().unwrap_or("usd")
        ),
        invoice["hosted_invoice_url"].as_str().unwrap_or("-"),
    )
}
