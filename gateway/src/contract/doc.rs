//! How each kind of input and answer shows in the OpenAPI document. The route table names a
//! request type (`Valid<T>`, `ValidQuery<T>`, `OptionalBody<T>`, a tuple of them, or `()`)
//! and a response type (`Reply<T, S>`, `Raw<D>`); their `RequestDoc` / `ResponseDoc`
//! implementations turn the same types the handlers use into the document's parts.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    reply::{Raw, Reply},
    validate::{OptionalBody, Valid, ValidQuery},
};

/// The document's component schemas, filled as operations name types.
#[derive(Default)]
pub struct Schemas(pub BTreeMap<String, Value>);

impl Schemas {
    /// Adds `T` (and every schema it refers to) and answers a reference to it.
    pub fn add<T: ToSchema>(&mut self) -> Value {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (name, schema) in nested {
            self.0
                .entry(name)
                .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
        // Lists, maps and primitives have no name of their own (utoipa calls every list
        // `Vec`): they stand inline; named objects and enums become components.
        let named = schema.get("properties").is_some() || schema.get("enum").is_some() || schema.get("oneOf").is_some();
        if !named || schema.get("$ref").is_some() {
            return schema;
        }
        let name = T::name().to_string();
        self.0.entry(name.clone()).or_insert(schema);
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Adds a schema written as JSON under `name` (for what no Rust type describes, such as
    /// the workflow document's own JSON Schema) and answers a reference to it.
    pub fn add_named(&mut self, name: &str, schema: Value) -> Value {
        self.0.entry(name.to_string()).or_insert(schema);
        json!({ "$ref": format!("#/components/schemas/{name}") })
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
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (name, schema) in nested {
            schemas
                .0
                .entry(name)
                .or_insert_with(|| serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
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
