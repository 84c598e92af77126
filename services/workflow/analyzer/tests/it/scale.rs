// Huge graphs must not overflow the stack: every traversal is iterative. Runs on the test
// harness's own threads, whose stacks are only 2 MiB.

use std::fmt::Write;

use portico_workflow_analyzer::{Grade, Limits, analyze, parse};

const STEPS: usize = 100_000;

/// `STEPS` add_tag steps chained by next; the last one's next is `last_next`.
fn chain(last: &str) -> String {
    let mut json = String::from(r#"{"triggers": [{"id": "t", "type": "manual", "next": "s0"}], "steps": ["#);
    for i in 0..STEPS {
        if i > 0 {
            json.push(',');
        }
        if i + 1 < STEPS {
            write!(
                json,
                r#"{{"id": "s{i}", "type": "add_tag", "config": {{"tag": "t{i}"}}, "next": "s{}"}}"#,
                i + 1
            )
            .unwrap();
        } else {
            json.push_str(last);
        }
    }
    json.push_str("]}");
    json
}

fn limits() -> Limits {
    Limits::for_steps(STEPS)
}

#[test]
fn linear_chain_of_100k_steps() {
    let last = format!(r#"{{"id": "s{}", "type": "end"}}"#, STEPS - 1);
    let workflow = parse(chain(&last).as_bytes(), limits()).unwrap();
    let analysis = analyze(&workflow);
    assert_eq!(analysis.issues, vec![]);
    assert_eq!(analysis.stats.max_depth, STEPS);
    assert_eq!(analysis.grade, Grade::Excellent);
}

#[test]
fn single_cycle_of_100k_steps() {
    let last = format!(
        r#"{{"id": "s{}", "type": "goto", "config": {{"target": "s0"}}}}"#,
        STEPS - 1
    );
    let workflow = parse(chain(&last).as_bytes(), limits()).unwrap();
    let analysis = analyze(&workflow);
    let rules: Vec<&str> = analysis.issues.iter().map(|f| f.rule).collect();
    assert_eq!(rules, vec!["infinite-loop"]);
    assert_eq!(analysis.issues[0].step_id.as_deref(), Some("s0"));
    assert!(analysis.issues[0].message.contains("and 99995 more"));
    assert_eq!(analysis.stats.max_depth, STEPS);
}

#[test]
fn the_default_limit_refuses_100k_steps() {
    let last = format!(r#"{{"id": "s{}", "type": "end"}}"#, STEPS - 1);
    let problems = parse(chain(&last).as_bytes(), Limits::default()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].pointer, "/steps");
}
