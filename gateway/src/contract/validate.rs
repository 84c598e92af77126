//! Requests checked against the schemas their types derive: the constraints written once on a
//! type (`#[schema(min_length = 8)]`, `deny_unknown_fields`, enums, patterns) are what the
//! OpenAPI document shows and what every body and query is held to, and every bad field is
//! named in one answer.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use futures_util::future::LocalBoxFuture;
use jsonschema::{
    ValidationError, Validator,
    error::ValidationErrorKind,
    paths::{Location, LocationSegment},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::doc::{rewrite_refs, schema_value};
use crate::envelope::{ApiError, json_value, read_json_body};

/// The JSON Schema of `T` alone: its own schema with every schema it refers to under `$defs`
/// (references rewritten to point there), ready for a validator.
pub fn schema_of<T: ToSchema>() -> Value {
    let mut defs = Vec::new();
    T::schemas(&mut defs);
    let mut root = schema_value(&T::schema());
    let defs: Map<String, Value> = defs
        .into_iter()
        .map(|(name, schema)| (name, schema_value(&schema)))
        .collect();
    if let Value::Object(root) = &mut root
        && !defs.is_empty()
    {
        root.insert("$defs".into(), Value::Object(defs));
    }
    rewrite_refs(&mut root, "#/components/schemas/", &|name| format!("#/$defs/{name}"));
    root
}

type Cache = RwLock<HashMap<TypeId, Arc<Compiled>>>;

/// A type's validator and the root schema it was built from (the query reader needs the
/// property types).
pub struct Compiled {
    validator: Validator,
    schema: Value,
}

/// The compiled validator of `T`, built on first use and kept.
pub fn compiled<T: ToSchema + 'static>() -> Result<Arc<Compiled>, ApiError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let id = TypeId::of::<T>();
    if let Some(c) = cache.read().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(c);
    }
    let schema = schema_of::<T>();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| ApiError::internal(format!("the schema of {} does not compile: {e}", T::name())))?;
    let compiled = Arc::new(Compiled { validator, schema });
    if let Ok(mut m) = cache.write() {
        m.insert(id, Arc::clone(&compiled));
    }
    Ok(compiled)
}

/// Checks `value` against `T`'s schema and decodes it; every bad field is named.
pub fn decode<T: DeserializeOwned + ToSchema + 'static>(value: Value) -> Result<T, ApiError> {
    let compiled = compiled::<T>()?;
    let mut bad: Vec<(String, String)> = Vec::new();
    for error in compiled.validator.iter_errors(&value) {
        explain(&error, &mut bad);
    }
    if !bad.is_empty() {
        bad.sort();
        bad.dedup_by(|a, b| a.0 == b.0);
        return Err(ApiError::fields(bad));
    }
    // JSON Schema counts 3.0 as an integer; serde does not: make whole numbers integers.
    let mut value = value;
    whole_numbers(&mut value);
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        // serde's path reads `events[3].feature` already.
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ApiError::fields([(field, e.into_inner().to_string())])
    })
}

fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A field's name from where an error is, the way clients write it: `events[3].feature`
/// (the services name their fields the same way).
fn field(at: &Location, property: Option<&str>) -> String {
    let mut name = String::new();
    for segment in at.iter() {
        match segment {
            LocationSegment::Index(i) => name.push_str(&format!("[{i}]")),
            LocationSegment::Property(key) => push_key(&mut name, &key),
        }
    }
    if let Some(p) = property {
        push_key(&mut name, p);
    }
    if name.is_empty() { "body".to_string() } else { name }
}

fn push_key(name: &mut String, key: &str) {
    if !name.is_empty() {
        name.push('.');
    }
    name.push_str(key);
}

/// What is wrong, in words a client can act on, for every field an error concerns.
fn explain(error: &ValidationError<'_>, out: &mut Vec<(String, String)>) {
    let at = error.instance_path();
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            out.push((field(at, property.as_str()), "is required".into()));
            return;
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                out.push((field(at, Some(name)), "is not a known field".into()));
            }
            return;
        }
        // An optional reference (`oneOf [$ref, null]`) or a choice of shapes: report what
        // the closest non-null branch says.
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let branch = context
                .iter()
                .filter(|errors| {
                    !errors
                        .iter()
                        .all(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }) && e.instance_path() == at)
                })
                .min_by_key(|errors| errors.len());
            match branch {
                Some(errors) => {
                    for e in errors {
                        explain(e, out);
                    }
                    return;
                }
                None => "has the wrong type".to_string(),
            }
        }
        ValidationErrorKind::Type { kind } => format!("must be {}", type_words(&format!("{kind:?}"))),
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} characters"),
        ValidationErrorKind::MaxLength { limit } => format!("must be at most {limit} characters"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinItems { limit } => format!("must hold at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must hold at most {limit} items"),
        ValidationErrorKind::UniqueItems => "must not repeat an item".into(),
        ValidationErrorKind::Enum { options } => format!(
            "{} is not one of {}",
            error.instance(),
            options
                .as_array()
                .map(|o| o
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Pattern { pattern } => format!("must match {pattern}"),
        ValidationErrorKind::Format { format } => match format.as_str() {
            "email" => "must be an email address".into(),
            "date-time" => "must be an RFC 3339 date-time".into(),
            other => format!("must be a valid {other}"),
        },
        _ => error.to_string(),
    };
    out.push((field(at, None), message));
}

fn type_words(kind: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    ["string", "integer", "number", "boolean", "object", "array", "null"]
        .iter()
        .filter(|t| kind.contains(*t))
        .map(|t| match *t {
            "object" | "array" | "integer" => format!("an {t}"),
            "null" => "null".to_string(),
            other => format!("a {other}"),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A JSON body of type `T`, checked against `T`'s schema. Wrong Content-Type → 415; over
/// the cap → 413; not JSON → 400 `INVALID_JSON` with the position; anything the schema
/// refuses → 400 `VALIDATION_ERROR` naming every bad field.
pub struct Valid<T>(pub T);

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for Valid<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_json_body(req, payload);
        Box::pin(async move { decode(json_value(&body.await?)?).map(Valid) })
    }
}

/// Like [`Valid`] for a body that may be left out: an empty body is `None`; one that is sent
/// must be JSON and valid.
pub struct OptionalBody<T>(pub Option<T>);

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for OptionalBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let empty = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (req.headers().get(actix_web::http::header::CONTENT_TYPE).is_none()
                && !req.headers().contains_key(actix_web::http::header::TRANSFER_ENCODING));
        if empty {
            return Box::pin(async { Ok(OptionalBody(None)) });
        }
        let body = read_json_body(req, payload);
        Box::pin(async move {
            let bytes = body.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalBody(None));
            }
            decode(json_value(&bytes)?).map(|v| OptionalBody(Some(v)))
        })
    }
}

/// A query string of type `T`, checked against `T`'s schema (values read as the types the
/// schema gives their parameters); unknown and malformed parameters are named.
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(query::<T>(req.query_string()).map(ValidQuery))
    }
}

fn query<T: DeserializeOwned + ToSchema + 'static>(raw: &str) -> Result<T, ApiError> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(raw)
        .map_err(|e| ApiError::fields([("query", e.to_string())]))?
        .into_inner();
    let compiled = compiled::<T>()?;
    let properties = compiled.schema.get("properties");
    let mut object = Map::new();
    for (name, text) in pairs {
        if object.contains_key(&name) {
            return Err(ApiError::fields([(name, "appears twice".to_string())]));
        }
        let kind = properties
            .and_then(|p| p.get(&name))
            .and_then(|p| p.get("type"))
            .map(Value::to_string)
            .unwrap_or_default();
        let value = if kind.contains("integer") {
            text.parse::<i64>().map(Value::from).unwrap_or(Value::String(text))
        } else if kind.contains("number") {
            text.parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or(Value::String(text))
        } else if kind.contains("boolean") {
            match text.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(text),
            }
        } else {
            Value::String(text)
        };
        object.insert(name, value);
    }
    decode(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use utoipa::ToSchema;

    use super::*;
    use portico_runtime::ErrorCode;

    #[derive(Deserialize, Debug, ToSchema)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        #[schema(minimum = 1, maximum = 10)]
        max_uses: i32,
        #[schema(min_length = 4)]
        code: Option<String>,
        active: Option<bool>,
        tags: Option<Vec<Tag>>,
    }

    #[derive(Deserialize, Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    enum Tag {
        Red,
        Blue,
    }

    fn refused(body: &[u8]) -> (ErrorCode, Vec<String>) {
        let e = json_value(body).and_then(decode::<Body>).err().map(|e| e.0);
        let code = e.as_ref().map_or(ErrorCode::Internal, |p| p.code);
        let fields = e
            .and_then(|p| p.details)
            .and_then(|d| {
                d.get("fields")
                    .and_then(|f| f.as_object().map(|m| m.keys().cloned().collect()))
            })
            .unwrap_or_default();
        (code, fields)
    }

    #[test]
    fn every_bad_field_is_named_in_one_answer() {
        let (code, fields) =
            refused(br#"{"maxUses": "ten", "code": 5, "active": true, "colour": "red", "tags": ["red", "green"]}"#);
        assert_eq!(code, ErrorCode::ValidationError);
        assert_eq!(fields, vec!["code", "colour", "maxUses", "tags[1]"]);
        let (_, fields) = refused(br#"{"code": "abc"}"#);
        assert_eq!(fields, vec!["code", "maxUses"], "a missing field and a short one");
        let (_, fields) = refused(br#"{"maxUses": 11}"#);
        assert_eq!(fields, vec!["maxUses"]);
    }

    #[test]
    fn syntax_errors_are_invalid_json_with_a_position() {
        let e = json_value(b"{\"code\": ").err().map(|e| e.0);
        assert_eq!(e.as_ref().map(|p| p.code), Some(ErrorCode::InvalidJson));
        assert!(e.and_then(|p| p.details).is_some_and(|d| d.get("line").is_some()));
        assert_eq!(refused(b"[1,2]").1, vec!["body"], "a non-object body is named as body");
    }

    #[test]
    fn valid_bodies_decode() {
        let b = json_value(br#"{"maxUses": 3, "tags": ["blue"]}"#)
            .and_then(decode::<Body>)
            .ok();
        assert_eq!(b.map(|b| b.max_uses), Some(3));
    }

    #[test]
    fn queries_are_read_by_the_schema_types_of_their_parameters() {
        let b = query::<Body>("maxUses=3&active=true&code=abcd").ok();
        assert_eq!(b.map(|b| (b.max_uses, b.active)), Some((3, Some(true))));
        let e = query::<Body>("maxUses=ten&active=maybe&what=1")
            .err()
            .map(|e| e.0.details);
        let fields: Vec<String> = e
            .flatten()
            .and_then(|d| {
                d.get("fields")
                    .and_then(|f| f.as_object().map(|m| m.keys().cloned().collect()))
            })
            .unwrap_or_default();
        assert_eq!(fields, vec!["active", "maxUses", "what"]);
        assert!(query::<Body>("maxUses=1&maxUses=2").is_err(), "a repeated parameter");
    }
}
