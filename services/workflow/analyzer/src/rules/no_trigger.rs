//! no-trigger: nothing can ever start the workflow.

use super::{Context, Report};
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "no-trigger",
    severity: Severity::Critical,
    title: "Workflow has no trigger",
    description: "Without a trigger no contact can ever enter the workflow.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    if ctx.workflow.triggers.is_empty() {
        out.push(
            &RULE,
            None,
            "The workflow has no trigger, so no contact will ever enter it".to_owned(),
            "Add a trigger (for example form_submitted) whose next is the first step.",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::RULE;
    use crate::rules::testing::{entered, run, step_ids};

    #[test]
    fn fires_without_triggers() {
        let steps = json!([{"id": "s1", "type": "end"}]);
        assert_eq!(
            step_ids(&run(&RULE, &json!({"triggers": [], "steps": steps}))),
            vec![""]
        );
        assert_eq!(run(&RULE, &json!({"steps": steps})).len(), 1);
    }

    #[test]
    fn quiet_with_a_trigger() {
        assert!(run(&RULE, &entered(json!([{"id": "s1", "type": "end"}]))).is_empty());
    }
}
