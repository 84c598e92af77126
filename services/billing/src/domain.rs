//! Billing's rules, without I/O: the plans, Stripe's subscription statuses, which of them
//! entitle a plan, and how a subscription is read out of a provider's object.

use serde::Serialize;

/// A plan of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// No subscription.
    Free,
    /// Paid.
    Pro,
    /// Paid, the highest.
    Enterprise,
}

impl Plan {
    /// Every plan, cheapest first.
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];

    /// Its id as clients and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// Parses an id.
    pub fn parse(s: &str) -> Option<Plan> {
        Plan::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Its display name.
    pub fn name(self) -> &'static str {
        match self {
            Plan::Free => "Free",
            Plan::Pro => "Pro",
            Plan::Enterprise => "Enterprise",
        }
    }

    /// Wire form.
    pub fn to_proto(self) -> portico_proto::billing::v1::Plan {
        use portico_proto::billing::v1::Plan as P;
        match self {
            Plan::Free => P::Free,
            Plan::Pro => P::Pro,
            Plan::Enterprise => P::Enterprise,
        }
    }

    /// From the wire (`None` for unspecified or unknown values).
    pub fn from_proto(value: i32) -> Option<Plan> {
        use portico_proto::billing::v1::Plan as P;
        match P::try_from(value).ok()? {
            P::Free => Some(Plan::Free),
            P::Pro => Some(Plan::Pro),
            P::Enterprise => Some(Plan::Enterprise),
            P::Unspecified => None,
        }
    }
}

/// A plan's price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// `month` or `year`.
    pub interval: String,
}

/// Stripe's eight subscription statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Created; the first payment has not succeeded yet (23 hours to complete it).
    Incomplete,
    /// The first payment never succeeded.
    IncompleteExpired,
    /// In a trial.
    Trialing,
    /// Paid up.
    Active,
    /// The latest renewal payment failed; Stripe is retrying.
    PastDue,
    /// Ended.
    Canceled,
    /// Retries exhausted without payment.
    Unpaid,
    /// A trial ended without a payment method.
    Paused,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Status::Incomplete,
        Status::IncompleteExpired,
        Status::Trialing,
        Status::Active,
        Status::PastDue,
        Status::Canceled,
        Status::Unpaid,
        Status::Paused,
    ];

    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Incomplete => "incomplete",
            Status::IncompleteExpired => "incomplete_expired",
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
            Status::Unpaid => "unpaid",
            Status::Paused => "paused",
        }
    }

    /// Parses Stripe's spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether a subscription in this status entitles its plan at `now_ms`: `active` and
    /// `trialing` do; `past_due` does until `grace_ms` after the end of the period that went
    /// unpaid (Stripe retries the payment meanwhile, and a customer whose card was replaced
    /// keeps working); every other status does not.
    pub fn entitles(self, current_period_end_ms: Option<i64>, grace_ms: i64, now_ms: i64) -> bool {
        match self {
            Status::Active | Status::Trialing => true,
            Status::PastDue => current_period_end_ms.is_some_and(|end| now_ms < end.saturating_add(grace_ms)),
            _ => false,
        }
    }
}

/// A subscription as the provider reports it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionView {
    /// Provider id (`sub_…`).
    pub id: String,
    /// Provider customer id (`cus_…`).
    pub customer: String,
    /// The user named in its metadata, when there is one.
    pub user_id: Option<String>,
    /// Its status.
    pub status: Status,
    /// The price of its first item.
    pub price: String,
    /// End of the current period.
    pub current_period_end_ms: Option<i64>,
    /// Ends at the period end.
    pub cancel_at_period_end: bool,
}

impl SubscriptionView {
    /// Reads a Stripe subscription object tolerantly: since API version `2025-03-31.basil`
    /// the period end is on `items.data[].current_period_end`; older versions have it at the
    /// top level.
    pub fn from_stripe(object: &serde_json::Value) -> Result<SubscriptionView, String> {
        let str_at = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let id = str_at(&object["id"]).ok_or("subscription has no id")?;
        // `customer` is an id, or the expanded object.
        let customer = str_at(&object["customer"])
            .or_else(|| str_at(&object["customer"]["id"]))
            .ok_or("subscription has no customer")?;
        let status = object["status"]
            .as_str()
            .and_then(Status::parse)
            .ok_or("subscription has no known status")?;
        let item = &object["items"]["data"][0];
        let price = str_at(&item["price"]["id"])
            .or_else(|| str_at(&item["plan"]["id"]))
            .or_else(|| str_at(&object["plan"]["id"]))
            .ok_or("subscription has no price")?;
        let period_end_s = item["current_period_end"]
            .as_i64()
            .or_else(|| object["current_period_end"].as_i64());
        Ok(SubscriptionView {
            id,
            customer,
            user_id: str_at(&object["metadata"]["user_id"]).filter(|u| !u.is_empty()),
            status,
            price,
            current_period_end_ms: period_end_s.map(|s| s.saturating_mul(1000)),
            cancel_at_period_end: object["cancel_at_period_end"].as_bool().unwrap_or(false),
        })
    }
}

/// The subscription an invoice belongs to: `parent.subscription_details.subscription` since
/// `2025-03-31.basil`, the top-level `subscription` before.
pub fn invoice_subscription(invoice: &serde_json::Value) -> Option<String> {
    let at = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v["id"].as_str().map(str::to_string))
    };
    at(&invoice["parent"]["subscription_details"]["subscription"]).or_else(|| at(&invoice["subscription"]))
}

/// The plan the best of a user's subscriptions entitles (free when none does).
pub fn entitled_plan<'a>(
    subscriptions: impl IntoIterator<Item = (Plan, Status, Option<i64>)> + 'a,
    grace_ms: i64,
    now_ms: i64,
) -> (Plan, Option<Status>) {
    subscriptions
        .into_iter()
        .filter(|(_, status, end)| status.entitles(*end, grace_ms, now_ms))
        .max_by_key(|(plan, _, _)| *plan)
        .map(|(plan, status, _)| (plan, Some(status)))
        .unwrap_or((Plan::Free, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn only_active_trialing_and_recent_past_due_entitle() {
        let now = 100 * DAY;
        let grace = 7 * DAY;
        for status in Status::ALL {
            let expected = matches!(status, Status::Active | Status::Trialing | Status::PastDue);
            assert_eq!(status.entitles(Some(now - DAY), grace, now), expected, "{status:?}");
        }
        assert!(
            !Status::PastDue.entitles(Some(now - 8 * DAY), grace, now),
            "grace is over"
        );
        assert!(!Status::PastDue.entitles(None, grace, now), "no period, no grace");
        assert!(Status::Active.entitles(None, grace, now));
    }

    #[test]
    fn the_best_entitling_subscription_wins() {
        let now = 10 * DAY;
        let subs = [
            (Plan::Enterprise, Status::Canceled, Some(now + DAY)),
            (Plan::Pro, Status::Active, Some(now + DAY)),
        ];
        assert_eq!(entitled_plan(subs, DAY, now), (Plan::Pro, Some(Status::Active)));
        assert_eq!(entitled_plan([], DAY, now), (Plan::Free, None));
    }

    #[test]
    fn statuses_and_plans_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for p in Plan::ALL {
            assert_eq!(Plan::parse(p.as_str()), Some(p));
            assert_eq!(Plan::from_proto(p.to_proto() as i32), Some(p));
        }
        assert_eq!(Status::parse("ended"), None);
        assert_eq!(Plan::from_proto(0), None);
    }

    #[test]
    fn subscriptions_are_read_from_both_api_shapes() -> Result<(), String> {
        let basil = serde_json::json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active",
            "cancel_at_period_end": true, "metadata": {"user_id": "u1"},
            "items": {"data": [{"price": {"id": "price_pro"}, "current_period_end": 1_800_000_000}]}
        });
        let v = SubscriptionView::from_stripe(&basil)?;
        assert_eq!(v.current_period_end_ms, Some(1_800_000_000_000));
        assert_eq!(
            (v.price.as_str(), v.user_id.as_deref(), v.cancel_at_period_end),
            ("price_pro", Some("u1"), true)
        );
        let older = serde_json::json!({
            "id": "sub_2", "customer": {"id": "cus_2"}, "status": "past_due", "current_period_end": 1_700_000_000,
            "items": {"data": [{"plan": {"id": "price_ent"}}]}
        });
        let v = SubscriptionView::from_stripe(&older)?;
        assert_eq!(
            (v.customer.as_str(), v.status, v.current_period_end_ms),
            ("cus_2", Status::PastDue, Some(1_700_000_000_000))
        );
        assert_eq!(v.user_id, None);
        assert!(
            SubscriptionView::from_stripe(&serde_json::json!({"id": "sub_3", "customer": "c", "status": "weird"}))
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn invoices_name_their_subscription_in_either_place() {
        let basil =
            serde_json::json!({"parent": {"subscription_details": {"subscription": "sub_1"}}, "subscription": null});
        assert_eq!(invoice_subscription(&basil).as_deref(), Some("sub_1"));
        let older = serde_json::json!({"subscription": "sub_2"});
        assert_eq!(invoice_subscription(&older).as_deref(), Some("sub_2"));
        assert_eq!(invoice_subscription(&serde_json::json!({})), None);
    }
}
