//! The billing application served over gRPC (`portico.billing.v1.BillingService`).

use portico_proto::billing::v1::{self as pb, billing_service_server::BillingService};
use portico_runtime::{Problem, grpc};
use tonic::{Request, Response, Status};

use crate::{
    app::{Billing, SubscriptionState},
    domain::{Plan, Price},
    error::BillingError,
};

/// Fully qualified gRPC name, for health reporting.
pub const SERVICE_NAME: &str = "portico.billing.v1.BillingService";
const SVC: &str = "billing";

fn require_user(user_id: &str) -> Result<&str, BillingError> {
    let id = user_id.trim();
    if id.is_empty() || id.len() > 64 {
        return Err(BillingError::Invalid(vec![("userId".into(), "is required".into())]));
    }
    Ok(id)
}

fn price(p: Price) -> pb::Price {
    pb::Price {
        amount: p.amount,
        currency: p.currency,
        interval: p.interval,
    }
}

fn subscription(s: SubscriptionState) -> pb::Subscription {
    pb::Subscription {
        plan: s.plan.to_proto() as i32,
        status: s.status.map(|st| st.as_str().to_string()).unwrap_or_default(),
        current_period_end_ms: s.current_period_end_ms,
        cancel_at_period_end: s.cancel_at_period_end,
    }
}

impl Billing {
    async fn rpc_checkout(&self, m: pb::CreateCheckoutRequest) -> Result<pb::CheckoutSession, BillingError> {
        let user = require_user(&m.user_id)?;
        let plan = Plan::from_proto(m.plan).map(Plan::as_str).unwrap_or("unknown");
        let session = self.checkout(user, &m.email, plan).await?;
        Ok(pb::CheckoutSession {
            session_id: session.id,
            url: session.url,
        })
    }

    async fn rpc_local_checkout(&self, session_id: &str, confirm: bool) -> Result<pb::LocalCheckout, BillingError> {
        let local = self.local().ok_or(BillingError::NotFound("checkout session"))?;
        let row = local
            .checkout(session_id)
            .await?
            .ok_or(BillingError::NotFound("checkout session"))?;
        let plan = self.plan_of_price(&row.price);
        let price = self.price(plan).map(price);
        let row = if confirm {
            let p = price.clone().unwrap_or_default();
            local
                .confirm(session_id, p.amount, &p.currency)
                .await?
                .ok_or(BillingError::NotFound("checkout session"))?
        } else {
            row
        };
        Ok(pb::LocalCheckout {
            success_url: self.success_url(&row.id),
            session_id: row.id,
            plan: plan.to_proto() as i32,
            price,
            status: row.status,
        })
    }
}

macro_rules! billing_rpcs {
    ($( $name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr; )*) => {
        #[tonic::async_trait]
        impl BillingService for Billing {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

billing_rpcs! {
    list_plans, "ListPlans", pb::ListPlansRequest => pb::ListPlansResponse, |app, _m| async move {
        Ok::<_, BillingError>(pb::ListPlansResponse {
            plans: app.plans().into_iter().map(|(plan, p)| pb::PlanInfo {
                plan: plan.to_proto() as i32,
                name: plan.name().to_string(),
                price: Some(price(p)),
            }).collect(),
        })
    };
    create_checkout, "CreateCheckout", pb::CreateCheckoutRequest => pb::CheckoutSession, |app, m| app.rpc_checkout(m);
    create_portal, "CreatePortal", pb::CreatePortalRequest => pb::PortalSession, |app, m| async move {
        let url = app.portal(require_user(&m.user_id)?).await?;
        Ok::<_, BillingError>(pb::PortalSession { url })
    };
    get_subscription, "GetSubscription", pb::GetSubscriptionRequest => pb::Subscription, |app, m| async move {
        Ok::<_, BillingError>(subscription(app.subscription(require_user(&m.user_id)?).await?))
    };
    cancel_subscription, "CancelSubscription", pb::CancelSubscriptionRequest => pb::Subscription, |app, m| async move {
        Ok::<_, BillingError>(subscription(app.cancel(require_user(&m.user_id)?, m.at_period_end).await?))
    };
    receive_webhook, "ReceiveWebhook", pb::ReceiveWebhookRequest => pb::ReceiveWebhookResponse, |app, m| async move {
        let (event_id, duplicate) = app.receive_webhook(&m.payload, &m.signature).await?;
        Ok::<_, BillingError>(pb::ReceiveWebhookResponse { event_id, duplicate })
    };
    get_entitlement, "GetEntitlement", pb::GetEntitlementRequest => pb::Entitlement, |app, m| async move {
        let (plan, status) = app.entitlement(require_user(&m.user_id)?).await?;
        Ok::<_, BillingError>(pb::Entitlement {
            plan: plan.to_proto() as i32,
            status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        })
    };
    get_local_checkout, "GetLocalCheckout", pb::GetLocalCheckoutRequest => pb::LocalCheckout, |app, m| app.rpc_local_checkout(&m.session_id, false);
    confirm_local_checkout, "ConfirmLocalCheckout", pb::ConfirmLocalCheckoutRequest => pb::LocalCheckout, |app, m| app.rpc_local_checkout(&m.session_id, true);
}
