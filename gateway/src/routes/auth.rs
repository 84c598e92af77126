//! `/v1/auth/*` and `/v1/admin/users/*`.

use actix_web::web;
use portico_proto::beta::v1 as pb;
use portico_runtime::grpc;
use serde::{Deserialize, Serialize};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ObjectBuilder, RefOr, Type,
        schema::{KnownFormat, Schema, SchemaFormat},
    },
};

use super::{Admin, Rid, User, beta::Level};
use crate::{
    AppState,
    auth::{Issued, NewApiKey, Role, Scope, Tier, UserView, normalize_email},
    contract::{Created, Deleted, OptionalBody, Reply, Valid},
    envelope::ApiError,
};

/// An e-mail address as accounts use it: at most 254 characters, a local part of 1 to 64 and
/// a dotted domain; compared in lower case.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The address in the form accounts are kept under (trimmed, lower case).
    pub fn normalized(&self) -> String {
        normalize_email(&self.0)
    }
}

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(254))
            .pattern(Some(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"))
            .examples(["ada@example.com"])
            .description(Some("An e-mail address (compared in lower case)."))
            .into()
    }
}

impl ToSchema for Email {}

/// A new password: 8 to 256 characters.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NewPassword(String);

impl PartialSchema for NewPassword {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .min_length(Some(8))
            .max_length(Some(256))
            .examples(["correct horse battery"])
            .description(Some("A new password: 8 to 256 characters."))
            .into()
    }
}

impl ToSchema for NewPassword {}

/// A password given to sign in (or to confirm one's identity): 1 to 256 characters.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl PartialSchema for Password {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .min_length(Some(1))
            .max_length(Some(256))
            .examples(["correct horse battery"])
            .into()
    }
}

impl ToSchema for Password {}

/// Sign-up body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct SignupRequest {
    /// The account's address; a verification link is mailed to it.
    email: Email,
    /// The password.
    password: NewPassword,
}

/// POST /auth/signup
pub async fn signup(state: web::Data<AppState>, body: Valid<SignupRequest>) -> Result<Created<Issued>, ApiError> {
    let b = body.0;
    Ok(Reply(state.auth.signup(b.email.normalized(), b.password.0).await?))
}

/// Sign-in body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    /// The account's address.
    email: Email,
    /// Its password.
    password: Password,
}

/// POST /auth/login
pub async fn login(state: web::Data<AppState>, body: Valid<LoginRequest>) -> Result<Reply<Issued>, ApiError> {
    let b = body.0;
    Ok(Reply(state.auth.login(b.email.normalized(), b.password.0).await?))
}

/// Refresh body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"refreshToken": "prt_3q2-HgXbQ0v8mX4yZl6hJcQw"}))]
pub struct RefreshRequest {
    /// The refresh token of the last sign-in or refresh (single use).
    #[schema(min_length = 1, max_length = 256)]
    refresh_token: String,
}

/// POST /auth/refresh
pub async fn refresh(state: web::Data<AppState>, body: Valid<RefreshRequest>) -> Result<Reply<Issued>, ApiError> {
    Ok(Reply(state.auth.refresh(body.0.refresh_token).await?))
}

/// Logout body (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"refreshToken": "prt_3q2-HgXbQ0v8mX4yZl6hJcQw"}))]
pub struct LogoutRequest {
    /// Also end the session of this refresh token (when it is the caller's).
    #[schema(min_length = 1, max_length = 256)]
    refresh_token: Option<String>,
}

/// `{loggedOut: true}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOut {
    /// Always true.
    logged_out: bool,
}

/// POST /auth/logout — the body is optional; when present it must be JSON.
pub async fn logout(
    state: web::Data<AppState>,
    user: User,
    body: OptionalBody<LogoutRequest>,
) -> Result<Reply<LoggedOut>, ApiError> {
    let token = body.0.and_then(|b| b.refresh_token);
    state.auth.logout(&user.0, token).await?;
    Ok(Reply(LoggedOut { logged_out: true }))
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// User id.
    id: String,
    /// Address.
    email: String,
    /// Whether the address is verified.
    email_verified: bool,
    /// Role.
    role: Role,
    /// Plan tier.
    tier: Tier,
    /// Beta access level.
    beta_level: Level,
}

/// GET /auth/me
pub async fn me(state: web::Data<AppState>, user: User, rid: Rid) -> Result<Reply<Me>, ApiError> {
    let p = user.0;
    let access = state
        .beta()?
        .get_user_access(grpc::outgoing(
            pb::GetUserAccessRequest {
                user_id: p.user_id.clone(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(Me {
        id: p.user_id,
        email: p.email,
        email_verified: p.email_verified,
        role: p.role,
        tier: p.tier,
        beta_level: Level::from_proto(access.access_level),
    }))
}

/// DELETE /auth/me — the account goes here at once; every service erases its share through
/// the outbox (a service that is down gets it when it is back).
pub async fn delete_me(state: web::Data<AppState>, user: User) -> Result<Reply<Deleted>, ApiError> {
    state
        .auth
        .delete_account(&user.0.user_id, &state.service_names())
        .await?;
    Ok(Reply(Deleted::YES))
}

/// A body that carries one mailed token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the mailed link.
    #[schema(
        min_length = 1,
        max_length = 128,
        example = "pmt_vvA9RzhICkoKTqXJA7dkWBYQab9wsDsO-ydC66YHO-0"
    )]
    token: String,
}

/// POST /auth/verify-email
pub async fn verify_email(state: web::Data<AppState>, body: Valid<TokenRequest>) -> Result<Reply<UserView>, ApiError> {
    Ok(Reply(state.auth.verify_email(body.0.token).await?))
}

/// `{sent: true}`, and what to expect.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    /// Always true.
    sent: bool,
    /// What happens next.
    message: &'static str,
}

/// POST /auth/resend-verification
pub async fn resend_verification(state: web::Data<AppState>, user: User) -> Result<Reply<Sent, 202>, ApiError> {
    state.auth.resend_verification(&user.0).await?;
    Ok(Reply(Sent {
        sent: true,
        message: "a new verification link is on its way",
    }))
}

/// Forgot-password body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct ForgotPassword {
    /// The account's address.
    email: Email,
}

/// POST /auth/forgot-password — 202 whether or not an account has the address.
pub async fn forgot_password(
    state: web::Data<AppState>,
    body: Valid<ForgotPassword>,
) -> Result<Reply<Sent, 202>, ApiError> {
    state.auth.forgot_password(body.0.email.normalized()).await?;
    Ok(Reply(Sent {
        sent: true,
        message: "if an account has this address, a reset link is on its way",
    }))
}

/// Reset-password body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "Yk3v9QmZ0a7WcT2pLr8sXe", "password": "a new long passphrase"}))]
pub struct ResetPassword {
    /// The token from the mailed link.
    #[schema(min_length = 1, max_length = 128)]
    token: String,
    /// The new password.
    password: NewPassword,
}

/// `{reset: true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    /// Always true: the password is set and every session has ended.
    reset: bool,
}

/// POST /auth/reset-password
pub async fn reset_password(
    state: web::Data<AppState>,
    body: Valid<ResetPassword>,
) -> Result<Reply<PasswordReset>, ApiError> {
    let b = body.0;
    state.auth.reset_password(b.token, b.password.0).await?;
    Ok(Reply(PasswordReset { reset: true }))
}

/// Change-password body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"currentPassword": "correct horse battery staple", "newPassword": "a new long passphrase"}))]
pub struct ChangePassword {
    /// The current password.
    current_password: Password,
    /// The new one.
    new_password: NewPassword,
}

/// `{changed: true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// Always true: the password is changed and every other session has ended.
    changed: bool,
}

/// POST /auth/change-password
pub async fn change_password(
    state: web::Data<AppState>,
    user: User,
    body: Valid<ChangePassword>,
) -> Result<Reply<PasswordChanged>, ApiError> {
    let b = body.0;
    state
        .auth
        .change_password(&user.0, b.current_password.0, b.new_password.0)
        .await?;
    Ok(Reply(PasswordChanged { changed: true }))
}

/// API key creation body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for (shown in lists).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "ci")]
    name: String,
    /// What it may do (default `["read", "write"]`; `admin` for admins only).
    #[schema(min_items = 1)]
    scopes: Option<Vec<Scope>>,
}

/// POST /auth/api-keys
pub async fn create_api_key(
    state: web::Data<AppState>,
    user: User,
    body: Valid<CreateApiKey>,
) -> Result<Created<NewApiKey>, ApiError> {
    let b = body.0;
    let mut scopes = b.scopes.unwrap_or_else(|| Scope::DEFAULT.to_vec());
    scopes.sort();
    scopes.dedup();
    let key = state
        .auth
        .create_api_key(&user.0, b.name.trim().to_string(), scopes)
        .await?;
    Ok(Reply(key))
}

/// GET /auth/api-keys
pub async fn list_api_keys(
    state: web::Data<AppState>,
    user: User,
) -> Result<Reply<Vec<crate::auth::ApiKeyView>>, ApiError> {
    Ok(Reply(state.auth.list_api_keys(&user.0.user_id).await?))
}

/// DELETE /auth/api-keys/{id}
pub async fn delete_api_key(
    state: web::Data<AppState>,
    user: User,
    id: web::Path<String>,
) -> Result<Reply<Deleted>, ApiError> {
    state.auth.delete_api_key(&user.0.user_id, &id).await?;
    Ok(Reply(Deleted::YES))
}

/// Tier body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tier": "pro"}))]
pub struct SetTier {
    /// The new tier.
    tier: Tier,
}

/// PUT /admin/users/{id}/tier
pub async fn set_tier(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
    body: Valid<SetTier>,
) -> Result<Reply<UserView>, ApiError> {
    Ok(Reply(state.auth.set_tier(&id, body.0.tier).await?))
}

/// Role body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct SetRole {
    /// The new role.
    role: Role,
}

/// PUT /admin/users/{id}/role
pub async fn set_role(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
    body: Valid<SetRole>,
) -> Result<Reply<UserView>, ApiError> {
    Ok(Reply(state.auth.set_role(&id, body.0.role).await?))
}
