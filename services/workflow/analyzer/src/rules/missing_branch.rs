//! missing-branch: an if_else with a side left empty silently drops the contacts on that side.

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "missing-branch",
    severity: Severity::Medium,
    title: "if/else branch missing",
    description: "An if_else step lacks its yes or no target, so contacts on that side leave the workflow \
                  without anyone deciding they should.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::IfElse) {
        let (yes, no) = step
            .branches
            .as_ref()
            .map_or((false, false), |b| (b.yes.is_some(), b.no.is_some()));
        let missing = match (yes, no) {
            (true, true) => continue,
            (false, false) => "neither a \"yes\" nor a \"no\" branch",
            (true, false) => "no \"no\" branch",
            (false, true) => "no \"yes\" branch",
        };
        out.push(
            &RULE,
            Some(i),
            format!("if_else step \"{}\" has {missing}", step.id),
            "Point the missing branch at a step; use an end step if that path should stop.",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::RULE;
    use crate::rules::testing::{entered, run, step_ids};

    fn if_else(branches: Value) -> Value {
        entered(json!([
            {"id": "s1", "type": "if_else", "config": {"conditions": []}, "branches": branches},
            {"id": "s2", "type": "end"}
        ]))
    }

    #[test]
    fn fires_for_absent_or_null_sides() {
        let findings = run(&RULE, &if_else(json!({"yes": "s2"})));
        assert_eq!(step_ids(&findings), vec!["s1"]);
        assert!(findings[0].message.contains("no \"no\" branch"));
        assert!(
            run(&RULE, &if_else(json!({"yes": null, "no": "s2"})))[0]
                .message
                .contains("no \"yes\" branch")
        );
        assert!(run(&RULE, &if_else(Value::Null))[0].message.contains("neither"));
    }

    #[test]
    fn quiet_with_both_sides() {
        assert!(run(&RULE, &if_else(json!({"yes": "s2", "no": "s2"}))).is_empty());
        assert!(run(&RULE, &entered(json!([{"id": "s1", "type": "add_tag"}]))).is_empty());
    }
}
