//! Prints, per BPMN file, the element ids each rule reports, or why the file was refused:
//! `cargo run --example lint_ids -- FILE...` prints one JSON object
//! `{file: {"rules": {rule: [ids]}} | {"refused": message}}`; `-- --rules` prints the names of
//! the bpmnlint rules Portico implements, comma-separated. Used by `bench/bpmnlint-agreement.sh`
//! and `bench/bpmnlint-bench.sh` to compare with bpmnlint.

use std::collections::BTreeMap;

use portico_workflow_analyzer::{Limits, analyze, bpmn};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--rules") {
        let names: Vec<&str> = portico_workflow_analyzer::rules()
            .iter()
            .filter_map(|r| r.id.strip_prefix("bpmnlint/"))
            .collect();
        println!("{}", names.join(","));
        return Ok(());
    }
    let mut out = serde_json::Map::new();
    for file in std::env::args().skip(1) {
        let xml = std::fs::read(&file)?;
        let entry = match bpmn::parse(&xml, Limits::default()) {
            Ok(workflow) => {
                let mut rules: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
                for finding in analyze(&workflow).issues {
                    rules.entry(finding.rule).or_default().push(json!(finding.step_id));
                }
                json!({ "rules": rules })
            }
            Err(problems) => {
                let messages: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{} {}", p.pointer, p.message))
                    .collect();
                json!({ "refused": messages.join("; ") })
            }
        };
        out.insert(file, entry);
    }
    println!("{}", Value::Object(out));
    Ok(())
}
