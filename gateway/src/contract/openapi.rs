//! `/openapi.json`, assembled from the route table and the types it names: every operation
//! with its success status and schema inside the envelope, every error status it can answer
//! with the codes behind it, its parameters with their constraints, the headers that carry
//! meaning and its security. Nothing here is a second copy of a schema.

use std::collections::BTreeSet;

use portico_runtime::ErrorCode;
use serde_json::{Map, Value, json};

use super::doc::{Schemas, describe};
use crate::routes::{API_ROUTES, Access, Budget, RouteDoc};

/// An operations endpoint outside the API scopes, for the document.
pub struct OpsDoc {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// Its path.
    pub path: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Operators only (the operators' listener, or admins on the API port).
    pub operators: bool,
    /// Its answers.
    pub response: fn(&mut Schemas) -> super::doc::Output,
    /// Error statuses it answers besides the usual ones.
    pub errors: &'static [ErrorCode],
    /// Its input (`parameters`, `requestBody`), when it takes any.
    pub input: Option<fn() -> Value>,
}

/// The codes every gated API call can answer, whatever the route.
const ALWAYS: &[ErrorCode] = &[
    ErrorCode::InvalidPath,
    ErrorCode::ValidationError,
    ErrorCode::InvalidToken,
    ErrorCode::TokenExpired,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::ServiceUnavailable,
    ErrorCode::Timeout,
];

/// The OpenAPI 3.1 document, stating `limits`.
pub fn document(ops: &[OpsDoc], limits: super::doc::Limits) -> Value {
    let (document, clashes) = assemble(ops, limits);
    if !clashes.is_empty() {
        tracing::error!(?clashes, "two schemas share a name in the OpenAPI document");
    }
    document
}

/// The document and the schema names two types claim (a test keeps that list empty).
pub fn assemble(ops: &[OpsDoc], limits: super::doc::Limits) -> (Value, BTreeSet<String>) {
    let mut schemas = Schemas::new(limits);
    let mut paths: Map<String, Value> = Map::new();
    for r in API_ROUTES {
        for (prefix, legacy) in [("/v1", false), ("/api", true)] {
            let op = operation(r, legacy, &mut schemas);
            let entry = paths.entry(format!("{prefix}{}", r.path)).or_insert_with(|| json!({}));
            entry[r.method] = op;
        }
    }
    for o in ops {
        let out = (o.response)(&mut schemas);
        let mut responses = Map::new();
        responses.insert(out.status.to_string(), with_request_id(out.response));
        for (status, response) in out.others {
            responses.insert(status.to_string(), with_request_id(response));
        }
        let mut codes: Vec<ErrorCode> = vec![ErrorCode::InvalidPath, ErrorCode::Internal];
        codes.extend_from_slice(o.errors);
        if o.operators {
            codes.extend([
                ErrorCode::Unauthorized,
                ErrorCode::Forbidden,
                ErrorCode::InvalidToken,
                ErrorCode::RateLimited,
            ]);
        }
        add_errors(&mut responses, &codes, false);
        let mut op = json!({
            "tags": [o.tag],
            "summary": o.summary,
            "operationId": operation_id(o.method, o.path, false),
            "responses": responses,
        });
        if let Some(input) = o.input
            && let Value::Object(fields) = input()
        {
            for (k, v) in fields {
                op[k] = v;
            }
        }
        op["security"] = if o.operators {
            json!([{ "bearer": [] }, { "apiKey": [] }])
        } else {
            json!([{}])
        };
        if o.operators {
            op["description"] = json!(
                "Operators only: open on the operators' listener (PORTICO_ADMIN_ADDR), admins only on the API port."
            );
        }
        paths.insert(o.path.to_string(), json!({ o.method: op }));
    }
    let codes: Vec<Value> = ErrorCode::ALL.iter().map(|c| json!(c.as_str())).collect();
    let catalogue: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| format!("- `{}` ({}): {}", c.as_str(), c.http_status(), c.description()))
        .collect();
    schemas.insert(
        "Meta".into(),
        json!({ "type": "object", "required": ["timestamp", "requestId"], "properties": {
            "timestamp": { "type": "string", "format": "date-time" },
            "requestId": { "type": "string", "description": "The request's X-Request-ID." } } }),
    );
    schemas.insert(
        "ErrorCode".into(),
        json!({ "type": "string", "enum": codes, "description": format!("The catalogue of error codes:\n{}", catalogue.join("\n")) }),
    );
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["success", "error", "meta"], "properties": {
            "success": { "const": false },
            "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "$ref": "#/components/schemas/ErrorCode" },
                "message": { "type": "string" },
                "details": { "description": "Structured details; validation errors name each bad field in `fields`." } } },
            "meta": { "$ref": "#/components/schemas/Meta" } } }),
    );
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portico API",
            "version": env!("CARGO_PKG_VERSION"),
            "license": { "name": env!("CARGO_PKG_LICENSE"), "identifier": env!("CARGO_PKG_LICENSE") },
            "description": "Every response uses the envelope {success, data | error, meta}. Errors carry a stable `code` from the catalogue (schema `ErrorCode`); validation errors name each bad field in `error.details.fields`. Paths must be sent as themselves: percent-encoded letters, digits or `-._~`, encoded slashes, empty and dot segments are refused with 400 INVALID_PATH.",
        },
        "servers": [{ "url": "/", "description": "The deployment serving this document." }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
            "headers": headers(),
            "schemas": schemas.schemas,
        },
    });
    (document, schemas.clashes)
}

fn headers() -> Value {
    json!({
        "X-Request-ID": { "description": "The request's id: the client's when well formed (1 to 128 of A-Z a-z 0-9 - _ . :), else a new UUID.", "schema": { "type": "string" } },
        "RateLimit-Policy": { "description": "The caller's budget (IETF RateLimit headers): `\"<tier>\";q=<limit>;w=60`.", "schema": { "type": "string" } },
        "RateLimit": { "description": "What is left of it: `\"<tier>\";r=<remaining>;t=<seconds to full>`.", "schema": { "type": "string" } },
        "Retry-After": { "description": "Seconds until a request is allowed again.", "schema": { "type": "integer", "minimum": 1 } },
        "Deprecation": { "description": "RFC 9745: when the /api alias was deprecated (`@<unix seconds>`).", "schema": { "type": "string" } },
        "Sunset": { "description": "RFC 8594: when the /api alias stops answering.", "schema": { "type": "string" } },
        "Link": { "description": "The /v1 successor: `</v1/...>; rel=\"successor-version\"`.", "schema": { "type": "string" } },
    })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

fn with_request_id(mut response: Value) -> Value {
    response["headers"]["X-Request-ID"] = header_ref("X-Request-ID");
    response
}

/// `operationId`: the method and the path's words, camel-cased (`postAuthSignup`,
/// `legacyGetMediaById`).
fn operation_id(method: &str, path: &str, legacy: bool) -> String {
    let mut id = if legacy {
        format!("legacy{}{}", &method[..1].to_ascii_uppercase(), &method[1..])
    } else {
        method.to_string()
    };
    for word in path.split(['/', '-', '.']).filter(|w| !w.is_empty()) {
        let word = match word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(param) => format!("by-{param}"),
            None => word.to_string(),
        };
        for part in word.split('-') {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.extend(chars);
            }
        }
    }
    id
}

/// What a path segment may hold (the router's canonical-path rule, `paths.rs`): no slash,
/// backslash or NUL, and not `.` or `..`.
const SEGMENT_PATTERN: &str = r"^(?:[^./\\\u0000][^/\\\u0000]*|\.[^./\\\u0000][^/\\\u0000]*|\.\.[^/\\\u0000]+)$";

/// The schema of a path parameter, by its name. OPTIONS answers for the path whatever the
/// value (tus discovery), so there it is any segment.
fn path_parameter(name: &str, method: &str) -> Value {
    let schema = match name {
        _ if method == "options" => json!({ "type": "string", "minLength": 1, "pattern": SEGMENT_PATTERN }),
        "variant" => json!({ "type": "string", "enum": ["thumbnail", "small", "medium", "large"] }),
        _ => json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": SEGMENT_PATTERN }),
    };
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn operation(r: &RouteDoc, legacy: bool, schemas: &mut Schemas) -> Value {
    let input = (r.request)(schemas);
    let output = (r.response)(schemas);
    let path_params: Vec<&str> = r
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect();
    let mut parameters: Vec<Value> = path_params.iter().map(|p| path_parameter(p, r.method)).collect();
    parameters.extend(input.parameters);

    let mut success = output.response;
    for h in ["RateLimit-Policy", "RateLimit", "X-Request-ID"] {
        success["headers"][h] = header_ref(h);
    }
    if legacy {
        for h in ["Deprecation", "Sunset", "Link"] {
            success["headers"][h] = header_ref(h);
        }
    }
    let mut responses = Map::new();
    responses.insert(output.status.to_string(), success);
    for (status, response) in output.others {
        responses.insert(status.to_string(), with_request_id(response));
    }

    let mut codes: Vec<ErrorCode> = ALWAYS.to_vec();
    match r.access {
        Access::Anonymous => {}
        Access::User => codes.extend([ErrorCode::Unauthorized, ErrorCode::Forbidden]),
        Access::Fresh => codes.extend([ErrorCode::Unauthorized, ErrorCode::FreshLoginRequired]),
        Access::Admin => codes.extend([ErrorCode::Unauthorized, ErrorCode::Forbidden]),
    }
    if input.body.is_some() {
        codes.extend([
            ErrorCode::InvalidJson,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
        ]);
    }
    if !path_params.is_empty() {
        codes.push(ErrorCode::NotFound);
    }
    codes.extend_from_slice(r.errors);
    add_errors(&mut responses, &codes, true);

    let mut op = json!({
        "tags": [r.tag],
        "summary": if r.access == Access::Admin { format!("{} (admin)", r.summary) } else { r.summary.to_string() },
        "operationId": operation_id(r.method, r.path, legacy),
        "parameters": parameters,
        "responses": responses,
        "security": match r.access {
            Access::Anonymous => json!([{}, { "bearer": [] }, { "apiKey": [] }]),
            Access::User | Access::Admin => json!([{ "bearer": [] }, { "apiKey": [] }]),
            // A fresh password sign-in: an access token, never an API key.
            Access::Fresh => json!([{ "bearer": [] }]),
        },
    });
    if let Some(body) = input.body {
        op["requestBody"] = body;
    }
    let mut notes = Vec::new();
    if r.budget == Budget::Chunks {
        notes.push(
            "Counted against the upload-chunk budget (`PORTICO_RATE_UPLOAD_CHUNKS_PER_MIN`), not the API budget."
                .to_string(),
        );
    }
    if r.access == Access::Fresh {
        notes.push("Needs a password sign-in from the last `PORTICO_FRESH_LOGIN_SECS` (an access token from login or signup; not an API key, not a refreshed session).".to_string());
    }
    if legacy {
        op["deprecated"] = Value::Bool(true);
        notes.push(format!(
            "Legacy alias of /v1{}; answers with Deprecation, Sunset and Link headers.",
            r.path
        ));
    }
    if !notes.is_empty() {
        op["description"] = json!(notes.join("\n\n"));
    }
    op
}

/// The error answers of `codes`, grouped by status, each naming the codes it may carry.
fn add_errors(responses: &mut Map<String, Value>, codes: &[ErrorCode], limited: bool) {
    let statuses: BTreeSet<u16> = codes.iter().map(|c| c.http_status()).collect();
    for status in statuses {
        let mut names: Vec<&str> = codes
            .iter()
            .filter(|c| c.http_status() == status)
            .map(|c| c.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut response = json!({
            "description": format!("{}: {}", describe(status), names.join(", ")),
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        });
        response["headers"]["X-Request-ID"] = header_ref("X-Request-ID");
        if status == 429 {
            response["headers"]["Retry-After"] = header_ref("Retry-After");
        }
        if limited && status != 400 {
            response["headers"]["RateLimit-Policy"] = header_ref("RateLimit-Policy");
            response["headers"]["RateLimit"] = header_ref("RateLimit");
        }
        responses.entry(status.to_string()).or_insert(response);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// A path parameter matches the documented pattern exactly when a client that
    /// percent-encodes it gets past the router's canonical-path check.
    #[test]
    fn the_segment_pattern_is_the_routers_rule() {
        let shape =
            jsonschema::validator_for(&serde_json::json!({ "type": "string", "pattern": super::SEGMENT_PATTERN }))
                .unwrap();
        for value in [
            "abc",
            "a b",
            "café",
            ".hidden",
            "a..b",
            "...",
            "..x",
            "x.",
            "line\nbreak",
            "%",
            "ü/",
            "a/b",
            "a\\b",
            "nul\u{0}",
            ".",
            "..",
            "./",
            "\\",
        ] {
            let mut encoded = String::new();
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    encoded.push(b as char);
                } else {
                    encoded.push_str(&format!("%{b:02X}"));
                }
            }
            let routed = crate::paths::check(&format!("/v1/media/{encoded}")).is_ok();
            assert_eq!(
                shape.is_valid(&serde_json::json!(value)),
                routed,
                "{value:?} → /v1/media/{encoded}"
            );
        }
    }

    #[test]
    fn operation_ids_are_camel_case_and_unique_per_alias() {
        assert_eq!(super::operation_id("post", "/auth/signup", false), "postAuthSignup");
        assert_eq!(
            super::operation_id("get", "/media/{id}/{variant}", false),
            "getMediaByIdByVariant"
        );
        assert_eq!(super::operation_id("get", "/media/{id}", true), "legacyGetMediaById");
        assert_eq!(
            super::operation_id("get", "/.well-known/jwks.json", false),
            "getWellKnownJwksJson"
        );
        assert_eq!(
            super::operation_id("post", "/beta/validate-invite", false),
            "postBetaValidateInvite"
        );
    }
}
