//! wait-without-timeout: a wait_for_event that can hold a contact forever.

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "wait-without-timeout",
    severity: Severity::Medium,
    title: "Wait for event without timeout",
    description: "A wait_for_event step with no timeout holds contacts forever if the event never happens.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::WaitForEvent) {
        if step.config_value("timeout").is_none() {
            let event = step.config_str("event").unwrap_or("the event");
            out.push(
                &RULE,
                Some(i),
                format!(
                    "Step \"{}\" waits for {event} with no timeout; contacts who never do it stay forever",
                    step.id
                ),
                "Set config.timeout (for example P7D) so contacts move on.",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::RULE;
    use crate::rules::testing::{entered, run, step_ids};

    fn waiting(config: Value) -> Value {
        entered(json!([{"id": "s1", "type": "wait_for_event", "config": config}]))
    }

    #[test]
    fn fires_without_timeout() {
        assert_eq!(step_ids(&run(&RULE, &waiting(json!({"event": "opened"})))), vec!["s1"]);
        assert_eq!(
            run(&RULE, &waiting(json!({"event": "opened", "timeout": null}))).len(),
            1
        );
    }

    #[test]
    fn quiet_with_timeout_or_for_plain_waits() {
        assert!(run(&RULE, &waiting(json!({"event": "opened", "timeout": "P3D"}))).is_empty());
        let wait = entered(json!([{"id": "s1", "type": "wait", "config": {"duration": "P1D"}}]));
        assert!(run(&RULE, &wait).is_empty());
    }
}
