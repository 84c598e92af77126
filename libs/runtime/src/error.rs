//! The public error catalogue: one stable code per failure, mapped once to HTTP and once to gRPC.
//!
//! Services answer a [`Problem`]; it travels over gRPC as a `tonic::Status` whose metadata
//! carries the catalogue code and whose details carry JSON, so the gateway can rebuild the
//! same problem and answer the same code on the public API.

use serde_json::Value;
use tonic::{Code, Status, metadata::MetadataValue};

/// gRPC metadata key that carries the catalogue code of an error.
pub const ERROR_CODE_METADATA: &str = "x-portico-error-code";

macro_rules! catalogue {
    ($($variant:ident => $code:literal, $http:literal, $grpc:ident, $doc:literal;)*) => {
        /// Every error code a client can see. Codes are stable: clients match on them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ErrorCode {
            /// All codes, for documentation.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The SNAKE_CASE code clients see.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// HTTP status answered on the public API.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http,)* }
            }

            /// gRPC status code used between processes.
            pub fn grpc_code(self) -> Code {
                match self { $(ErrorCode::$variant => Code::$grpc,)* }
            }

            /// What the code means, for the catalogue in the docs.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $doc,)* }
            }

            /// Looks a code up by its string form.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    ValidationError => "VALIDATION_ERROR", 400, InvalidArgument, "The request is malformed; `details` names every bad field.";
    InvalidJson => "INVALID_JSON", 400, InvalidArgument, "The body is not valid JSON.";
    InvalidXml => "INVALID_XML", 400, InvalidArgument, "The body is not well-formed XML.";
    InvalidPath => "INVALID_PATH", 400, InvalidArgument, "The request path is not in canonical form (a percent-encoded letter, digit or slash, an empty or dot segment); send the plain path.";
    LinkInvalid => "LINK_INVALID", 400, InvalidArgument, "The e-mailed link's token (address verification, password reset, alert acknowledge or resolve) is unknown, used, expired or for another action; ask for a new one, or act signed in.";
    InvalidWorkflow => "INVALID_WORKFLOW", 422, InvalidArgument, "The workflow document is well-formed JSON but not a valid workflow; `details.problems` locates each problem by JSON pointer.";
    Unauthorized => "UNAUTHORIZED", 401, Unauthenticated, "No credentials were given.";
    InvalidCredentials => "INVALID_CREDENTIALS", 401, Unauthenticated, "Email or password is wrong.";
    InvalidToken => "INVALID_TOKEN", 401, Unauthenticated, "The access token or API key is invalid, revoked or for an unknown user.";
    TokenExpired => "TOKEN_EXPIRED", 401, Unauthenticated, "The access token has expired; refresh it.";
    RefreshTokenReused => "REFRESH_TOKEN_REUSED", 401, Unauthenticated, "A used refresh token was replayed; the whole session family is revoked.";
    Forbidden => "FORBIDDEN", 403, PermissionDenied, "The caller may not do this.";
    TusVersionUnsupported => "TUS_VERSION_UNSUPPORTED", 412, FailedPrecondition, "A resumable-upload request without `Tus-Resumable: 1.0.0` (tus answers 412).";
    FreshLoginRequired => "FRESH_LOGIN_REQUIRED", 403, PermissionDenied, "This action needs a password sign-in from the last few minutes (not an API key or a refreshed session); log in again and retry.";
    NotFound => "NOT_FOUND", 404, NotFound, "No such resource (or not yours).";
    MethodNotAllowed => "METHOD_NOT_ALLOWED", 405, Unimplemented, "The path exists but not with this method.";
    Conflict => "CONFLICT", 409, AlreadyExists, "The resource already exists or changed meanwhile.";
    EmailTaken => "EMAIL_TAKEN", 409, AlreadyExists, "An account with this email exists.";
    PayloadTooLarge => "PAYLOAD_TOO_LARGE", 413, InvalidArgument, "The body is over the size cap.";
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", 415, InvalidArgument, "The Content-Type is not accepted here.";
    RateLimited => "RATE_LIMITED", 429, ResourceExhausted, "Too many requests for the caller's plan; see Retry-After.";
    LoginThrottled => "LOGIN_THROTTLED", 429, ResourceExhausted, "Too many failed sign-ins for this account; wait `Retry-After` seconds.";
    QuotaExceeded => "QUOTA_EXCEEDED", 429, ResourceExhausted, "The plan's quota for this work is spent; see Retry-After.";
    InviteNotFound => "INVITE_NOT_FOUND", 404, NotFound, "No invitation code by that name.";
    InviteExpired => "INVITE_EXPIRED", 410, FailedPrecondition, "The invitation code has expired.";
    InviteInactive => "INVITE_INACTIVE", 410, FailedPrecondition, "The invitation code was deactivated.";
    InviteExhausted => "INVITE_EXHAUSTED", 409, ResourceExhausted, "The invitation code has no uses left.";
    NotAnImage => "NOT_AN_IMAGE", 400, InvalidArgument, "The upload is not an image (empty, text, or another kind of file).";
    ImageTruncated => "IMAGE_TRUNCATED", 400, InvalidArgument, "The image ends before its data is complete (a cut-off upload).";
    ImageCorrupt => "IMAGE_CORRUPT", 400, InvalidArgument, "The image's header or data is malformed.";
    ImageTooManyPixels => "IMAGE_TOO_MANY_PIXELS", 413, InvalidArgument, "The image declares more pixels than the cap (a decompression bomb is refused before decoding); `details` has the size and the cap.";
    UploadOffsetMismatch => "UPLOAD_OFFSET_MISMATCH", 409, FailedPrecondition, "A resumable upload's Upload-Offset is not the stored offset; `details.offset` is the offset to resume from.";
    ChecksumMismatch => "CHECKSUM_MISMATCH", 460, InvalidArgument, "The chunk does not match its Upload-Checksum (tus 460); nothing was stored.";
    UploadExpired => "UPLOAD_EXPIRED", 410, FailedPrecondition, "The resumable upload has expired; start a new one.";
    PlanNotPurchasable => "PLAN_NOT_PURCHASABLE", 422, InvalidArgument, "The plan cannot be bought: `free` needs no checkout, and unknown plans are not on sale (see GET /v1/billing/plans).";
    AlreadySubscribed => "ALREADY_SUBSCRIBED", 409, AlreadyExists, "The caller already has this plan; change or cancel it in the billing portal.";
    NoBillingAccount => "NO_BILLING_ACCOUNT", 409, FailedPrecondition, "The caller has no billing account yet; start a checkout first.";
    NoSubscription => "NO_SUBSCRIPTION", 409, FailedPrecondition, "The caller has no subscription to change.";
    WebhookSignatureMissing => "WEBHOOK_SIGNATURE_MISSING", 400, Unauthenticated, "The webhook has no `Stripe-Signature` header, or it has no `t=` and `v1=` parts.";
    WebhookSignatureInvalid => "WEBHOOK_SIGNATURE_INVALID", 400, Unauthenticated, "No `v1` signature of the webhook matches its body under the endpoint's secret.";
    WebhookSignatureExpired => "WEBHOOK_SIGNATURE_EXPIRED", 400, Unauthenticated, "The webhook's signature timestamp is older than the 300-second tolerance (a replay, or a clock far off).";
    WebhookEventInvalid => "WEBHOOK_EVENT_INVALID", 400, InvalidArgument, "The signed webhook body is not an event object (`id`, `type`, `created`, `data.object`).";
    PaymentProviderError => "PAYMENT_PROVIDER_ERROR", 502, Unavailable, "The payment provider refused or failed the request; `details` carries its error type and code.";
    SentryKeyInvalid => "SENTRY_KEY_INVALID", 401, Unauthenticated, "The Sentry public key (`sentry_key` in `X-Sentry-Auth`, the query or the envelope's `dsn`) is missing or not this project's.";
    MetricInvalid => "METRIC_INVALID", 422, InvalidArgument, "A performance metric names no web vital (LCP, INP, CLS, FCP, TTFB) or has a negative value; `details.fields` names each (`metrics[i].name`, `metrics[i].value`) and none is recorded.";
    EnvelopeInvalid => "ENVELOPE_INVALID", 400, InvalidArgument, "The body is not a Sentry envelope (or, on `store`, not an event object); `message` names the line or item.";
    ServiceUnavailable => "SERVICE_UNAVAILABLE", 503, Unavailable, "A service this request needs is unreachable; retry later.";
    Timeout => "TIMEOUT", 504, DeadlineExceeded, "A service this request needs did not answer in time.";
    Internal => "INTERNAL_ERROR", 500, Internal, "Something failed on our side; the request id identifies it in our logs.";
}

/// Most fields one validation problem names.
pub const MAX_NAMED_FIELDS: usize = 50;

/// Largest details a status carries between processes (they travel in gRPC trailers, whose
/// size is bounded).
const MAX_STATUS_DETAILS: usize = 8 * 1024;

/// A failure as clients see it: a catalogue code, a human message and optional details.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The catalogue code.
    pub code: ErrorCode,
    /// A message safe to show to the caller.
    pub message: String,
    /// Structured details, e.g. `{"fields": {"email": "must be an email address"}}`.
    pub details: Option<Value>,
}

impl Problem {
    /// A problem with a message and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A validation problem naming each bad field with what is wrong with it.
    pub fn validation<I, K, V>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut all = fields.into_iter().map(|(k, v)| (k.into(), Value::String(v.into())));
        // A document with a thousand bad items gets its first ones named, not a thousand (the
        // answer travels in gRPC trailers between processes, and nobody reads past a page).
        let fields: serde_json::Map<String, Value> = all.by_ref().take(MAX_NAMED_FIELDS).collect();
        let more = all.count();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut message = format!("invalid fields: {}", names.join(", "));
        if more > 0 {
            message.push_str(&format!(" and {more} more"));
        }
        Problem::new(ErrorCode::ValidationError, message).with_details(serde_json::json!({ "fields": fields }))
    }

    /// An internal failure: the cause is logged here and never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Problem::new(ErrorCode::Internal, "internal error")
    }

    /// Converts to a gRPC status carrying the code in metadata and the details as JSON.
    pub fn into_status(self) -> Status {
        let mut details = self.details.map(|d| d.to_string().into_bytes()).unwrap_or_default();
        if details.len() > MAX_STATUS_DETAILS {
            details = serde_json::json!({ "truncated": true }).to_string().into_bytes();
        }
        let mut status = Status::with_details(self.code.grpc_code(), self.message, details.into());
        status
            .metadata_mut()
            .insert(ERROR_CODE_METADATA, MetadataValue::from_static(self.code.as_str()));
        status
    }

    /// Rebuilds a problem from a gRPC status. Statuses without a catalogue code (transport
    /// failures, panics in a service) become 503/504/500 without leaking their text.
    pub fn from_status(status: &Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::parse);
        match code {
            Some(code) => {
                let details = if status.details().is_empty() {
                    None
                } else {
                    serde_json::from_slice(status.details()).ok()
                };
                Problem {
                    code,
                    message: status.message().to_string(),
                    details,
                }
            }
            None => match status.code() {
                Code::Unavailable | Code::Cancelled => {
                    tracing::warn!(status = %status, "service unavailable");
                    Problem::new(ErrorCode::ServiceUnavailable, "service unavailable")
                }
                Code::DeadlineExceeded => {
                    tracing::warn!(status = %status, "service timed out");
                    Problem::new(ErrorCode::Timeout, "service timed out")
                }
                _ => Problem::internal(status),
            },
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Problem {}

impl From<Problem> for Status {
    fn from(p: Problem) -> Status {
        p.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
    }

    #[test]
    fn problem_survives_a_grpc_hop_with_details() {
        let p = Problem::validation([("email", "must be an email address")]);
        let back = Problem::from_status(&p.clone().into_status());
        assert_eq!(back, p);
        assert_eq!(back.code.http_status(), 400);
    }

    #[test]
    fn a_thousand_bad_fields_fit_in_one_status() {
        let p = Problem::validation((0..1000).map(|i| (format!("features.{i}.name"), "is listed twice")));
        assert!(p.message.ends_with("and 950 more"), "{}", p.message);
        let back = Problem::from_status(&p.clone().into_status());
        assert_eq!(back.code, ErrorCode::ValidationError);
        let named = back
            .details
            .as_ref()
            .and_then(|d| d["fields"].as_object())
            .map_or(0, |f| f.len());
        assert_eq!(named, MAX_NAMED_FIELDS);
    }

    #[test]
    fn transport_failures_do_not_leak_text() {
        let s = Status::unavailable("tcp connect error 10.0.0.3:50051");
        let p = Problem::from_status(&s);
        assert_eq!(p.code, ErrorCode::ServiceUnavailable);
        assert!(!p.message.contains("10.0.0.3"));
        let p = Problem::from_status(&Status::internal("panicked at src/store.rs:42"));
        assert_eq!(p.code, ErrorCode::Internal);
        assert!(!p.message.contains("store.rs"));
    }
}
