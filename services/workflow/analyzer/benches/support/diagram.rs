//! Generated BPMN diagrams as a modeler exports them, for the lint benchmark and for timing
//! bpmnlint on the same files (`examples/bpmn_diagram.rs` writes them out).
//!
//! A diagram of `n` elements (flow nodes; the sequence flows come on top) is a start event,
//! blocks of eight and an end event. Each block forks at an exclusive gateway on two conditions
//! into a user task and a service task, joins them at a second gateway, and runs a sub-process
//! (start, script task, end) before the next block. Every element is named and lists its
//! incoming and outgoing flows, as Camunda Modeler writes them.

use std::fmt::Write;

/// The diagram with `n` flow nodes, rounded down to whole blocks (at least the start and end).
pub fn diagram(n: usize) -> String {
    let blocks = n.saturating_sub(2) / 8;
    let (mut nodes, mut flows) = (String::new(), String::new());
    // The flow into block k (from the start event or the previous sub-process), and the last one.
    let into = |k: usize| {
        if k < blocks {
            format!("Flow_in_{k}")
        } else {
            "Flow_end".to_owned()
        }
    };
    node(&mut nodes, "startEvent", "Start", &[], &[&into(0)], "");
    let mut source = "Start".to_owned();
    for k in 0..blocks {
        let [fork, a, b, join, sub] = ["Fork", "Review", "Notify", "Join", "Sub"].map(|n| format!("{n}_{k}"));
        flow(&mut flows, &into(k), &source, &fork, None);
        let ids = ["a", "b", "aj", "bj", "sub", "s", "t"].map(|n| format!("Flow_{n}_{k}"));
        let [to_a, to_b, a_join, b_join, to_sub, s_t, t_e] = &ids;
        flow(&mut flows, to_a, &fork, &a, Some("${approved}"));
        flow(&mut flows, to_b, &fork, &b, Some("${!approved}"));
        flow(&mut flows, a_join, &a, &join, None);
        flow(&mut flows, b_join, &b, &join, None);
        flow(&mut flows, to_sub, &join, &sub, None);
        node(&mut nodes, "exclusiveGateway", &fork, &[&into(k)], &[to_a, to_b], "");
        node(&mut nodes, "userTask", &a, &[to_a], &[a_join], "");
        node(&mut nodes, "serviceTask", &b, &[to_b], &[b_join], "");
        node(&mut nodes, "exclusiveGateway", &join, &[a_join, b_join], &[to_sub], "");
        let [start, work, end] = ["SubStart", "Work", "SubEnd"].map(|n| format!("{n}_{k}"));
        let mut inner = String::new();
        node(&mut inner, "startEvent", &start, &[], &[s_t], "");
        node(&mut inner, "scriptTask", &work, &[s_t], &[t_e], "");
        node(&mut inner, "endEvent", &end, &[t_e], &[], "");
        flow(&mut inner, s_t, &start, &work, None);
        flow(&mut inner, t_e, &work, &end, None);
        node(&mut nodes, "subProcess", &sub, &[to_sub], &[&into(k + 1)], &inner);
        source = sub;
    }
    flow(&mut flows, "Flow_end", &source, "End", None);
    node(&mut nodes, "endEvent", "End", &["Flow_end"], &[], "");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">
<bpmn:process id="Process_1" name="Generated {n}" isExecutable="true">
{nodes}{flows}</bpmn:process>
</bpmn:definitions>
"#
    )
}

fn node(out: &mut String, kind: &str, id: &str, incoming: &[&str], outgoing: &[&str], inner: &str) {
    write!(out, r#"<bpmn:{kind} id="{id}" name="{id}">"#).unwrap();
    for f in incoming {
        write!(out, "<bpmn:incoming>{f}</bpmn:incoming>").unwrap();
    }
    for f in outgoing {
        write!(out, "<bpmn:outgoing>{f}</bpmn:outgoing>").unwrap();
    }
    writeln!(out, "{inner}</bpmn:{kind}>").unwrap();
}

fn flow(out: &mut String, id: &str, from: &str, to: &str, condition: Option<&str>) {
    match condition {
        Some(c) => writeln!(
            out,
            r#"<bpmn:sequenceFlow id="{id}" name="{c}" sourceRef="{from}" targetRef="{to}"><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{c}</bpmn:conditionExpression></bpmn:sequenceFlow>"#
        ),
        None => writeln!(out, r#"<bpmn:sequenceFlow id="{id}" sourceRef="{from}" targetRef="{to}"/>"#),
    }
    .unwrap();
}
