//! contradictory-condition: an if_else whose conditions (all of which must hold) cannot all hold,
//! so its yes branch is dead.
//!
//! Only values the analyser can compare without knowing field types are judged: equal/unequal
//! JSON values (numbers by numeric value) and ranges over JSON numbers. `contains`, `exists`, and
//! ranges against strings are left alone rather than guessed at.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Context, Report};
use crate::model::{ConditionOp, Step, StepType};
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "contradictory-condition",
    severity: Severity::High,
    title: "Contradictory conditions",
    description: "An if_else condition list (all must hold) that can never be true on one field: eq A with \
                  eq B, eq A with neq A, numeric ranges that cannot overlap, or eq outside a range. Only the \
                  no branch can ever run.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::IfElse) {
        for (field, reason) in conflicts(conditions(step)) {
            out.push(
                &RULE,
                Some(i),
                format!(
                    "Conditions of \"{}\" on \"{field}\" can never all hold: {reason}",
                    step.id
                ),
                "Fix or remove the conflicting conditions; as written only the no branch can run.",
            );
        }
    }
}

/// The fields on which conditions that must all hold cannot, each with the reason, ordered by
/// field name so findings come out deterministically.
pub(crate) fn conflicts<'a>(
    conditions: impl Iterator<Item = (&'a str, ConditionOp, Option<&'a Value>)>,
) -> Vec<(&'a str, String)> {
    let mut fields: BTreeMap<&str, Field<'_>> = BTreeMap::new();
    for (field, op, value) in conditions {
        fields.entry(field).or_default().add(op, value);
    }
    fields
        .into_iter()
        .filter_map(|(field, state)| state.conflict().map(|reason| (field, reason)))
        .collect()
}

/// Well-formed conditions of an if_else step; parsing has already rejected malformed ones.
fn conditions(step: &Step) -> impl Iterator<Item = (&str, ConditionOp, Option<&Value>)> {
    step.config_value("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|condition| {
            let field = condition.get("field")?.as_str()?;
            let op = ConditionOp::from_name(condition.get("op")?.as_str()?)?;
            Some((field, op, condition.get("value")))
        })
}

/// One end of a numeric range, remembering how it was written for the message.
#[derive(Clone, Copy)]
struct Bound<'a> {
    value: f64,
    inclusive: bool,
    op: ConditionOp,
    raw: &'a Value,
}

impl Bound<'_> {
    fn describe(&self) -> String {
        format!("{} {}", self.op, self.raw)
    }
}

/// What the conditions on one field demand.
#[derive(Default)]
struct Field<'a> {
    eq: Vec<&'a Value>,
    neq: Vec<&'a Value>,
    lower: Option<Bound<'a>>,
    upper: Option<Bound<'a>>,
}

impl<'a> Field<'a> {
    fn add(&mut self, op: ConditionOp, value: Option<&'a Value>) {
        let Some(value) = value else { return };
        let bound = |inclusive| {
            value.as_f64().map(|number| Bound {
                value: number,
                inclusive,
                op,
                raw: value,
            })
        };
        match op {
            ConditionOp::Eq => self.eq.push(value),
            ConditionOp::Neq => self.neq.push(value),
            ConditionOp::Gt | ConditionOp::Gte => {
                if let Some(new) = bound(op == ConditionOp::Gte) {
                    self.lower = Some(match self.lower {
                        // On a tie the exclusive bound is the tighter one.
                        Some(old) if old.value > new.value || (old.value == new.value && !old.inclusive) => old,
                        _ => new,
                    });
                }
            }
            ConditionOp::Lt | ConditionOp::Lte => {
                if let Some(new) = bound(op == ConditionOp::Lte) {
                    self.upper = Some(match self.upper {
                        Some(old) if old.value < new.value || (old.value == new.value && !old.inclusive) => old,
                        _ => new,
                    });
                }
            }
            ConditionOp::Contains | ConditionOp::Exists => {}
        }
    }

    fn conflict(&self) -> Option<String> {
        let first_eq = self.eq.first().copied();
        if let Some(a) = first_eq {
            if let Some(b) = self.eq.iter().find(|b| !same(a, b)) {
                return Some(format!("eq {a} and eq {b}"));
            }
            if self.neq.iter().any(|b| same(a, b)) {
                return Some(format!("eq {a} and neq {a}"));
            }
        }
        if let (Some(low), Some(high)) = (self.lower, self.upper)
            && (low.value > high.value || (low.value == high.value && !(low.inclusive && high.inclusive)))
        {
            return Some(format!("{} and {}", low.describe(), high.describe()));
        }
        let a = first_eq?;
        let x = a.as_f64()?;
        if let Some(low) = self.lower
            && (x < low.value || (x == low.value && !low.inclusive))
        {
            return Some(format!("eq {a} and {}", low.describe()));
        }
        if let Some(high) = self.upper
            && (x > high.value || (x == high.value && !high.inclusive))
        {
            return Some(format!("eq {a} and {}", high.describe()));
        }
        None
    }
}

/// JSON equality, except that numbers compare by value (5 and 5.0 are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::RULE;
    use crate::Finding;
    use crate::rules::testing::{entered, run};

    fn judge(conditions: Value) -> Vec<Finding> {
        let doc = entered(
            json!([{"id": "s1", "type": "if_else", "config": {"conditions": conditions},
            "branches": {"yes": "s2", "no": "s2"}}, {"id": "s2", "type": "end"}]),
        );
        run(&RULE, &doc)
    }

    fn cond(field: &str, op: &str, value: Value) -> Value {
        json!({"field": field, "op": op, "value": value})
    }

    #[test]
    fn contradictions_fire() {
        let cases = [
            (
                vec![cond("tag", "eq", json!("vip")), cond("tag", "eq", json!("new"))],
                "eq \"vip\" and eq \"new\"",
            ),
            (
                vec![cond("tag", "eq", json!("vip")), cond("tag", "neq", json!("vip"))],
                "eq \"vip\" and neq \"vip\"",
            ),
            (
                vec![cond("age", "gt", json!(5)), cond("age", "lt", json!(3))],
                "gt 5 and lt 3",
            ),
            (
                vec![cond("age", "gte", json!(5)), cond("age", "lt", json!(5))],
                "gte 5 and lt 5",
            ),
            (
                vec![cond("age", "gt", json!(5)), cond("age", "lte", json!(5))],
                "gt 5 and lte 5",
            ),
            (
                vec![cond("age", "eq", json!(10)), cond("age", "lt", json!(5))],
                "eq 10 and lt 5",
            ),
            (
                vec![cond("age", "gt", json!(10)), cond("age", "eq", json!(10))],
                "eq 10 and gt 10",
            ),
            (
                vec![
                    cond("age", "gte", json!(1)),
                    cond("age", "gt", json!(4)),
                    cond("age", "lte", json!(4)),
                ],
                "gt 4 and lte 4",
            ),
        ];
        for (conditions, reason) in cases {
            let findings = judge(Value::Array(conditions));
            assert_eq!(findings.len(), 1, "{reason}");
            assert!(
                findings[0].message.ends_with(reason),
                "{} / {reason}",
                findings[0].message
            );
        }
    }

    #[test]
    fn satisfiable_lists_are_quiet() {
        let cases = [
            vec![cond("tag", "eq", json!("vip")), cond("tag", "eq", json!("vip"))],
            vec![cond("age", "eq", json!(5)), cond("age", "eq", json!(5.0))],
            vec![cond("tag", "eq", json!("vip")), cond("plan", "eq", json!("pro"))],
            vec![
                cond("age", "gte", json!(5)),
                cond("age", "lte", json!(5)),
                cond("age", "eq", json!(5)),
            ],
            vec![
                cond("age", "gt", json!(3)),
                cond("age", "lt", json!(5)),
                cond("age", "neq", json!(4)),
            ],
            vec![cond("name", "eq", json!("a")), cond("name", "gt", json!(5))],
            vec![
                cond("tag", "contains", json!("v")),
                json!({"field": "tag", "op": "exists"}),
            ],
        ];
        for conditions in cases {
            let findings = judge(Value::Array(conditions.clone()));
            assert!(findings.is_empty(), "{conditions:?}: {findings:?}");
        }
    }

    #[test]
    fn one_finding_per_contradictory_field() {
        let findings = judge(json!([
            cond("b", "eq", json!(1)),
            cond("b", "eq", json!(2)),
            cond("a", "gt", json!(9)),
            cond("a", "lt", json!(1))
        ]));
        let fields: Vec<bool> = findings.iter().map(|f| f.message.contains("on \"a\"")).collect();
        assert_eq!(fields, vec![true, false]);
    }
}
