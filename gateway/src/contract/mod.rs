//! The API contract, from the types: every request body and query is a type deriving
//! `utoipa::ToSchema`, every answer a typed [`Reply`]; the route table names them, the
//! OpenAPI document is assembled from them, and requests are validated against the same
//! schemas, so the document and the checks cannot drift apart.

pub mod doc;
pub mod openapi;
mod reply;
mod validate;

pub use reply::{Created, Deleted, Raw, Reply};
pub use validate::{OptionalBody, Valid, ValidQuery, compiled, decode, schema_of};

/// Compile-time check that `handler` answers `Result<R, ApiError>`: the route table's
/// response type is the handler's own.
pub fn returns<R, F, Args>(_: &F)
where
    F: actix_web::Handler<Args, Output = Result<R, crate::envelope::ApiError>>,
    Args: actix_web::FromRequest,
{
}
