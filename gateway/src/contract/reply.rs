//! Typed answers: a handler returns `Reply<T, STATUS>` (the success envelope around `T`) or
//! `Raw<D>` (a response of its own, documented by `D`), so the route table's response type
//! is the handler's, checked by the compiler.

use std::marker::PhantomData;

use actix_web::{HttpRequest, HttpResponse, Responder, body::BoxBody, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::envelope::success;

/// The success envelope with status `S` around `data`.
#[derive(Debug)]
pub struct Reply<T, const S: u16 = 200>(pub T);

/// 201 with the created resource.
pub type Created<T> = Reply<T, 201>;

impl<T: Serialize, const S: u16> Responder for Reply<T, S> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        success(StatusCode::from_u16(S).unwrap_or(StatusCode::OK), self.0)
    }
}

/// A response a handler builds itself (bytes, tus headers), documented by `D`.
pub struct Raw<D>(pub HttpResponse, PhantomData<D>);

impl<D> Raw<D> {
    /// Wraps a response documented by `D`.
    pub fn new(response: HttpResponse) -> Self {
        Raw(response, PhantomData)
    }
}

impl<D> Responder for Raw<D> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.0
    }
}

/// `{deleted: true}`.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct Deleted {
    /// Always true.
    pub deleted: bool,
}

impl Deleted {
    /// The answer of a deletion.
    pub const YES: Deleted = Deleted { deleted: true };
}
