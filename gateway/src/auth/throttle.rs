//! Sign-in throttling per account, beside the per-IP limit: five failures within fifteen
//! minutes are free, each failure after that locks the address for twice as long as the one
//! before (30 s, 1 min, 2 min … up to 30 min). Addresses without an account are counted the
//! same way, so the answers (and their timing) do not tell which addresses are registered.

use portico_runtime::db::DbConnection;
use sha2::{Digest, Sha256};

use super::store::LoginFailureRow;

/// Failures counted within this window.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures allowed in the window before locks begin.
pub const FREE_FAILURES: i32 = 5;
/// The first lock.
const FIRST_LOCK_MS: i64 = 30_000;
/// The longest lock.
const MAX_LOCK_MS: i64 = 30 * 60 * 1000;

/// The key an address is counted under (its normalised form, hashed: the table holds no
/// address that never had an account).
pub fn key(email: &str) -> String {
    hex::encode(Sha256::digest(email.as_bytes()))
}

/// How long the `failures`-th failure in a window locks the address (0 while still free).
pub fn lock_ms(failures: i32) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES).unwrap_or(0).min(16);
    FIRST_LOCK_MS.saturating_mul(1_i64 << doublings).min(MAX_LOCK_MS)
}

/// Milliseconds the address is still locked for at `now` (0 when it may try).
pub fn locked_for(conn: &mut DbConnection, key: &str, now: i64) -> diesel::QueryResult<i64> {
    Ok(LoginFailureRow::find(conn, key)?.map_or(0, |r| (r.locked_until - now).max(0)))
}

/// Counts a failure and locks the address when it has run out of free attempts; returns the
/// lock's length (0 when none).
pub fn fail(conn: &mut DbConnection, key: &str, now: i64) -> diesel::QueryResult<i64> {
    let row = LoginFailureRow::record(conn, key, now, WINDOW_MS)?;
    let lock = lock_ms(row.failures);
    if lock > 0 {
        LoginFailureRow::lock(conn, key, now + lock)?;
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_locks_double_up_to_half_an_hour() {
        assert_eq!((1..FREE_FAILURES).map(lock_ms).max(), Some(0));
        assert_eq!(lock_ms(5), 30_000);
        assert_eq!(lock_ms(6), 60_000);
        assert_eq!(lock_ms(7), 120_000);
        assert_eq!(lock_ms(11), 1_800_000);
        assert_eq!(lock_ms(1_000), 1_800_000);
    }

    #[test]
    fn keys_hide_the_address() {
        let k = key("ada@example.com");
        assert_eq!(k.len(), 64);
        assert!(!k.contains("ada"));
        assert_eq!(k, key("ada@example.com"));
    }
}
