//! `/v1/billing/*` and `POST /webhooks/stripe`: plans, checkout, portal, subscription and
//! cancellation, answered by the billing service; webhooks forwarded to it byte for byte.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Utc};
use portico_proto::billing::v1 as pb;
use portico_runtime::{ErrorCode, grpc::outgoing};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Rid, User, at};
use crate::{
    AppState,
    auth::Tier,
    contract::{Reply, Valid},
    envelope::{ApiError, RawBody},
};

/// Largest webhook body accepted (Stripe's events are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// The gateway tier of a billing plan.
pub fn tier_of(plan: i32) -> Tier {
    match pb::Plan::try_from(plan).unwrap_or(pb::Plan::Unspecified) {
        pb::Plan::Pro => Tier::Pro,
        pb::Plan::Enterprise => Tier::Enterprise,
        pb::Plan::Free | pb::Plan::Unspecified => Tier::Free,
    }
}

/// What a plan costs.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PlanPrice)]
pub struct Price {
    /// Minor units (cents).
    #[schema(example = 2900)]
    amount: i64,
    /// ISO 4217, lower case.
    #[schema(example = "usd")]
    currency: String,
    /// Billing interval.
    #[schema(example = "month")]
    interval: String,
}

impl From<pb::Price> for Price {
    fn from(p: pb::Price) -> Self {
        Price {
            amount: p.amount,
            currency: p.currency,
            interval: p.interval,
        }
    }
}

/// What a plan allows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// API requests per minute.
    requests_per_minute: u32,
    /// Workflow analyses per hour.
    analyses_per_hour: u32,
}

/// One plan on sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plan {
    /// Its id.
    id: Tier,
    /// Display name.
    name: String,
    /// Price.
    price: Price,
    /// Limits the gateway and the services apply.
    limits: Limits,
}

/// GET /billing/plans
pub async fn plans(state: web::Data<AppState>, rid: Rid) -> Result<Reply<Vec<Plan>>, ApiError> {
    let list = state
        .billing()?
        .list_plans(outgoing(pb::ListPlansRequest {}, &rid.0))
        .await?
        .into_inner();
    let [free, pro, enterprise] = state.config.analyses_per_hour;
    Ok(Reply(
        list.plans
            .into_iter()
            .map(|p| {
                let id = tier_of(p.plan);
                Plan {
                    id,
                    name: p.name,
                    price: p.price.unwrap_or_default().into(),
                    limits: Limits {
                        requests_per_minute: state.rate_for(id),
                        analyses_per_hour: match id {
                            Tier::Free => free,
                            Tier::Pro => pro,
                            Tier::Enterprise => enterprise,
                        },
                    },
                }
            })
            .collect(),
    ))
}

/// A checkout request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "pro"}))]
pub struct CheckoutRequest {
    /// `pro` or `enterprise` (anything else is 422 PLAN_NOT_PURCHASABLE).
    #[schema(min_length = 1, max_length = 32)]
    plan: String,
}

/// A hosted checkout.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSession {
    /// The provider's session id.
    session_id: String,
    /// Where to send the customer.
    url: String,
}

/// POST /billing/checkout
pub async fn checkout(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<CheckoutRequest>,
) -> Result<Reply<CheckoutSession>, ApiError> {
    let plan = match body.0.plan.as_str() {
        "free" => pb::Plan::Free,
        "pro" => pb::Plan::Pro,
        "enterprise" => pb::Plan::Enterprise,
        _ => pb::Plan::Unspecified,
    };
    let s = state
        .billing()?
        .create_checkout(outgoing(
            pb::CreateCheckoutRequest {
                user_id: user.0.user_id.clone(),
                email: user.0.email.clone(),
                plan: plan as i32,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(CheckoutSession {
        session_id: s.session_id,
        url: s.url,
    }))
}

/// A customer-portal session.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalSession {
    /// Where the customer manages payment methods, invoices and the plan.
    url: String,
}

/// POST /billing/portal
pub async fn portal(state: web::Data<AppState>, rid: Rid, user: User) -> Result<Reply<PortalSession>, ApiError> {
    let p = state
        .billing()?
        .create_portal(outgoing(
            pb::CreatePortalRequest {
                user_id: user.0.user_id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(PortalSession { url: p.url }))
}

/// Stripe's subscription statuses.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// The first payment has not succeeded yet.
    Incomplete,
    /// The first payment never succeeded.
    IncompleteExpired,
    /// In a trial (entitles the plan).
    Trialing,
    /// Paid up (entitles the plan).
    Active,
    /// A renewal failed; entitles the plan for the grace period while Stripe retries.
    PastDue,
    /// Ended.
    Canceled,
    /// Retries exhausted.
    Unpaid,
    /// A trial ended without a payment method.
    Paused,
}

impl SubscriptionStatus {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            _ => return None,
        })
    }
}

/// The caller's subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The plan it is for (`free` when there is none).
    plan: Tier,
    /// Its status (null when there is none).
    status: Option<SubscriptionStatus>,
    /// End of the current period.
    current_period_end: Option<DateTime<Utc>>,
    /// It ends at the period end.
    cancel_at_period_end: bool,
}

impl From<pb::Subscription> for Subscription {
    fn from(s: pb::Subscription) -> Self {
        Subscription {
            plan: tier_of(s.plan),
            status: SubscriptionStatus::parse(&s.status),
            current_period_end: s.current_period_end_ms.and_then(at),
            cancel_at_period_end: s.cancel_at_period_end,
        }
    }
}

/// GET /billing/subscription
pub async fn subscription(state: web::Data<AppState>, rid: Rid, user: User) -> Result<Reply<Subscription>, ApiError> {
    let s = state
        .billing()?
        .get_subscription(outgoing(
            pb::GetSubscriptionRequest {
                user_id: user.0.user_id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(s.into()))
}

/// A cancellation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"atPeriodEnd": true}))]
pub struct CancelRequest {
    /// True: keep the plan until the period ends; false: end it now.
    at_period_end: bool,
}

/// POST /billing/cancel
pub async fn cancel(
    state: web::Data<AppState>,
    rid: Rid,
    user: User,
    body: Valid<CancelRequest>,
) -> Result<Reply<Subscription>, ApiError> {
    let s = state
        .billing()?
        .cancel_subscription(outgoing(
            pb::CancelSubscriptionRequest {
                user_id: user.0.user_id.clone(),
                at_period_end: body.0.at_period_end,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    state.forget_entitlement(&user.0.user_id).await;
    Ok(Reply(s.into()))
}

/// A checkout of the local provider (development).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalCheckout {
    /// The session.
    session_id: String,
    /// What it sells.
    plan: Tier,
    /// What it costs.
    price: Price,
    /// `open`, or `complete` once confirmed.
    #[schema(example = "open")]
    status: String,
    /// Where the customer lands once it is paid.
    success_url: String,
}

/// GET /billing/local/checkout/{session}: the local provider's checkout page, as data.
pub async fn local_checkout_page(
    state: web::Data<AppState>,
    rid: Rid,
    session: web::Path<String>,
) -> Result<Reply<LocalCheckout>, ApiError> {
    local_checkout(&state, &rid, session.into_inner(), false).await
}

/// POST /billing/local/checkout/{session}: pays it (the local provider's "Pay" button); the
/// events Stripe would send follow through the webhook handler.
pub async fn local_checkout_confirm(
    state: web::Data<AppState>,
    rid: Rid,
    session: web::Path<String>,
) -> Result<Reply<LocalCheckout>, ApiError> {
    local_checkout(&state, &rid, session.into_inner(), true).await
}

async fn local_checkout(
    state: &AppState,
    rid: &Rid,
    session_id: String,
    confirm: bool,
) -> Result<Reply<LocalCheckout>, ApiError> {
    let mut billing = state.billing()?;
    let c = if confirm {
        let request = pb::ConfirmLocalCheckoutRequest { session_id };
        billing.confirm_local_checkout(outgoing(request, &rid.0)).await?
    } else {
        let request = pb::GetLocalCheckoutRequest { session_id };
        billing.get_local_checkout(outgoing(request, &rid.0)).await?
    }
    .into_inner();
    Ok(Reply(LocalCheckout {
        session_id: c.session_id,
        plan: tier_of(c.plan),
        price: c.price.unwrap_or_default().into(),
        status: c.status,
        success_url: c.success_url,
    }))
}

/// A webhook's acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always true: the event is recorded (processing follows).
    received: bool,
    /// The event id.
    #[schema(example = "evt_1NG8Du2eZvKYlo2CUI79vXWy")]
    id: String,
    /// It had been received before; nothing was done twice.
    duplicate: bool,
}

/// POST /webhooks/stripe: the raw body and `Stripe-Signature`, forwarded unchanged; billing
/// verifies, records and answers before processing.
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    rid: Rid,
    req: HttpRequest,
    body: RawBody,
) -> Result<Reply<WebhookAck>, ApiError> {
    let RawBody(body) = body;
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if body.is_empty() {
        return Err(ApiError::new(ErrorCode::WebhookEventInvalid, "the body is empty"));
    }
    let ack = state
        .billing()?
        .receive_webhook(outgoing(
            pb::ReceiveWebhookRequest {
                payload: body,
                signature,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(WebhookAck {
        received: true,
        id: ack.event_id,
        duplicate: ack.duplicate,
    }))
}

/// The webhook's input as the OpenAPI document shows it: Stripe's header and its event.
pub fn webhook_input() -> serde_json::Value {
    serde_json::json!({
        "parameters": [{
            "name": "Stripe-Signature", "in": "header", "required": true,
            "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">` (several `v1` while a secret rolls).",
            "schema": { "type": "string", "maxLength": 1024 },
        }],
        "requestBody": {
            "required": true,
            "description": "A Stripe event, exactly as Stripe sent it (verified over these bytes; at most 1 MiB).",
            "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["id", "type", "created", "data"],
                "properties": {
                    "id": { "type": "string", "example": "evt_1NG8Du2eZvKYlo2CUI79vXWy" },
                    "type": { "type": "string", "example": "invoice.paid" },
                    "created": { "type": "integer" },
                    "data": { "type": "object", "required": ["object"], "properties": { "object": { "type": "object" } } },
                },
            } } },
        },
    })
}
