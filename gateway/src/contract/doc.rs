//! How each kind of input and answer shows in the OpenAPI document. The route table names a
//! request type (`Valid<T>`, `ValidQuery<T>`, `OptionalBody<T>`, a tuple of them, or `()`)
//! and a response type (`Reply<T, S>`, `Raw<D>`); their `RequestDoc` / `ResponseDoc`
//! implementations turn the same types the handlers use into the document's parts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    reply::{Raw, Reply},
    validate::{OptionalBody, Valid, ValidQuery},
};

/// The configured caps the document states (so a client reads the limits this deployment
/// enforces, not the defaults).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `PORTICO_MEDIA_MAX_BYTES`.
    pub upload_bytes: u64,
    /// `PORTICO_MEDIA_MAX_CHUNK_BYTES`.
    pub chunk_bytes: u64,
    /// `PORTICO_JSON_LIMIT_BYTES`.
    pub json_bytes: u64,
}

/// The document's component schemas, filled as operations name types.
pub struct Schemas {
    /// The schemas, by name.
    pub schemas: BTreeMap<String, Value>,
    /// The caps the document states.
    pub limits: Limits,
    /// Names given to two different schemas (two types of one name): each must be renamed
    /// (`#[schema(as = ...)]`), or one would silently describe the other.
    pub clashes: BTreeSet<String>,
}

impl Schemas {
    /// An empty set for a deployment with `limits`.
    pub fn new(limits: Limits) -> Self {
        Schemas {
            schemas: BTreeMap::new(),
            limits,
            clashes: BTreeSet::new(),
        }
    }

    /// Files `schema` under `name`, noting a clash when the name holds another one.
    pub fn insert(&mut self, name: String, schema: Value) {
        match self.schemas.get(&name) {
            Some(known) if *known != schema => {
                self.clashes.insert(name);
            }
            Some(_) => {}
            None => {
                self.schemas.insert(name, schema);
            }
        }
    }

    /// Files every schema `T` refers to.
    fn add_nested<T: ToSchema>(&mut self) {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (name, schema) in nested {
            self.insert(name, schema_value(&schema));
        }
    }

    /// Adds `T` (and every schema it refers to) and answers a reference to it.
    pub fn add<T: ToSchema>(&mut self) -> Value {
        self.add_nested::<T>();
        let schema = schema_value(&T::schema());
        // Lists, maps and primitives have no name of their own (utoipa calls every list
        // `Vec`): they stand inline; named objects and enums become components.
        let named = schema.get("properties").is_some() || schema.get("enum").is_some() || schema.get("oneOf").is_some();
        if !named || schema.get("$ref").is_some() {
            return schema;
        }
        let name = T::name().to_string();
        self.insert(name.clone(), schema);
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Adds a schema written as JSON under `name` (for what no Rust type describes, such as
    /// the workflow document's own JSON Schema) and answers a reference to it.
    pub fn add_named(&mut self, name: &str, schema: Value) -> Value {
        self.insert(name.to_string(), schema);
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }
}

/// Points every `$ref` that starts with `from` elsewhere: `#/…/name` → `to(name)`.
pub fn rewrite_refs(value: &mut Value, from: &str, to: &dyn Fn(&str) -> String) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix(from)
            {
                *r = to(name);
            }
            map.values_mut().for_each(|v| rewrite_refs(v, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, from, to)),
        _ => {}
    }
}

/// A schema as JSON, with the ranges its integer formats imply written out (`int32`,
/// `int64`, `uint32`, `uint64` are annotations in JSON Schema; spelled as bounds, the
/// validator enforces them and every client reads them).
pub fn schema_value<S: serde::Serialize>(schema: &S) -> Value {
    let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
    bound_integers(&mut value);
    value
}

fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let bounds: Option<(i128, i128)> = match map.get("format").and_then(Value::as_str) {
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("uint32") => Some((0, u32::MAX.into())),
                // JSON numbers beyond 2^53 are not exact in most clients; larger ids and
                // counts do not occur.
                Some("int64") => Some((-(1_i128 << 53) + 1, (1_i128 << 53) - 1)),
                Some("uint64") => Some((0, (1_i128 << 53) - 1)),
                _ => None,
            };
            if let Some((lo, hi)) = bounds {
                let (lo, hi) = (
                    i64::try_from(lo).unwrap_or(i64::MIN),
                    i64::try_from(hi).unwrap_or(i64::MAX),
                );
                let min = map
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .map_or(lo, |m| lo.max(m.ceil() as i64));
                let max = map
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .map_or(hi, |m| hi.min(m.floor() as i64));
                map.insert("minimum".into(), Value::from(min));
                map.insert("maximum".into(), Value::from(max));
            }
            map.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// What an input adds to an operation.
#[derive(Default)]
pub struct Input {
    /// The `requestBody`, if any.
    pub body: Option<Value>,
    /// Query and header parameters.
    pub parameters: Vec<Value>,
}

/// How an input type shows in the document.
pub trait RequestDoc {
    /// Its part of the operation.
    fn document(schemas: &mut Schemas) -> Input;
}

impl RequestDoc for () {
    fn document(_: &mut Schemas) -> Input {
        Input::default()
    }
}

fn json_body(schema: Value, required: bool) -> Value {
    json!({ "required": required, "content": { "application/json": { "schema": schema } } })
}

impl<T: ToSchema> RequestDoc for Valid<T> {
    fn document(schemas: &mut Schemas) -> Input {
        Input {
            body: Some(json_body(schemas.add::<T>(), true)),
            parameters: Vec::new(),
        }
    }
}

impl<T: ToSchema> RequestDoc for OptionalBody<T> {
    fn document(schemas: &mut Schemas) -> Input {
        Input {
            body: Some(json_body(schemas.add::<T>(), false)),
            parameters: Vec::new(),
        }
    }
}

impl<T: ToSchema> RequestDoc for ValidQuery<T> {
    fn document(schemas: &mut Schemas) -> Input {
        // Each property of the query type is one parameter, its schema the property's (the
        // schemas it refers to become components).
        schemas.add_nested::<T>();
        let schema = schema_value(&T::schema());
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let parameters = schema["properties"]
            .as_object()
            .map(|props| {
                props
                    .iter()
                    .map(|(name, property)| {
                        let mut property = property.clone();
                        let description = property
                            .as_object_mut()
                            .and_then(|p| p.remove("description"))
                            .unwrap_or(Value::Null);
                        let mut p = json!({
                            "name": name, "in": "query", "required": required.contains(&name.as_str()),
                            "schema": property,
                        });
                        if !description.is_null() {
                            p["description"] = description;
                        }
                        p
                    })
                    .collect()
            })
            .unwrap_or_default();
        Input { body: None, parameters }
    }
}

impl<A: RequestDoc, B: RequestDoc> RequestDoc for (A, B) {
    fn document(schemas: &mut Schemas) -> Input {
        let mut a = A::document(schemas);
        let b = B::document(schemas);
        a.body = a.body.or(b.body);
        a.parameters.extend(b.parameters);
        a
    }
}

/// An answer of an operation: its status and OpenAPI response object.
pub struct Output {
    /// The success status.
    pub status: u16,
    /// The response object.
    pub response: Value,
    /// Other statuses this answer has besides errors (a 304, a 200 beside a 201).
    pub others: Vec<(u16, Value)>,
}

/// How an answer type shows in the document.
pub trait ResponseDoc {
    /// Its part of the operation.
    fn document(schemas: &mut Schemas) -> Output;
}

/// The success envelope around `data`.
pub fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data", "meta"],
        "properties": {
            "success": { "const": true },
            "data": data,
            "meta": { "$ref": "#/components/schemas/Meta" },
        },
    })
}

impl<T: ToSchema, const S: u16> ResponseDoc for Reply<T, S> {
    fn document(schemas: &mut Schemas) -> Output {
        let data = schemas.add::<T>();
        Output {
            status: S,
            response: json!({
                "description": describe(S),
                "content": { "application/json": { "schema": envelope(data) } },
            }),
            others: Vec::new(),
        }
    }
}

impl<D: ResponseDoc> ResponseDoc for Raw<D> {
    fn document(schemas: &mut Schemas) -> Output {
        D::document(schemas)
    }
}

/// The usual words for a status.
pub fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Answer",
    }
}
