//! broken-reference: a next, branch, goto target or trigger names a step that does not exist.

use super::{Context, Report};
use crate::graph::Origin;
use crate::{RuleInfo, Severity};

pub(crate) const RULE: RuleInfo = RuleInfo {
    id: "broken-reference",
    severity: Severity::Critical,
    title: "Reference to a missing step",
    description: "A next, branch, goto target or trigger next names a step id that does not exist; \
                  runs fail when they get there.",
    check,
};

const SUGGESTION: &str = "Point the reference at an existing step id, or remove it.";

fn check(ctx: &Context<'_>, out: &mut Report<'_>) {
    for broken in &ctx.graph.broken {
        let target = broken.target;
        match broken.origin {
            Origin::Step(i) => {
                let id = ctx.workflow.steps.get(i).map_or("", |s| s.id.as_str());
                let message = format!(
                    "Step \"{id}\" {} points to \"{target}\", which is not a step of this workflow",
                    broken.field
                );
                out.push(&RULE, Some(i), message, SUGGESTION);
            }
            Origin::Trigger(t) => {
                let id = ctx.workflow.triggers.get(t).map_or("", |t| t.id.as_str());
                let message = format!("Trigger \"{id}\" starts at \"{target}\", which is not a step of this workflow");
                out.push(&RULE, None, message, SUGGESTION);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::RULE;
    use crate::rules::testing::{entered, run, step_ids};

    #[test]
    fn fires_for_every_kind_of_reference() {
        let doc = json!({
        "triggers": [{"id": "t1", "type": "manual", "next": "s1"}, {"id": "t2", "type": "manual", "next": "zz"}],
        "steps": [
            {"id": "s1", "type": "add_tag", "next": "nope"},
            {"id": "s2", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "s1", "no": "gone"}},
            {"id": "s3", "type": "goto", "config": {"target": "lost"}}
        ]});
        let findings = run(&RULE, &doc);
        assert_eq!(step_ids(&findings), vec!["", "s1", "s2", "s3"]);
        assert!(findings[0].message.contains("\"t2\"") && findings[0].message.contains("\"zz\""));
        assert!(findings[1].message.contains("next points to \"nope\""));
        assert!(findings[2].message.contains("branches.no points to \"gone\""));
        assert!(findings[3].message.contains("config.target points to \"lost\""));
    }

    #[test]
    fn quiet_when_every_reference_resolves() {
        let doc = entered(json!([
            {"id": "s1", "type": "add_tag", "next": "s2"},
            {"id": "s2", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "s3", "no": null}},
            {"id": "s3", "type": "goto", "config": {"target": "s1"}},
            {"id": "s4", "type": "end", "next": null}
        ]));
        assert!(run(&RULE, &doc).is_empty());
    }
}
