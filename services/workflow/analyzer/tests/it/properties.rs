// Property tests: random workflows (random types, references that are valid, null, missing or
// dangling, gotos and cycles) and random bytes must never panic, and the analysis must stay
// consistent with its own findings and with a slow but obviously correct graph oracle.

use std::collections::{BTreeSet, HashMap, VecDeque};

use portico_workflow_analyzer::{Grade, Limits, Severity, StepType, Workflow, analyze, parse, rules};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const TYPES: [&str; 11] = [
    "send_email",
    "send_sms",
    "webhook",
    "add_tag",
    "remove_tag",
    "wait",
    "wait_for_event",
    "if_else",
    "goto",
    "goal",
    "end",
];
const OPS: [&str; 8] = ["eq", "neq", "gt", "lt", "gte", "lte", "contains", "exists"];

/// Raw choices for one step; turned into JSON once the step count is known.
#[derive(Debug, Clone)]
struct StepSpec {
    kind: usize,
    refs: [(u8, u32); 3],
    config: u32,
}

fn step_spec() -> impl Strategy<Value = StepSpec> {
    (
        0..TYPES.len(),
        proptest::array::uniform3((0u8..10, any::<u32>())),
        any::<u32>(),
    )
        .prop_map(|(kind, refs, config)| StepSpec { kind, refs, config })
}

fn pick<'a>(bits: u32, choices: &[&'a str]) -> &'a str {
    choices[bits as usize % choices.len()]
}

/// Mostly valid references, sometimes absent, null or dangling.
fn reference((choice, bits): (u8, u32), n: usize) -> Option<Value> {
    match choice {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(json!(format!("ghost{}", bits % 3))),
        _ if n == 0 => Some(json!("ghost")),
        _ => Some(json!(format!("s{}", bits as usize % n))),
    }
}

fn conditions(bits: u32) -> Value {
    let values = [json!(1), json!(3), json!(5), json!("vip")];
    let list: Vec<Value> = (0..bits % 4)
        .map(|k| {
            let b = bits >> (2 + 7 * k);
            let op = OPS[(b >> 1) as usize % OPS.len()];
            let mut condition = json!({"field": pick(b, &["age", "tag"]), "op": op});
            if op != "exists" {
                condition["value"] = values[(b >> 4) as usize % values.len()].clone();
            }
            condition
        })
        .collect();
    Value::Array(list)
}

fn step_json(i: usize, spec: &StepSpec, n: usize) -> Value {
    let kind = TYPES[spec.kind];
    let c = spec.config;
    let config = match kind {
        "send_email" => json!({"subject": pick(c >> 3, &["Hi", "Hello"]), "unsubscribeLink": c & 4 != 0}),
        "send_sms" => match c % 4 {
            0 => json!({}),
            1 => json!({"text": "Reply STOP to end"}),
            2 => json!({"text": "Big sale"}),
            _ => json!({"message": "Opt-out anytime"}),
        },
        "webhook" => {
            let url = pick(
                c,
                &[
                    "https://a.example/h",
                    "http://b.example",
                    "HTTPS://c.example",
                    "ftp://d",
                    "nope",
                ],
            );
            match (c >> 4) % 3 {
                0 => json!({"url": url}),
                1 => json!({"url": url, "retry": {"maxAttempts": 0}}),
                _ => json!({"url": url, "retry": {"maxAttempts": 3}}),
            }
        }
        "add_tag" | "remove_tag" => json!({"tag": pick(c, &["vip", "new"])}),
        "wait" => json!({"duration": pick(c, &["P1D", "PT2H", "PT0S"])}),
        "wait_for_event" if c & 1 == 0 => json!({"event": "opened"}),
        "wait_for_event" => json!({"event": "opened", "timeout": "P3D"}),
        "if_else" => json!({"conditions": conditions(c)}),
        "goto" => {
            let target = reference(spec.refs[0], n)
                .filter(Value::is_string)
                .unwrap_or_else(|| json!("ghost"));
            json!({"target": target})
        }
        _ => json!({}),
    };
    let mut step = json!({"id": format!("s{i}"), "type": kind, "config": config});
    match kind {
        "if_else" => {
            if spec.refs[0].0 != 0 {
                let mut branches = Map::new();
                for (side, choice) in [("yes", spec.refs[1]), ("no", spec.refs[2])] {
                    if let Some(target) = reference(choice, n) {
                        branches.insert(side.to_owned(), target);
                    }
                }
                step["branches"] = Value::Object(branches);
            }
        }
        "goto" | "end" => {}
        _ => {
            if let Some(next) = reference(spec.refs[0], n) {
                step["next"] = next;
            }
        }
    }
    step
}

fn build(specs: &[StepSpec], triggers: &[(u8, u32)]) -> Value {
    let n = specs.len();
    let steps: Vec<Value> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| step_json(i, spec, n))
        .collect();
    let triggers: Vec<Value> = triggers
        .iter()
        .enumerate()
        .map(|(i, &choice)| {
            let mut trigger = json!({"id": format!("t{i}"), "type": "form_submitted"});
            if let Some(next) = reference(choice, n) {
                trigger["next"] = next;
            }
            trigger
        })
        .collect();
    json!({"name": "generated", "triggers": triggers, "steps": steps})
}

fn workflow_doc(max_steps: usize) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(step_spec(), 0..max_steps),
        prop::collection::vec((0u8..10, any::<u32>()), 0..4),
    )
        .prop_map(|(specs, triggers)| build(&specs, &triggers))
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,10}".prop_map(Value::from),
        prop::sample::select(TYPES.to_vec()).prop_map(Value::from),
        Just(json!("s0")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            "[a-z]{1,6}",
            prop::sample::select(vec![
                "id", "type", "next", "steps", "triggers", "config", "branches", "target"
            ])
            .prop_map(str::to_owned),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn parse_value(doc: &Value) -> Result<Workflow, TestCaseError> {
    parse(doc.to_string().as_bytes(), Limits::default())
        .map_err(|problems| TestCaseError::fail(format!("generated workflow rejected: {problems:?}")))
}

fn expected_grade(score: u8) -> Grade {
    if score >= 90 {
        Grade::Excellent
    } else if score >= 75 {
        Grade::Good
    } else if score >= 50 {
        Grade::Fair
    } else if score >= 25 {
        Grade::HighRisk
    } else {
        Grade::Critical
    }
}

/// Graph facts computed the slow, obvious way: a BFS from every step.
struct Oracle {
    infinite: BTreeSet<String>,
    without_wait: BTreeSet<String>,
    unreachable: BTreeSet<String>,
    goals: BTreeSet<String>,
    max_depth: usize,
}

fn oracle(workflow: &Workflow) -> Oracle {
    let steps = &workflow.steps;
    let n = steps.len();
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let succ: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            let mut refs: Vec<Option<&str>> = vec![s.next.as_deref()];
            if let Some(b) = &s.branches {
                refs.push(b.yes.as_deref());
                refs.push(b.no.as_deref());
            }
            if s.step_type == StepType::Goto {
                refs.push(s.config.get("target").and_then(Value::as_str));
            }
            refs.into_iter()
                .flatten()
                .filter_map(|r| index.get(r).copied())
                .collect()
        })
        .collect();
    let bfs = |starts: &[usize]| {
        let mut seen = vec![false; n];
        let mut queue: VecDeque<usize> = VecDeque::new();
        for &s in starts {
            for &w in &succ[s] {
                if !seen[w] {
                    seen[w] = true;
                    queue.push_back(w);
                }
            }
        }
        while let Some(v) = queue.pop_front() {
            for &w in &succ[v] {
                if !seen[w] {
                    seen[w] = true;
                    queue.push_back(w);
                }
            }
        }
        seen
    };
    // reach[i][j]: j reachable from i in one or more steps.
    let reach: Vec<Vec<bool>> = (0..n).map(|i| bfs(&[i])).collect();
    let component = |i: usize| -> Vec<usize> { (0..n).filter(|&j| j == i || (reach[i][j] && reach[j][i])).collect() };
    let pauses = |i: usize| match steps[i].step_type {
        StepType::WaitForEvent => true,
        StepType::Wait => steps[i].config.get("duration").and_then(Value::as_str) != Some("PT0S"),
        _ => false,
    };
    let open_branch = |i: usize| {
        steps[i].step_type == StepType::IfElse
            && steps[i]
                .branches
                .as_ref()
                .is_none_or(|b| b.yes.is_none() || b.no.is_none())
    };
    let mut result = Oracle {
        infinite: BTreeSet::new(),
        without_wait: BTreeSet::new(),
        unreachable: BTreeSet::new(),
        goals: BTreeSet::new(),
        max_depth: 0,
    };
    for i in 0..n {
        let members = component(i);
        if members[0] != i || !reach[i][i] {
            continue;
        }
        let waits = members.iter().any(|&m| pauses(m));
        let exit = members
            .iter()
            .any(|&m| open_branch(m) || succ[m].iter().any(|w| !members.contains(w)));
        if !waits {
            let set = if exit {
                &mut result.without_wait
            } else {
                &mut result.infinite
            };
            set.insert(steps[i].id.clone());
        }
    }
    let entries: Vec<usize> = workflow
        .triggers
        .iter()
        .filter_map(|t| t.next.as_deref().and_then(|r| index.get(r).copied()))
        .collect();
    if !workflow.triggers.is_empty() {
        let mut reachable = bfs(&entries);
        for &e in &entries {
            reachable[e] = true;
        }
        for (step, _) in steps.iter().zip(&reachable).filter(|(_, reachable)| !**reachable) {
            let set = if step.step_type == StepType::Goal {
                &mut result.goals
            } else {
                &mut result.unreachable
            };
            set.insert(step.id.clone());
        }
    }
    // Longest path over the condensation, memoised by component representative.
    let mut depth: HashMap<usize, usize> = HashMap::new();
    fn component_depth(
        rep: usize,
        succ: &[Vec<usize>],
        members_of: &dyn Fn(usize) -> Vec<usize>,
        memo: &mut HashMap<usize, usize>,
    ) -> usize {
        if let Some(&d) = memo.get(&rep) {
            return d;
        }
        let members = members_of(rep);
        let mut deepest = 0;
        for &m in &members {
            for &w in &succ[m] {
                if !members.contains(&w) {
                    let next = members_of(w)[0];
                    deepest = deepest.max(component_depth(next, succ, members_of, memo));
                }
            }
        }
        let d = members.len() + deepest;
        memo.insert(rep, d);
        d
    }
    for &e in &entries {
        let rep = component(e)[0];
        result.max_depth = result
            .max_depth
            .max(component_depth(rep, &succ, &component, &mut depth));
    }
    result
}

fn finding_steps(analysis: &portico_workflow_analyzer::Analysis, rule: &str) -> BTreeSet<String> {
    analysis
        .issues
        .iter()
        .filter(|f| f.rule == rule)
        .filter_map(|f| f.step_id.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn analysis_is_consistent_with_its_findings(doc in workflow_doc(300)) {
        let workflow = parse_value(&doc)?;
        let analysis = analyze(&workflow);

        let penalty: u32 = analysis.issues.iter().map(|f| f.severity.weight()).sum();
        prop_assert!(analysis.health_score <= 100);
        prop_assert_eq!(u32::from(analysis.health_score), 100u32.saturating_sub(penalty));
        prop_assert_eq!(analysis.grade, expected_grade(analysis.health_score));

        let position: HashMap<&str, usize> =
            workflow.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i + 1)).collect();
        let keys: Vec<(Severity, usize)> = analysis
            .issues
            .iter()
            .map(|f| (f.severity, f.step_id.as_deref().map_or(0, |id| position[id])))
            .collect();
        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "unsorted: {:?}", keys);

        for finding in &analysis.issues {
            let rule = rules().iter().find(|r| r.id == finding.rule);
            prop_assert!(rule.is_some_and(|r| r.severity == finding.severity && r.title == finding.title));
        }
        prop_assert_eq!(analysis.stats.steps, workflow.steps.len());
        prop_assert_eq!(analysis.stats.triggers, workflow.triggers.len());
        prop_assert!(analysis.stats.max_depth <= workflow.steps.len());
    }

    #[test]
    fn graph_rules_agree_with_a_naive_oracle(doc in workflow_doc(40)) {
        let workflow = parse_value(&doc)?;
        let analysis = analyze(&workflow);
        let expected = oracle(&workflow);
        prop_assert_eq!(finding_steps(&analysis, "infinite-loop"), expected.infinite);
        prop_assert_eq!(finding_steps(&analysis, "loop-without-wait"), expected.without_wait);
        prop_assert_eq!(finding_steps(&analysis, "unreachable-step"), expected.unreachable);
        prop_assert_eq!(finding_steps(&analysis, "goal-unreachable"), expected.goals);
        prop_assert_eq!(analysis.stats.max_depth, expected.max_depth);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(workflow) = parse(&bytes, Limits::default()) {
            let _ = analyze(&workflow);
        }
    }

    #[test]
    fn random_json_never_panics(doc in arbitrary_json()) {
        match parse(doc.to_string().as_bytes(), Limits::default()) {
            Ok(workflow) => { let _ = analyze(&workflow); }
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }

    #[test]
    fn mutated_workflows_never_panic(
        doc in workflow_doc(20),
        which in any::<prop::sample::Index>(),
        key in prop::sample::select(vec!["id", "type", "next", "branches", "config", "name", "extra"]),
        replacement in arbitrary_json(),
    ) {
        let mut doc = doc;
        if let Some(steps) = doc["steps"].as_array_mut().filter(|s| !s.is_empty()) {
            let i = which.index(steps.len());
            steps[i][key] = replacement;
        }
        match parse(doc.to_string().as_bytes(), Limits::default()) {
            Ok(workflow) => { let _ = analyze(&workflow); }
            Err(problems) => prop_assert!(problems.iter().all(|p| p.pointer.starts_with("/steps/"))),
        }
    }
}
