//! `/v1/auth/*` and `/v1/admin/users/*`.

use actix_web::{HttpRequest, http::StatusCode, web};
use portico_proto::beta::v1 as pb;
use portico_runtime::{ErrorCode, grpc};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Rid, User};
use crate::{
    AppState,
    auth::{Role, Scope, Tier, check_password, normalize_email},
    envelope::{ApiError, ApiResult, Json, ok, parse_json, success},
    routes::beta::level_name,
};

/// Signup and login body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: Option<String>,
    password: Option<String>,
}

impl Credentials {
    fn check(self, new_password: bool) -> Result<(String, String), ApiError> {
        let mut bad = Vec::new();
        let email = match self.email.as_deref().map(normalize_email) {
            None => {
                bad.push(("email", "is required"));
                String::new()
            }
            Some(Err(m)) => {
                bad.push(("email", m));
                String::new()
            }
            Some(Ok(e)) => e,
        };
        let password = self.password.unwrap_or_default();
        if password.is_empty() {
            bad.push(("password", "is required"));
        } else if new_password && let Err(m) = check_password(&password) {
            bad.push(("password", m));
        } else if password.len() > 256 {
            bad.push(("password", "must be at most 256 bytes"));
        }
        if bad.is_empty() {
            Ok((email, password))
        } else {
            Err(ApiError::fields(bad))
        }
    }
}

/// POST /auth/signup
pub async fn signup(state: web::Data<AppState>, body: Json<Credentials>) -> ApiResult {
    let (email, password) = body.0.check(true)?;
    let issued = state.auth.signup(email, password).await?;
    Ok(success(StatusCode::CREATED, issued))
}

/// POST /auth/login
pub async fn login(state: web::Data<AppState>, body: Json<Credentials>) -> ApiResult {
    let (email, password) = body.0.check(false)?;
    Ok(ok(state.auth.login(email, password).await?))
}

/// Refresh body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: Option<String>,
}

/// POST /auth/refresh
pub async fn refresh(state: web::Data<AppState>, body: Json<RefreshRequest>) -> ApiResult {
    let token = body
        .0
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::fields([("refreshToken", "is required")]))?;
    if token.len() > 256 {
        return Err(ApiError::new(
            ErrorCode::InvalidToken,
            "the refresh token is invalid or revoked",
        ));
    }
    Ok(ok(state.auth.refresh(token).await?))
}

/// Logout body (optional).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// POST /auth/logout — the body is optional; when present it must be JSON.
pub async fn logout(state: web::Data<AppState>, user: User, req: HttpRequest, body: web::Bytes) -> ApiResult {
    let parsed: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        let json = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            ));
        }
        parse_json(&body)?
    };
    state.auth.logout(&user.0, parsed.refresh_token).await?;
    Ok(ok(json!({ "loggedOut": true })))
}

/// GET /auth/me
pub async fn me(state: web::Data<AppState>, user: User, rid: Rid) -> ApiResult {
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
    Ok(ok(json!({
        "id": p.user_id,
        "email": p.email,
        "emailVerified": p.email_verified,
        "role": p.role.as_str(),
        "tier": p.tier.as_str(),
        "betaLevel": level_name(access.access_level),
    })))
}

/// DELETE /auth/me — the account goes here at once; every service erases its share through
/// the outbox (a service that is down gets it when it is back).
pub async fn delete_me(state: web::Data<AppState>, user: User) -> ApiResult {
    state
        .auth
        .delete_account(&user.0.user_id, &state.service_names())
        .await?;
    Ok(ok(json!({ "deleted": true })))
}

/// A body that carries one mailed token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    token: Option<String>,
}

fn required_token(token: Option<String>) -> Result<String, ApiError> {
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::fields([("token", "is required")]))
}

/// POST /auth/verify-email
pub async fn verify_email(state: web::Data<AppState>, body: Json<TokenRequest>) -> ApiResult {
    let token = required_token(body.0.token)?;
    Ok(ok(state.auth.verify_email(token).await?))
}

/// POST /auth/resend-verification
pub async fn resend_verification(state: web::Data<AppState>, user: User) -> ApiResult {
    state.auth.resend_verification(&user.0).await?;
    Ok(success(StatusCode::ACCEPTED, json!({ "sent": true })))
}

/// Forgot-password body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    email: Option<String>,
}

/// POST /auth/forgot-password — 202 whether or not an account has the address.
pub async fn forgot_password(state: web::Data<AppState>, body: Json<ForgotPassword>) -> ApiResult {
    let email = match body.0.email.as_deref().map(normalize_email) {
        None => return Err(ApiError::fields([("email", "is required")])),
        Some(Err(m)) => return Err(ApiError::fields([("email", m)])),
        Some(Ok(e)) => e,
    };
    state.auth.forgot_password(email).await?;
    Ok(success(
        StatusCode::ACCEPTED,
        json!({ "sent": true, "message": "if an account has this address, a reset link is on its way" }),
    ))
}

/// Reset-password body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    token: Option<String>,
    password: Option<String>,
}

/// POST /auth/reset-password
pub async fn reset_password(state: web::Data<AppState>, body: Json<ResetPassword>) -> ApiResult {
    let mut bad = Vec::new();
    if body.0.token.as_deref().is_none_or(str::is_empty) {
        bad.push(("token", "is required".to_string()));
    }
    let password = body.0.password.clone().unwrap_or_default();
    if password.is_empty() {
        bad.push(("password", "is required".to_string()));
    } else if let Err(m) = check_password(&password) {
        bad.push(("password", m.to_string()));
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    state
        .auth
        .reset_password(body.0.token.unwrap_or_default(), password)
        .await?;
    Ok(ok(json!({ "reset": true })))
}

/// Change-password body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangePassword {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// POST /auth/change-password
pub async fn change_password(state: web::Data<AppState>, user: User, body: Json<ChangePassword>) -> ApiResult {
    let mut bad = Vec::new();
    let current = body.0.current_password.unwrap_or_default();
    if current.is_empty() {
        bad.push(("currentPassword", "is required".to_string()));
    } else if current.len() > 256 {
        bad.push(("currentPassword", "must be at most 256 bytes".to_string()));
    }
    let new = body.0.new_password.unwrap_or_default();
    if new.is_empty() {
        bad.push(("newPassword", "is required".to_string()));
    } else if let Err(m) = check_password(&new) {
        bad.push(("newPassword", m.to_string()));
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    state.auth.change_password(&user.0, current, new).await?;
    Ok(ok(json!({ "changed": true })))
}

/// API key creation body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: Option<String>,
    scopes: Option<Vec<String>>,
}

/// POST /auth/api-keys
pub async fn create_api_key(state: web::Data<AppState>, user: User, body: Json<CreateApiKey>) -> ApiResult {
    let mut bad = Vec::new();
    let name = body.0.name.unwrap_or_default().trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        bad.push(("name", "must be 1 to 100 characters".to_string()));
    }
    let scopes = match body.0.scopes {
        None => Scope::DEFAULT.to_vec(),
        Some(names) => {
            let mut scopes: Vec<Scope> = names.iter().filter_map(|n| Scope::parse(n)).collect();
            scopes.sort();
            scopes.dedup();
            if names.is_empty() || scopes.len() != names.iter().collect::<std::collections::BTreeSet<_>>().len() {
                bad.push(("scopes", "must be a non-empty list of read, write, admin".to_string()));
            }
            scopes
        }
    };
    if !bad.is_empty() {
        return Err(ApiError::fields(bad));
    }
    let key = state.auth.create_api_key(&user.0, name, scopes).await?;
    Ok(success(StatusCode::CREATED, key))
}

/// GET /auth/api-keys
pub async fn list_api_keys(state: web::Data<AppState>, user: User) -> ApiResult {
    Ok(ok(state.auth.list_api_keys(&user.0.user_id).await?))
}

/// DELETE /auth/api-keys/{id}
pub async fn delete_api_key(state: web::Data<AppState>, user: User, id: web::Path<String>) -> ApiResult {
    state.auth.delete_api_key(&user.0.user_id, &id).await?;
    Ok(ok(json!({ "deleted": true })))
}

/// Tier body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTier {
    tier: Option<String>,
}

/// PUT /admin/users/{id}/tier
pub async fn set_tier(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
    body: Json<SetTier>,
) -> ApiResult {
    let tier = body
        .0
        .tier
        .as_deref()
        .and_then(Tier::parse)
        .ok_or_else(|| ApiError::fields([("tier", "must be free, pro or enterprise")]))?;
    Ok(ok(state.auth.set_tier(&id, tier).await?))
}

/// Role body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    role: Option<String>,
}

/// PUT /admin/users/{id}/role
pub async fn set_role(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
    body: Json<SetRole>,
) -> ApiResult {
    let role = body
        .0
        .role
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| ApiError::fields([("role", "must be user or admin")]))?;
    Ok(ok(state.auth.set_role(&id, role).await?))
}
