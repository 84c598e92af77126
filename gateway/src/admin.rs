//! The operator's commands on the gateway's database (`portico admin grant|revoke EMAIL`):
//! how the first admin is made, since no one can claim the role through the API.

use portico_runtime::{
    cache::{Cache, CacheRegistry},
    db::Db,
};

use crate::{GatewayConfig, MIGRATIONS, auth::Role};

/// Gives the account with `email` the role `role`; its running sessions see the change at
/// once when Redis is shared, otherwise within `PORTICO_CACHE_TTL_SECS`. Returns the user id.
pub async fn set_role(config: &GatewayConfig, email: &str, role: Role) -> Result<String, String> {
    let db = Db::connect(&config.database_url, MIGRATIONS, 1)
        .await
        .map_err(|e| format!("gateway database: {e}"))?;
    let user_id = crate::auth::set_role_by_email(&db, email, role)
        .await
        .map_err(|e| format!("gateway database: {e}"))?
        .ok_or_else(|| format!("no account has the address {email}; sign up first, then grant"))?;
    if let Some(redis) = config.common.redis().map_err(|e| e.to_string())? {
        let users: Cache<serde_json::Value> = Cache::new(
            crate::auth::USERS_CACHE,
            1,
            config.common.cache_l1_ttl,
            config.common.cache_ttl,
            Some(redis),
            &CacheRegistry::default(),
        );
        users.invalidate(&user_id).await;
    }
    db.close();
    Ok(user_id)
}
