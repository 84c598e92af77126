//! The beta program's rules, free of I/O: levels, invitation validity, feature evaluation.

use std::collections::BTreeMap;

use portico_proto::beta::v1 as pb;
use rand::Rng;

/// Access levels in their order: a higher level sees everything a lower one sees. Redeeming a
/// code raises a member to the code's level and never lowers them; the store decides that in
/// the database (`MemberRow::join`), so concurrent joins cannot undo each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Not in the program.
    None = 1,
    /// Entry level.
    Basic = 2,
    /// Paying beta testers.
    Premium = 3,
    /// Power users.
    Advanced = 4,
    /// Everything, including developer tooling.
    Developer = 5,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 5] = [
        Level::None,
        Level::Basic,
        Level::Premium,
        Level::Advanced,
        Level::Developer,
    ];

    /// The rank stored in the database (1..=5).
    pub fn rank(self) -> i32 {
        self as i32
    }

    /// The level of a stored rank.
    pub fn from_rank(rank: i32) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.rank() == rank)
    }

    /// The public name (`NONE`, `BASIC`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Basic => "BASIC",
            Level::Premium => "PREMIUM",
            Level::Advanced => "ADVANCED",
            Level::Developer => "DEVELOPER",
        }
    }

    /// Parses a public name, case-insensitively.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The contract's enum value.
    pub fn to_proto(self) -> pb::AccessLevel {
        match self {
            Level::None => pb::AccessLevel::None,
            Level::Basic => pb::AccessLevel::Basic,
            Level::Premium => pb::AccessLevel::Premium,
            Level::Advanced => pb::AccessLevel::Advanced,
            Level::Developer => pb::AccessLevel::Developer,
        }
    }

    /// From the contract's enum value (`UNSPECIFIED` and unknown values give `None`).
    pub fn from_proto(value: i32) -> Option<Level> {
        match pb::AccessLevel::try_from(value).ok()? {
            pb::AccessLevel::Unspecified => None,
            pb::AccessLevel::None => Some(Level::None),
            pb::AccessLevel::Basic => Some(Level::Basic),
            pb::AccessLevel::Premium => Some(Level::Premium),
            pb::AccessLevel::Advanced => Some(Level::Advanced),
            pb::AccessLevel::Developer => Some(Level::Developer),
        }
    }
}

/// Why an invitation code cannot be redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteProblem {
    /// No such code.
    NotFound,
    /// Past its expiry.
    Expired,
    /// All uses consumed.
    Exhausted,
    /// Deactivated by an admin.
    Inactive,
}

/// The state of a code that decides whether it can be redeemed.
#[derive(Clone, Copy, Debug)]
pub struct InviteState {
    /// Whether an admin left it on.
    pub active: bool,
    /// Uses so far.
    pub uses: i32,
    /// Uses allowed.
    pub max_uses: i32,
    /// Expiry, Unix ms.
    pub expires_at: Option<i64>,
}

impl InviteState {
    /// Whether the code can be redeemed at `now_ms`; deactivation wins over expiry, expiry
    /// over exhaustion, so an admin's decision is what the user is told.
    pub fn check(&self, now_ms: i64) -> Result<(), InviteProblem> {
        if !self.active {
            Err(InviteProblem::Inactive)
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            Err(InviteProblem::Expired)
        } else if self.uses >= self.max_uses {
            Err(InviteProblem::Exhausted)
        } else {
            Ok(())
        }
    }

    /// Uses left (never negative).
    pub fn remaining(&self) -> i32 {
        (self.max_uses - self.uses).max(0)
    }
}

/// Whether each feature is on for `level`.
pub fn evaluate_features<'a>(
    level: Level,
    table: impl IntoIterator<Item = (&'a str, Level)>,
) -> BTreeMap<String, bool> {
    table
        .into_iter()
        .map(|(name, min)| (name.to_string(), level != Level::None && level >= min))
        .collect()
}

const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A new random code such as `BETA-7KQ2-M9XW-P3TD` (no easily confused characters).
pub fn generate_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::from("BETA");
    for _ in 0..3 {
        code.push('-');
        for _ in 0..4 {
            let i = rng.random_range(0..CODE_ALPHABET.len());
            code.push(char::from(CODE_ALPHABET.get(i).copied().unwrap_or(b'X')));
        }
    }
    code
}

/// Checks an admin-chosen code: 4–64 characters of `A-Z 0-9 _ -`.
pub fn validate_code(code: &str) -> Result<(), &'static str> {
    if !(4..=64).contains(&code.len()) {
        return Err("must be 4 to 64 characters");
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("may contain only A-Z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// Normalises a code typed by a user (codes are case-insensitive, surrounding space ignored).
pub fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Checks a feature name: 1–64 characters of `a-z 0-9 _ . -`.
pub fn validate_feature_name(name: &str) -> Result<(), &'static str> {
    if !(1..=64).contains(&name.len()) {
        return Err("must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-')
    {
        return Err("may contain only a-z, 0-9, '_', '.' and '-'");
    }
    Ok(())
}

/// The demo codes of the embedded developer stack.
pub const DEMO_CODES: [(&str, Level, i32); 3] = [
    ("COSNAPBETA2025", Level::Basic, 100),
    ("PREMIUM_BETA_2025", Level::Premium, 50),
    ("DEV_ACCESS_2025", Level::Developer, 10),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Level::None < Level::Basic && Level::Advanced < Level::Developer);
        for l in Level::ALL {
            assert_eq!(Level::from_rank(l.rank()), Some(l));
            assert_eq!(Level::parse(&l.as_str().to_lowercase()), Some(l));
            assert_eq!(Level::from_proto(l.to_proto() as i32), Some(l));
        }
        assert_eq!(Level::parse("GOLD"), None);
        assert_eq!(Level::from_proto(0), None);
    }

    #[test]
    fn invite_checks_report_the_admins_decision_first() {
        let s = InviteState {
            active: false,
            uses: 10,
            max_uses: 10,
            expires_at: Some(0),
        };
        assert_eq!(s.check(1), Err(InviteProblem::Inactive));
        let s = InviteState { active: true, ..s };
        assert_eq!(s.check(1), Err(InviteProblem::Expired));
        let s = InviteState { expires_at: None, ..s };
        assert_eq!(s.check(1), Err(InviteProblem::Exhausted));
        let s = InviteState { uses: 9, ..s };
        assert_eq!(s.check(1), Ok(()));
        assert_eq!(s.remaining(), 1);
        let s = InviteState {
            expires_at: Some(100),
            ..s
        };
        assert_eq!(
            s.check(100),
            Err(InviteProblem::Expired),
            "expiry instant itself is expired"
        );
    }

    #[test]
    fn features_follow_the_minimum_level() {
        let table = [("a", Level::Basic), ("b", Level::Premium), ("c", Level::None)];
        let f = evaluate_features(Level::Basic, table);
        assert_eq!(f.get("a"), Some(&true));
        assert_eq!(f.get("b"), Some(&false));
        let f = evaluate_features(Level::None, table);
        assert!(f.values().all(|on| !on), "non-members see nothing");
    }

    #[test]
    fn generated_codes_are_valid_and_distinct() {
        let a = generate_code();
        assert!(validate_code(&a).is_ok(), "{a}");
        assert_eq!(a.len(), 19);
        assert_ne!(a, generate_code());
        assert!(validate_code("bad code").is_err());
        assert!(validate_code("AB").is_err());
        assert_eq!(normalize_code("  cosnapbeta2025 "), "COSNAPBETA2025");
    }
}
