//! unreachable-step and goal-unreachable, both read off the single reachability pass.
//!
//! Goal steps get only goal-unreachable, so one dead step never costs two findings. Neither rule
//! reports anything when the workflow has no trigger at all: no-trigger already says why.

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const UNREACHABLE_STEP: RuleInfo = RuleInfo {
    id: "unreachable-step",
    severity: Severity::High,
    title: "Unreachable step",
    description: "No trigger leads to this step, so it never runs (goal steps are reported by goal-unreachable \
                  instead).",
    check: check_steps,
};

pub(crate) const GOAL_UNREACHABLE: RuleInfo = RuleInfo {
    id: "goal-unreachable",
    severity: Severity::Medium,
    title: "Goal can never be reached",
    description: "No trigger leads to this goal step, so the workflow can never count a conversion for it.",
    check: check_goals,
};

fn check_steps(ctx: &Context<'_>, out: &mut Report<'_>) {
    if ctx.workflow.triggers.is_empty() {
        return;
    }
    // Only unreachable steps are looked at, so a clean workflow costs one scan of a bool vector.
    let unreachable = ctx
        .graph
        .reachable
        .iter()
        .enumerate()
        .filter(|(_, reachable)| !**reachable);
    for (i, step) in unreachable.filter_map(|(i, _)| ctx.workflow.steps.get(i).map(|step| (i, step))) {
        if step.step_type == StepType::Goal {
            continue;
        }
        let id = &step.id;
        out.push(
            &UNREACHABLE_STEP,
            Some(i),
            format!("No trigger leads to step \"{id}\", so it never runs"),
            "Connect it from a reachable step, or delete it.",
        );
    }
}

fn check_goals(ctx: &Context<'_>, out: &mut Report<'_>) {
    if ctx.workflow.triggers.is_empty() {
        return;
    }
    for (i, goal) in ctx.steps_of(StepType::Goal) {
        if ctx.graph.reachable.get(i).copied().unwrap_or(true) {
            continue;
        }
        let id = &goal.id;
        out.push(
            &GOAL_UNREACHABLE,
            Some(i),
            format!("No trigger leads to goal \"{id}\", so it can never be met"),
            "Route a path from a trigger to the goal, or remove the goal.",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::{GOAL_UNREACHABLE, UNREACHABLE_STEP};
    use crate::rules::testing::{entered, run, step_ids};

    #[test]
    fn orphaned_steps_and_goals_are_reported_once_each() {
        let doc = entered(json!([
            {"id": "s1", "type": "add_tag", "next": "s2"},
            {"id": "s2", "type": "end"},
            {"id": "s3", "type": "add_tag", "next": "g1"},
            {"id": "g1", "type": "goal"}
        ]));
        assert_eq!(step_ids(&run(&UNREACHABLE_STEP, &doc)), vec!["s3"]);
        assert_eq!(step_ids(&run(&GOAL_UNREACHABLE, &doc)), vec!["g1"]);
    }

    #[test]
    fn reachable_through_branches_and_gotos() {
        let doc = entered(json!([
            {"id": "s1", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "s2", "no": "s3"}},
            {"id": "s2", "type": "goto", "config": {"target": "g1"}},
            {"id": "s3", "type": "end"},
            {"id": "g1", "type": "goal"}
        ]));
        assert!(run(&UNREACHABLE_STEP, &doc).is_empty());
        assert!(run(&GOAL_UNREACHABLE, &doc).is_empty());
    }

    #[test]
    fn quiet_without_triggers() {
        let doc = json!({"steps": [{"id": "s1", "type": "add_tag"}, {"id": "g", "type": "goal"}]});
        assert!(run(&UNREACHABLE_STEP, &doc).is_empty());
        assert!(run(&GOAL_UNREACHABLE, &doc).is_empty());
    }

    #[test]
    fn everything_unreachable_when_the_only_trigger_is_broken() {
        let doc = json!({"triggers": [{"id": "t", "type": "manual", "next": "ghost"}],
            "steps": [{"id": "s1", "type": "add_tag"}, {"id": "g", "type": "goal"}]});
        assert_eq!(step_ids(&run(&UNREACHABLE_STEP, &doc)), vec!["s1"]);
        assert_eq!(step_ids(&run(&GOAL_UNREACHABLE, &doc)), vec!["g"]);
    }
}
