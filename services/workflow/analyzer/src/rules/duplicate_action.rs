//! duplicate-action: the same action twice in a row, usually a copy-paste slip in the editor.

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "duplicate-action",
    severity: Severity::Low,
    title: "Duplicate consecutive action",
    description: "An action step (email, SMS, webhook, tag) whose next step has the same type and an \
                  identical config repeats the action, for example sends the same email twice.",
    check,
};

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    let steps = &ctx.workflow.steps;
    let actions = StepType::ALL.into_iter().filter(|t| t.is_action());
    for (i, first) in actions.flat_map(|t| ctx.steps_of(t)) {
        let Some(Some(j)) = ctx.graph.next.get(i).copied() else {
            continue;
        };
        // A step whose next is itself is a loop, which the loop rules report.
        if let Some(second) = steps.get(j)
            && j != i
            && second.step_type == first.step_type
            && second.config == first.config
        {
            out.push(
                &RULE,
                Some(j),
                format!(
                    "Step \"{}\" repeats step \"{}\" ({}) with the same config",
                    second.id, first.id, first.step_type
                ),
                "Remove one of the two steps, or change what the second one does.",
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

    fn pair(first: Value, second: Value) -> Value {
        let mut first = first;
        first["id"] = json!("s1");
        first["next"] = json!("s2");
        let mut second = second;
        second["id"] = json!("s2");
        entered(json!([first, second]))
    }

    #[test]
    fn same_action_and_config_twice_fires_on_the_second() {
        let email = json!({"type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": true}});
        assert_eq!(step_ids(&run(&RULE, &pair(email.clone(), email))), vec!["s2"]);
        let tag = json!({"type": "add_tag", "config": {"tag": "vip"}});
        assert_eq!(run(&RULE, &pair(tag.clone(), tag)).len(), 1);
    }

    #[test]
    fn different_config_type_or_non_action_is_quiet() {
        let a = json!({"type": "add_tag", "config": {"tag": "a"}});
        let b = json!({"type": "add_tag", "config": {"tag": "b"}});
        assert!(run(&RULE, &pair(a.clone(), b)).is_empty());
        let removal = json!({"type": "remove_tag", "config": {"tag": "a"}});
        assert!(run(&RULE, &pair(a, removal)).is_empty());
        let wait = json!({"type": "wait", "config": {"duration": "P1D"}});
        assert!(run(&RULE, &pair(wait.clone(), wait)).is_empty());
    }

    #[test]
    fn only_next_counts_as_consecutive() {
        let doc = entered(json!([
            {"id": "s1", "type": "add_tag", "config": {"tag": "a"}, "next": "s2"},
            {"id": "s2", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "s3", "no": null}},
            {"id": "s3", "type": "add_tag", "config": {"tag": "a"}}
        ]));
        assert!(run(&RULE, &doc).is_empty());
    }
}
