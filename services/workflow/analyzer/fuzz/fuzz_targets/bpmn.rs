//! `cargo +nightly fuzz run bpmn` (from `services/workflow/analyzer/fuzz`): the BPMN 2.0 reader
//! and the analyser, under the default limits, as the service runs them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_workflow_analyzer::{Grade, Limits, analyze, bpmn};

fuzz_target!(|data: &[u8]| {
    let Ok(workflow) = bpmn::parse(data, Limits::default()) else {
        return;
    };
    let analysis = analyze(&workflow);
    assert!(analysis.health_score <= 100);
    assert_eq!(analysis.grade, Grade::from_score(analysis.health_score));
    assert_eq!(analysis.stats.steps, workflow.steps.len());
    assert!(serde_json::to_vec(&analysis).is_ok());
});
