//! JSON pointers to where a problem is, rendered only when one is reported, and the list of the
//! problems found.

use serde_json::Value;

use super::{InputProblem, ProblemKind};

/// One segment of a JSON pointer.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// A JSON pointer as a chain of borrowed segments, rendered only when a problem is reported so
/// valid documents cost no string formatting.
pub(super) struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    segment: Option<Segment<'a>>,
}

pub(super) const ROOT: Loc<'static> = Loc {
    parent: None,
    segment: None,
};

impl Loc<'_> {
    pub(super) fn key<'b>(&'b self, key: &'b str) -> Loc<'b> {
        Loc {
            parent: Some(self),
            segment: Some(Segment::Key(key)),
        }
    }

    pub(super) fn index(&self, index: usize) -> Loc<'_> {
        Loc {
            parent: Some(self),
            segment: Some(Segment::Index(index)),
        }
    }

    pub(super) fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut current = Some(self);
        while let Some(loc) = current {
            segments.extend(loc.segment);
            current = loc.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            out.push('/');
            match segment {
                Segment::Index(i) => out.push_str(&i.to_string()),
                Segment::Key(key) => {
                    for c in key.chars() {
                        match c {
                            '~' => out.push_str("~0"),
                            '/' => out.push_str("~1"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out
    }
}

#[derive(Default)]
pub(super) struct Problems {
    pub(super) list: Vec<InputProblem>,
}

impl Problems {
    pub(super) fn push(&mut self, kind: ProblemKind, at: &Loc<'_>, message: impl Into<String>) {
        self.list.push(InputProblem {
            kind,
            pointer: at.render(),
            message: message.into(),
        });
    }

    pub(super) fn schema(&mut self, at: &Loc<'_>, message: impl Into<String>) {
        self.push(ProblemKind::Schema, at, message);
    }

    pub(super) fn expected(&mut self, at: &Loc<'_>, what: &str, found: &Value) {
        self.schema(at, format!("expected {what}, found {}", describe(found)));
    }

    pub(super) fn unknown_field(&mut self, at: &Loc<'_>, key: &str) {
        self.schema(at, format!("unknown field \"{key}\""));
    }

    pub(super) fn missing(&mut self, at: &Loc<'_>, key: &str) {
        self.schema(at, format!("missing required field \"{key}\""));
    }

    pub(super) fn count(&self) -> usize {
        self.list.len()
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
