//! Payment providers behind one trait: [`stripe::Stripe`] over Stripe's REST API, and
//! [`local::Local`], the embedded stand-in for development, whose checkout produces the same
//! signed webhook events through the same handler. The service never asks which one it has.

pub mod local;
pub mod stripe;

use futures_util::future::BoxFuture;
use portico_runtime::{ErrorCode, Problem};

/// A hosted checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Provider id (`cs_…`).
    pub id: String,
    /// Where to send the customer.
    pub url: String,
}

/// What a checkout sells, to whom.
#[derive(Clone, Debug)]
pub struct NewCheckout {
    /// Provider customer id.
    pub customer: String,
    /// The user (`client_reference_id` and the subscription's `metadata[user_id]`).
    pub user_id: String,
    /// Provider price id.
    pub price: String,
    /// Where the customer lands after paying.
    pub success_url: String,
    /// Where the customer lands after giving up.
    pub cancel_url: String,
}

/// A provider's refusal or failure, as its error body says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Stripe's `error.type` (`invalid_request_error`, `api_error`, `card_error`…), or
    /// `connection_error` when no answer came.
    pub kind: String,
    /// Stripe's `error.code`, when given.
    pub code: Option<String>,
    /// Stripe's `error.param`, when given.
    pub param: Option<String>,
    /// Stripe's message (never a secret: Stripe does not echo keys).
    pub message: String,
}

impl ProviderError {
    /// No answer at all.
    pub fn connection(message: impl Into<String>) -> Self {
        ProviderError {
            status: None,
            kind: "connection_error".into(),
            code: None,
            param: None,
            message: message.into(),
        }
    }

    /// The object asked for does not exist.
    pub fn is_missing(&self) -> bool {
        self.status == Some(404) || self.code.as_deref() == Some("resource_missing")
    }
}

impl From<ProviderError> for Problem {
    fn from(e: ProviderError) -> Problem {
        Problem::new(
            ErrorCode::PaymentProviderError,
            "the payment provider could not complete the request",
        )
        .with_details(serde_json::json!({
            "provider": {"status": e.status, "type": e.kind, "code": e.code, "param": e.param},
        }))
    }
}

/// Answers of a provider.
pub type ProviderResult<'a, T> = BoxFuture<'a, Result<T, ProviderError>>;

/// What the service needs of a payment provider. Objects come back in Stripe's JSON shape.
pub trait Provider: Send + Sync {
    /// Creates the customer of `user_id` (`email`, `metadata[user_id]`); the same user always
    /// gets the same idempotency key, so two racing first checkouts make one customer.
    fn create_customer<'a>(&'a self, user_id: &'a str, email: &'a str) -> ProviderResult<'a, String>;
    /// A subscription checkout.
    fn create_checkout<'a>(&'a self, checkout: &'a NewCheckout) -> ProviderResult<'a, Session>;
    /// A customer-portal session returning to `return_url`.
    fn create_portal<'a>(&'a self, customer: &'a str, return_url: &'a str) -> ProviderResult<'a, String>;
    /// The subscription as it is now (`GET /v1/subscriptions/{id}`).
    fn subscription<'a>(&'a self, id: &'a str) -> ProviderResult<'a, serde_json::Value>;
    /// Cancels at the period end (`cancel_at_period_end=true`) or now (`DELETE`).
    fn cancel<'a>(&'a self, id: &'a str, at_period_end: bool) -> ProviderResult<'a, serde_json::Value>;
    /// Subscriptions created or changed recently, for the reconciliation pass: the ids of
    /// those the provider lists as not yet ended.
    fn live_subscriptions(&self) -> ProviderResult<'_, Vec<String>>;
}
