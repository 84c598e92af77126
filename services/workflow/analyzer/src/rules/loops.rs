//! infinite-loop and loop-without-wait: cycles found by the one SCC pass, judged by whether they
//! pause (a wait or wait_for_event inside) and whether a run can leave them.

use super::{Context, Report};
use crate::graph::Loop;
use crate::{RuleInfo, Severity};

pub(crate) const INFINITE_LOOP: RuleInfo = RuleInfo {
    id: "infinite-loop",
    severity: Severity::Critical,
    title: "Infinite loop",
    description: "Steps form a cycle (a goto to itself included) with no wait step and no way out: \
                  a contact who enters it loops forever at machine speed. A way out is a reference to a \
                  step outside the cycle or an empty if_else side; a zero-length wait is not a wait.",
    check: check_infinite,
};

pub(crate) const LOOP_WITHOUT_WAIT: RuleInfo = RuleInfo {
    id: "loop-without-wait",
    severity: Severity::High,
    title: "Loop without a wait",
    description: "Steps form a cycle that can be left but never pauses, so each pass repeats its \
                  actions immediately (for example one email per pass, seconds apart).",
    check: check_without_wait,
};

fn check_infinite(ctx: &Context<'_>, out: &mut Report<'_>) {
    for found in ctx.graph.loops.iter().filter(|l| !l.pauses && !l.has_exit) {
        let message = format!("{} with no wait and no way out", describe(ctx, found));
        out.push(
            &INFINITE_LOOP,
            found.members.first().copied(),
            message,
            "Give the loop an exit (an if_else side that leaves it) and put a wait step inside it.",
        );
    }
}

fn check_without_wait(ctx: &Context<'_>, out: &mut Report<'_>) {
    for found in ctx.graph.loops.iter().filter(|l| !l.pauses && l.has_exit) {
        let message = format!("{} without any wait", describe(ctx, found));
        out.push(
            &LOOP_WITHOUT_WAIT,
            found.members.first().copied(),
            message,
            "Put a wait (or wait_for_event) step inside the loop so passes are spaced out.",
        );
    }
}

fn describe(ctx: &Context<'_>, found: &Loop) -> String {
    match found.members.as_slice() {
        [_] => format!("Step {} loops back to itself", ctx.quoted_ids(&found.members)),
        members => format!("Steps {} form a loop", ctx.quoted_ids(members)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::{INFINITE_LOOP, LOOP_WITHOUT_WAIT};
    use crate::rules::testing::{entered, run, step_ids};

    fn both(steps: Value) -> (Vec<String>, Vec<String>) {
        let doc = entered(steps);
        let ids = |rule| step_ids(&run(rule, &doc)).into_iter().map(str::to_owned).collect();
        (ids(&INFINITE_LOOP), ids(&LOOP_WITHOUT_WAIT))
    }

    fn tag(id: &str, next: &str) -> Value {
        json!({"id": id, "type": "add_tag", "config": {"tag": id}, "next": next})
    }

    fn goto(id: &str, target: &str) -> Value {
        json!({"id": id, "type": "goto", "config": {"target": target}})
    }

    fn if_else(id: &str, yes: Value, no: Value) -> Value {
        json!({"id": id, "type": "if_else", "config": {"conditions": []}, "branches": {"yes": yes, "no": no}})
    }

    #[test]
    fn closed_cycle_without_wait_is_infinite() {
        let (infinite, no_wait) = both(json!([tag("s1", "s2"), goto("s2", "s1")]));
        assert_eq!((infinite, no_wait), (vec!["s1".to_owned()], vec![]));
    }

    #[test]
    fn goto_to_itself_is_infinite() {
        let doc = entered(json!([goto("s1", "s1")]));
        let findings = run(&INFINITE_LOOP, &doc);
        assert_eq!(step_ids(&findings), vec!["s1"]);
        assert!(
            findings[0].message.contains("loops back to itself"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn zero_length_wait_does_not_count() {
        let wait = json!({"id": "s1", "type": "wait", "config": {"duration": "PT0S"}, "next": "s2"});
        assert_eq!(both(json!([wait, goto("s2", "s1")])).0, vec!["s1"]);
    }

    #[test]
    fn cycle_with_an_exit_but_no_wait_is_flagged_as_such() {
        let steps = json!([tag("s1", "s2"), if_else("s2", json!("s1"), json!("s3")), {"id": "s3", "type": "end"}]);
        assert_eq!(both(steps), (vec![], vec!["s1".to_owned()]));
    }

    #[test]
    fn an_empty_if_else_side_is_a_way_out() {
        let steps = json!([tag("s1", "s2"), if_else("s2", json!("s1"), Value::Null)]);
        assert_eq!(both(steps), (vec![], vec!["s1".to_owned()]));
    }

    #[test]
    fn a_broken_reference_is_not_a_way_out() {
        let steps = json!([tag("s1", "s2"), if_else("s2", json!("s1"), json!("ghost"))]);
        assert_eq!(both(steps), (vec!["s1".to_owned()], vec![]));
    }

    #[test]
    fn waiting_loops_are_fine_with_or_without_exit() {
        let wait = json!({"id": "s1", "type": "wait", "config": {"duration": "P7D"}, "next": "s2"});
        assert_eq!(both(json!([wait, goto("s2", "s1")])), (vec![], vec![]));
        let event = json!({"id": "s1", "type": "wait_for_event", "config": {"event": "open"}, "next": "s2"});
        let steps = json!([event, if_else("s2", json!("s1"), json!("s3")), {"id": "s3", "type": "end"}]);
        assert_eq!(both(steps), (vec![], vec![]));
    }

    #[test]
    fn acyclic_workflows_are_quiet() {
        let steps = json!([tag("s1", "s2"), tag("s2", "s3"), goto("s3", "s4"), {"id": "s4", "type": "end"}]);
        assert_eq!(both(steps), (vec![], vec![]));
    }

    #[test]
    fn one_finding_per_loop_with_truncated_member_list() {
        let mut steps: Vec<Value> = (1..8).map(|i| tag(&format!("s{i}"), &format!("s{}", i + 1))).collect();
        steps.push(goto("s8", "s1"));
        let findings = run(&INFINITE_LOOP, &entered(Value::Array(steps)));
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0].message.contains("\"s5\", and 3 more"),
            "{}",
            findings[0].message
        );
    }
}
