//! Conditions on sequence flows, as modelers write them (JUEL `${amount > 100 && tier == 'gold'}`,
//! FEEL `amount > 100 and tier = "gold"`): a conjunction of comparisons of a variable with a
//! literal is read and judged by `contradictory-condition`, exactly as an if_else's conditions
//! are; a flow whose condition can never hold is never taken. Anything else (disjunctions,
//! function calls, arithmetic) is left alone rather than guessed at.

use serde_json::Value;

use super::document::{Document, Flow};
use crate::Finding;
use crate::model::ConditionOp;
use crate::rules::contradiction;

/// `contradictory-condition` findings for the flows whose condition cannot hold.
pub(super) fn contradictions(document: &Document) -> Vec<Finding> {
    let mut findings = Vec::new();
    for flow in document.processes.iter().flat_map(|p| &p.flows) {
        let (Some(text), Some(id)) = (flow.condition.as_deref(), flow.attrs.id.as_deref()) else {
            continue;
        };
        let Some(comparisons) = read(text) else {
            continue;
        };
        let conditions = comparisons
            .iter()
            .map(|(field, op, value)| (field.as_str(), *op, Some(value)));
        for (field, reason) in contradiction::conflicts(conditions) {
            findings.push(finding(flow, id, field, &reason));
        }
    }
    findings
}

fn finding(flow: &Flow, id: &str, field: &str, reason: &str) -> Finding {
    let rule = contradiction::RULE;
    let target = flow.attrs.target_ref.as_deref().unwrap_or("its target");
    Finding {
        rule: rule.id,
        severity: rule.severity,
        title: rule.title,
        message: format!(
            "The condition of sequence flow \"{id}\" on \"{field}\" can never hold: {reason}; the path to \"{target}\" \
             is never taken"
        ),
        step_id: Some(id.to_owned()),
        suggestion: "Fix the condition; as written the flow is dead.".to_owned(),
    }
}

/// The comparisons of a conjunction, or `None` when the expression is anything else.
fn read(text: &str) -> Option<Vec<(String, ConditionOp, Value)>> {
    let body = text.trim();
    let body = body
        .strip_prefix("${")
        .or_else(|| body.strip_prefix("#{"))
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or(body)
        .trim();
    if body.is_empty() || body.contains("||") || body.contains('(') {
        return None;
    }
    let mut out = Vec::new();
    for part in split_and(body) {
        out.push(comparison(part.trim())?);
    }
    Some(out)
}

/// Splits on `&&` and on the word `and` (outside quotes).
fn split_and(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quote) = (0, None);
    let bytes = body.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'&') if bytes.get(i + 1) == Some(&b'&') => {
                parts.push(body.get(start..i).unwrap_or_default());
                start = i + 2;
                i += 1;
            }
            (None, _) if word_at(body, i, "and") => {
                parts.push(body.get(start..i).unwrap_or_default());
                start = i + 3;
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(body.get(start..).unwrap_or_default());
    parts
}

/// Whether `word` stands at byte `i` with white space on both sides.
fn word_at(body: &str, i: usize, word: &str) -> bool {
    let before = i.checked_sub(1).and_then(|j| body.as_bytes().get(j));
    let after = body.as_bytes().get(i + word.len());
    body.get(i..i + word.len()) == Some(word)
        && before.is_some_and(u8::is_ascii_whitespace)
        && after.is_some_and(u8::is_ascii_whitespace)
}

/// `variable op literal`.
fn comparison(part: &str) -> Option<(String, ConditionOp, Value)> {
    const OPS: [(&str, ConditionOp); 7] = [
        (">=", ConditionOp::Gte),
        ("<=", ConditionOp::Lte),
        ("==", ConditionOp::Eq),
        ("!=", ConditionOp::Neq),
        (">", ConditionOp::Gt),
        ("<", ConditionOp::Lt),
        ("=", ConditionOp::Eq),
    ];
    let (at, symbol, op) = OPS
        .iter()
        .filter_map(|(symbol, op)| part.find(symbol).map(|at| (at, *symbol, *op)))
        .min_by_key(|(at, symbol, _)| (*at, usize::MAX - symbol.len()))?;
    let field = part.get(..at)?.trim();
    let literal = part.get(at + symbol.len()..)?.trim();
    let is_name = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    if !is_name(field) || matches!(field, "true" | "false" | "null") {
        return None;
    }
    let value = match literal {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        quoted if quoted.len() >= 2 && (quoted.starts_with('\'') || quoted.starts_with('"')) => {
            let quote = quoted.get(..1)?;
            Value::String(quoted.strip_prefix(quote)?.strip_suffix(quote)?.to_owned())
        }
        number => Value::Number(serde_json::from_str::<serde_json::Number>(number).ok()?),
    };
    Some((field.to_owned(), op, value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn conjunctions_of_comparisons_are_read() {
        let read_ops = |text: &str| {
            read(text).map(|list| {
                list.into_iter()
                    .map(|(f, op, v)| format!("{f} {op} {v}"))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            read_ops("${amount > 100 && tier == 'gold'}").unwrap(),
            vec!["amount gt 100", "tier eq \"gold\""]
        );
        assert_eq!(
            read_ops(r#"order.total >= 5 and vip = true and name != "x and y""#).unwrap(),
            vec!["order.total gte 5", "vip eq true", "name neq \"x and y\""]
        );
        for unjudged in [
            "${a > 1 || b}",
            "${isVip(customer)}",
            "${a + 1 > 2}",
            "",
            "${x}",
            "${5 > x}",
        ] {
            assert_eq!(read(unjudged), None, "{unjudged}");
        }
    }
}
