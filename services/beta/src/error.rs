//! The beta service's errors, converted once into the public catalogue.

use portico_runtime::{ErrorCode, Problem, db::DbError};

use crate::domain::InviteProblem;

/// Everything a beta operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BetaError {
    /// Bad input, per field.
    #[error("invalid input")]
    Invalid(Vec<(String, String)>),
    /// The code cannot be redeemed.
    #[error("invitation code unusable: {0:?}")]
    Invite(InviteProblem),
    /// A code by that name exists.
    #[error("invitation code exists")]
    CodeTaken,
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl BetaError {
    /// One invalid field.
    pub fn field(name: &str, message: &str) -> Self {
        BetaError::Invalid(vec![(name.to_string(), message.to_string())])
    }
}

impl From<diesel::result::Error> for BetaError {
    fn from(e: diesel::result::Error) -> Self {
        BetaError::Db(DbError::Query(e))
    }
}

impl From<BetaError> for Problem {
    fn from(e: BetaError) -> Problem {
        match e {
            BetaError::Invalid(fields) => Problem::validation(fields),
            BetaError::Invite(p) => match p {
                InviteProblem::NotFound => Problem::new(ErrorCode::InviteNotFound, "no invitation code by that name"),
                InviteProblem::Expired => Problem::new(ErrorCode::InviteExpired, "the invitation code has expired"),
                InviteProblem::Inactive => {
                    Problem::new(ErrorCode::InviteInactive, "the invitation code was deactivated")
                }
                InviteProblem::Exhausted => {
                    Problem::new(ErrorCode::InviteExhausted, "the invitation code has no uses left")
                }
            },
            BetaError::CodeTaken => Problem::new(ErrorCode::Conflict, "an invitation code by that name exists")
                .with_details(serde_json::json!({"fields": {"code": "already exists"}})),
            BetaError::NotFound(what) => Problem::new(ErrorCode::NotFound, format!("{what} not found")),
            BetaError::Db(e) => e.into(),
        }
    }
}
