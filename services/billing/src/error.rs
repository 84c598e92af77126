//! The billing service's errors, converted once into the public catalogue.

use portico_runtime::{ErrorCode, Problem, db::DbError};

use crate::{provider::ProviderError, signature::SignatureError};

/// Everything a billing operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Bad input, per field.
    #[error("invalid input")]
    Invalid(Vec<(String, String)>),
    /// `free` or an unknown plan asked for at checkout.
    #[error("plan not purchasable")]
    NotPurchasable(String),
    /// The user has this plan already.
    #[error("already subscribed")]
    AlreadySubscribed(&'static str),
    /// No customer yet.
    #[error("no billing account")]
    NoAccount,
    /// No subscription to change.
    #[error("no subscription")]
    NoSubscription,
    /// The webhook's signature.
    #[error("webhook signature: {0:?}")]
    Signature(SignatureError),
    /// The signed body is not an event.
    #[error("not an event: {0}")]
    NotAnEvent(String),
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The provider refused or failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for BillingError {
    fn from(e: diesel::result::Error) -> Self {
        BillingError::Db(DbError::Query(e))
    }
}

impl From<BillingError> for Problem {
    fn from(e: BillingError) -> Problem {
        match e {
            BillingError::Invalid(fields) => Problem::validation(fields),
            BillingError::NotPurchasable(plan) => Problem::new(
                ErrorCode::PlanNotPurchasable,
                format!("`{plan}` cannot be bought: choose pro or enterprise"),
            )
            .with_details(serde_json::json!({"fields": {"plan": "must be pro or enterprise"}})),
            BillingError::AlreadySubscribed(plan) => Problem::new(
                ErrorCode::AlreadySubscribed,
                format!("you are on the {plan} plan already; manage it in the billing portal"),
            ),
            BillingError::NoAccount => Problem::new(
                ErrorCode::NoBillingAccount,
                "there is no billing account yet: start a checkout first",
            ),
            BillingError::NoSubscription => {
                Problem::new(ErrorCode::NoSubscription, "there is no subscription to cancel")
            }
            BillingError::Signature(SignatureError::Missing) => Problem::new(
                ErrorCode::WebhookSignatureMissing,
                "send the `Stripe-Signature` header with `t=` and `v1=`",
            ),
            BillingError::Signature(SignatureError::Invalid) => Problem::new(
                ErrorCode::WebhookSignatureInvalid,
                "no v1 signature matches the body under this endpoint's secret",
            ),
            BillingError::Signature(SignatureError::Expired) => Problem::new(
                ErrorCode::WebhookSignatureExpired,
                "the signature timestamp is older than 300 seconds",
            ),
            BillingError::NotAnEvent(why) => Problem::new(
                ErrorCode::WebhookEventInvalid,
                format!("the body is not an event: {why}"),
            ),
            BillingError::NotFound(what) => Problem::new(ErrorCode::NotFound, format!("{what} not found")),
            BillingError::Provider(e) => e.into(),
            BillingError::Db(e) => e.into(),
        }
    }
}
