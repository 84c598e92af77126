//! Mailed single-use tokens: e-mail verification (24 h) and password reset (1 h), plus the
//! password change of a signed-in user. Tokens are stored as SHA-256 only, used by one
//! conditional UPDATE (two concurrent uses cannot both succeed), and every mail is queued in
//! the transaction that made its token.

use portico_mail::Mail;
use portico_runtime::{
    ErrorCode,
    db::{DbConnection, now_ms},
};

use super::{
    Auth, Credential, Principal, UserView, bad_credentials, crypto, retry_later,
    store::{self, LoginFailureRow, Purpose, UserRow},
    throttle,
};
use crate::envelope::ApiError;

/// How long a verification link works.
const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;
/// How long a reset link works.
const RESET_TTL_MS: i64 = 3600 * 1000;
/// Least time between two verification (or two reset) mails to one account.
pub const MAIL_COOLDOWN_MS: i64 = 60_000;

/// Where mailed links point: templates with `{token}` (`PORTICO_VERIFY_EMAIL_URL`,
/// `PORTICO_RESET_PASSWORD_URL`; by default pages under `PORTICO_PUBLIC_URL` that post the
/// token to the API).
#[derive(Clone, Debug)]
pub struct Links {
    /// The verification page.
    pub verify: String,
    /// The password-reset page.
    pub reset: String,
}

impl Links {
    fn verify(&self, token: &str) -> String {
        self.verify.replace("{token}", token)
    }

    fn reset(&self, token: &str) -> String {
        self.reset.replace("{token}", token)
    }
}

fn link_invalid() -> ApiError {
    ApiError::new(
        ErrorCode::LinkInvalid,
        "this link is unknown, already used or expired; ask for a new one",
    )
}

/// A token as presented: our prefix and a sane length, else it cannot be one of ours.
fn plausible(token: &str) -> bool {
    token.starts_with(crypto::MAIL_TOKEN_PREFIX) && token.len() <= 128
}

impl Auth {
    /// Makes a verification token for `user` and queues its mail (inside the caller's
    /// transaction).
    pub(super) fn queue_verification(&self, conn: &mut DbConnection, user: &UserRow, now: i64) -> Result<(), ApiError> {
        let token = crypto::new_mail_token();
        store::insert_email_token(
            conn,
            &crypto::token_hash(&token),
            &user.id,
            Purpose::Verify,
            now,
            now + VERIFY_TTL_MS,
        )?;
        portico_mail::enqueue(
            conn,
            &Mail {
                to: user.email.clone(),
                subject: "Verify your e-mail address".into(),
                text: format!(
                    "Welcome to Portico.\n\nOpen this link within 24 hours to verify your address:\n\n{}\n\n\
                     (Or send this token to POST /v1/auth/verify-email: {token})\n\n\
                     If you did not create an account, ignore this message.\n",
                    self.settings.links.verify(&token)
                ),
            },
        )?;
        Ok(())
    }

    /// Verifies an address with its mailed token (single use).
    pub async fn verify_email(&self, token: String) -> Result<UserView, ApiError> {
        if !plausible(&token) {
            return Err(link_invalid());
        }
        let hash = crypto::token_hash(&token);
        let user = self
            .db
            .write(move |conn| {
                let now = now_ms();
                let user_id =
                    store::consume_email_token(conn, &hash, Purpose::Verify, now)?.ok_or_else(link_invalid)?;
                UserRow::mark_verified(conn, &user_id, now)?;
                UserRow::find(conn, &user_id)?.ok_or_else(link_invalid)
            })
            .await?;
        self.users.invalidate(&user.id).await;
        Ok(Self::view(&user))
    }

    /// Mails a new verification link, at most once a minute per account.
    pub async fn resend_verification(&self, principal: &Principal) -> Result<(), ApiError> {
        let id = principal.user_id.clone();
        let me = self.clone();
        self.db
            .write(move |conn| {
                let now = now_ms();
                let user = UserRow::find(conn, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
                if user.email_verified_at.is_some() {
                    return Err(ApiError::new(ErrorCode::Conflict, "the address is already verified"));
                }
                if !UserRow::take_verification_slot(conn, &id, now, MAIL_COOLDOWN_MS)? {
                    let wait = user
                        .verification_sent_at
                        .map_or(MAIL_COOLDOWN_MS, |at| at + MAIL_COOLDOWN_MS - now);
                    return Err(cooldown(wait));
                }
                me.queue_verification(conn, &user, now)
            })
            .await?;
        self.outbox.notify();
        Ok(())
    }

    /// Mails a reset link when an account has this address (at most once a minute); answers
    /// the same whether or not one does.
    pub async fn forgot_password(&self, email: String) -> Result<(), ApiError> {
        let links = self.settings.links.clone();
        let queued = self
            .db
            .write(move |conn| {
                let now = now_ms();
                let Some(user) = UserRow::by_email(conn, &email)? else {
                    return Ok::<_, ApiError>(false);
                };
                if !UserRow::take_reset_slot(conn, &user.id, now, MAIL_COOLDOWN_MS)? {
                    return Ok(false);
                }
                let token = crypto::new_mail_token();
                store::insert_email_token(
                    conn,
                    &crypto::token_hash(&token),
                    &user.id,
                    Purpose::Reset,
                    now,
                    now + RESET_TTL_MS,
                )?;
                portico_mail::enqueue(
                    conn,
                    &Mail {
                        to: user.email.clone(),
                        subject: "Reset your password".into(),
                        text: format!(
                            "Someone asked to reset the password of your Portico account.\n\n\
                             Open this link within an hour to choose a new one:\n\n{}\n\n\
                             (Or send this token with your new password to POST /v1/auth/reset-password: {token})\n\n\
                             Setting a new password signs you out everywhere. If you did not ask for this, \
                             ignore this message: your password stays as it is.\n",
                            links.reset(&token)
                        ),
                    },
                )?;
                Ok(true)
            })
            .await?;
        if queued {
            self.outbox.notify();
        }
        Ok(())
    }

    /// Sets a new password with a mailed reset token (single use): every session ends, older
    /// reset links die, the address counts as verified (the mailbox was just proven).
    pub async fn reset_password(&self, token: String, password: String) -> Result<(), ApiError> {
        if !plausible(&token) {
            return Err(link_invalid());
        }
        let hash = crypto::token_hash(&token);
        // Look before hashing, so a guessed token costs no password hash; the use itself is
        // the conditional UPDATE below.
        let h = hash.clone();
        let known = self
            .db
            .run(move |conn| store::reset_token_usable(conn, &h, now_ms()).map_err(ApiError::from))
            .await?;
        if !known {
            return Err(link_invalid());
        }
        let password_hash = self.hash_password(password).await?;
        let user_id = self
            .db
            .write(move |conn| {
                let now = now_ms();
                let user_id = store::consume_email_token(conn, &hash, Purpose::Reset, now)?.ok_or_else(link_invalid)?;
                let user = UserRow::find(conn, &user_id)?.ok_or_else(link_invalid)?;
                UserRow::set_password(conn, &user_id, &password_hash, now)?;
                store::revoke_all_sessions(conn, &user_id, "password_reset", now)?;
                store::spend_email_tokens(conn, &user_id, Purpose::Reset, now)?;
                UserRow::mark_verified(conn, &user_id, now)?;
                LoginFailureRow::clear(conn, &throttle::key(&user.email))?;
                Ok::<_, ApiError>(user_id)
            })
            .await?;
        self.users.invalidate(&user_id).await;
        tracing::info!(user_id, "password reset; every session revoked");
        Ok(())
    }

    /// Changes the password of a freshly signed-in user who knows the current one; every
    /// other session ends.
    pub async fn change_password(&self, principal: &Principal, current: String, new: String) -> Result<(), ApiError> {
        let Credential::AccessToken { sid } = &principal.credential else {
            return Err(ApiError::new(
                ErrorCode::FreshLoginRequired,
                "sign in with your password to do this",
            ));
        };
        let id = principal.user_id.clone();
        let user = self
            .db
            .run(move |conn| UserRow::find(conn, &id).map_err(ApiError::from))
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        if !self.verify_password(current, Some(user.password_hash.clone())).await? {
            return Err(ApiError(bad_credentials().0.with_details(
                serde_json::json!({ "fields": { "currentPassword": "is wrong" } }),
            )));
        }
        let password_hash = self.hash_password(new).await?;
        let (id, keep) = (principal.user_id.clone(), sid.clone());
        self.db
            .write(move |conn| {
                let now = now_ms();
                UserRow::set_password(conn, &id, &password_hash, now)?;
                store::revoke_other_sessions(conn, &id, &keep, "password_changed", now)?;
                Ok::<_, ApiError>(())
            })
            .await?;
        self.users.invalidate(&principal.user_id).await;
        Ok(())
    }
}

fn cooldown(wait_ms: i64) -> ApiError {
    retry_later(
        ErrorCode::RateLimited,
        "a mail was sent less than a minute ago",
        wait_ms,
    )
}
