//! empty-workflow: a workflow without steps does nothing.

use super::{Context, Report};
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "empty-workflow",
    severity: Severity::Critical,
    title: "Workflow has no steps",
    description: "A workflow without steps does nothing when it is triggered.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    if ctx.workflow.steps.is_empty() {
        out.push(
            &RULE,
            None,
            "The workflow has no steps, so triggering it does nothing".to_owned(),
            "Add at least one step and point the trigger at it.",
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
    fn fires_without_steps() {
        assert_eq!(step_ids(&run(&RULE, &entered(json!([])))), vec![""]);
        assert_eq!(run(&RULE, &json!({"name": "blank"})).len(), 1);
    }

    #[test]
    fn quiet_with_a_step() {
        assert!(run(&RULE, &entered(json!([{"id": "s1", "type": "goal"}]))).is_empty());
    }
}
