// BPMN 2.0 input: the same workflows as BPMN and as JSON must analyse the same, and hostile or
// broken XML must come back as input problems, never as a panic.

use std::fmt::Write;

use portico_workflow_analyzer::{Analysis, Limits, ProblemKind, StepType, Workflow, analyze, bpmn, parse};
use proptest::prelude::*;
use serde_json::json;

/// Knobs that make the reference workflow clean or give it findings.
#[derive(Debug, Clone, Copy)]
struct Variant {
    unsubscribe: bool,
    url: &'static str,
    retry: Option<u32>,
    wait: &'static str,
}

const CLEAN: Variant = Variant {
    unsubscribe: true,
    url: "https://x.example/hook",
    retry: Some(3),
    wait: "P1D",
};

/// The reference workflow of the contract (form trigger, email with unsubscribe link, wait a day,
/// decision, webhook over https with retries, or back to the email) as JSON.
fn reference_json(v: Variant) -> Vec<u8> {
    let mut webhook = json!({"url": v.url});
    if let Some(attempts) = v.retry {
        webhook["retry"] = json!({"maxAttempts": attempts});
    }
    let doc = json!({"name": "Welcome series",
    "triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
    "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": v.unsubscribe}, "next": "s2"},
        {"id": "s2", "type": "wait", "config": {"duration": v.wait}, "next": "s3"},
        {"id": "s3", "type": "if_else", "config": {"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]},
         "branches": {"yes": "s4", "no": "s5"}},
        {"id": "s4", "type": "webhook", "config": webhook, "next": null},
        {"id": "s5", "type": "goto", "config": {"target": "s1"}}
    ]});
    doc.to_string().into_bytes()
}

/// The same workflow as a modeler would save it: `bpmn:` prefix, names, incoming/outgoing
/// children, a vendor namespace, a diagram, and the "no" side drawn straight back to the email
/// instead of through a goto step.
fn reference_bpmn(v: Variant, prefix: &str) -> String {
    let p = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}:{name}")
        }
    };
    let xmlns = if prefix.is_empty() {
        "xmlns".to_owned()
    } else {
        format!("xmlns:{prefix}")
    };
    let retry = v
        .retry
        .map(|n| format!(r#", "retry": {{"maxAttempts": {n}}}"#))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- exported by a modeler -->
<{definitions} {xmlns}="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:po="https://portico.dev/schema/bpmn"
    id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">
  <{message} id="Msg_unused" name="unused"/>
  <{process} id="welcome" name="Welcome series" isExecutable="true">
    <{start} id="t1" name="Form submitted" po:type="form_submitted">
      <{outgoing}>f1</{outgoing}>
    </{start}>
    <{flow} id="f1" sourceRef="t1" targetRef="s1"/>
    <{send} id="s1" name="Welcome email" camunda:asyncBefore="true">
      <{incoming}>f1</{incoming}>
      <{incoming}>f5</{incoming}>
      <{ext}>
        <po:config>{{"subject": "Hi", "unsubscribeLink": {unsubscribe}}}</po:config>
        <camunda:properties><camunda:property name="x" value="y"/></camunda:properties>
      </{ext}>
      <{outgoing}>f2</{outgoing}>
    </{send}>
    <{flow} id="f2" sourceRef="s1" targetRef="s2"/>
    <{catch} id="s2" name="One day">
      <{timer} id="Timer_1"><{duration} xsi:type="tFormalExpression" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{wait}</{duration}></{timer}>
    </{catch}>
    <{flow} id="f3" sourceRef="s2" targetRef="s3"/>
    <{gateway} id="s3" name="VIP?" default="f5">
      <{ext}><po:config><![CDATA[{{"conditions": [{{"field": "tag", "op": "eq", "value": "vip"}}]}}]]></po:config></{ext}>
    </{gateway}>
    <{flow} id="f4" name="Yes" sourceRef="s3" targetRef="s4">
      <{condition}>${{tag == "vip"}}</{condition}>
    </{flow}>
    <{flow} id="f5" sourceRef="s3" targetRef="s1"/>
    <{service} id="s4" name="Notify CRM">
      <{ext}><po:config>{{"url": "{url}"{retry}}}</po:config></{ext}>
    </{service}>
    <{annotation} id="note"><{text}>Loops back &amp; waits a day</{text}></{annotation}>
  </{process}>
  <bpmndi:BPMNDiagram id="D1">
    <bpmndi:BPMNPlane id="P1" bpmnElement="welcome">
      <bpmndi:BPMNShape id="s1_di" bpmnElement="s1"><dc:Bounds x="1" y="2" width="3" height="4"/></bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</{definitions}>"#,
        definitions = p("definitions"),
        message = p("message"),
        process = p("process"),
        start = p("startEvent"),
        outgoing = p("outgoing"),
        incoming = p("incoming"),
        flow = p("sequenceFlow"),
        send = p("sendTask"),
        ext = p("extensionElements"),
        catch = p("intermediateCatchEvent"),
        timer = p("timerEventDefinition"),
        duration = p("timeDuration"),
        gateway = p("exclusiveGateway"),
        condition = p("conditionExpression"),
        service = p("serviceTask"),
        annotation = p("textAnnotation"),
        text = p("text"),
        unsubscribe = v.unsubscribe,
        wait = v.wait,
        url = v.url,
    )
}

/// A minimal document around process content, with the BPMN namespace as default and `portico:`.
fn doc(body: &str) -> String {
    format!(
        r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:portico="https://portico.dev/schema/bpmn">
  <process id="p">{body}</process>
</definitions>"#
    )
}

fn parse_bpmn(xml: &str) -> Workflow {
    match bpmn::parse(xml.as_bytes(), Limits::default()) {
        Ok(workflow) => workflow,
        Err(problems) => panic!("BPMN does not parse: {problems:#?}"),
    }
}

fn problems(xml: &str) -> Vec<portico_workflow_analyzer::InputProblem> {
    bpmn::parse(xml.as_bytes(), Limits::default()).expect_err("document should be rejected")
}

/// Whether a finding is about the workflow (Portico's own rules), not the BPMN document.
fn own(rule: &str) -> bool {
    !rule.starts_with("bpmnlint/") && rule != "unjudged-element"
}

/// (rule, step) of every finding of Portico's own rules.
fn findings(analysis: &Analysis) -> Vec<(&'static str, Option<String>)> {
    analysis
        .issues
        .iter()
        .filter(|f| own(f.rule))
        .map(|f| (f.rule, f.step_id.clone()))
        .collect()
}

fn rules(analysis: &Analysis) -> Vec<&'static str> {
    analysis.issues.iter().map(|f| f.rule).filter(|r| own(r)).collect()
}

/// The analysis of the workflow alone, without the findings about its BPMN document.
fn analyze_workflow(workflow: &Workflow) -> Analysis {
    analyze(&Workflow {
        findings: Vec::new(),
        ..workflow.clone()
    })
}

#[test]
fn reference_workflow_analyses_like_its_json_twin() {
    let variants = [
        CLEAN,
        Variant {
            unsubscribe: false,
            ..CLEAN
        },
        Variant {
            url: "http://x.example/hook",
            retry: None,
            ..CLEAN
        },
        Variant { wait: "PT0S", ..CLEAN },
        Variant {
            unsubscribe: false,
            url: "ftp://nope",
            retry: Some(0),
            wait: "PT0S",
        },
    ];
    for v in variants {
        let from_json = analyze(&parse(&reference_json(v), Limits::default()).unwrap());
        let from_bpmn = analyze_workflow(&parse_bpmn(&reference_bpmn(v, "bpmn")));
        assert_eq!(findings(&from_bpmn), findings(&from_json), "{v:?}");
        assert_eq!(
            (from_bpmn.health_score, from_bpmn.grade),
            (from_json.health_score, from_json.grade),
            "{v:?}"
        );
        assert_eq!(from_bpmn.stats.triggers, 1);
        assert_eq!(from_bpmn.stats.branches, 1);
    }
    let clean = analyze_workflow(&parse_bpmn(&reference_bpmn(CLEAN, "bpmn")));
    assert_eq!((clean.health_score, clean.issues.len()), (100, 0));
    // What bpmnlint finds in the same diagram comes with it, and costs points.
    let linted = analyze(&parse_bpmn(&reference_bpmn(CLEAN, "bpmn")));
    let lint: Vec<(&str, Option<&str>)> = linted.issues.iter().map(|f| (f.rule, f.step_id.as_deref())).collect();
    assert_eq!(
        lint,
        vec![
            ("bpmnlint/end-event-required", Some("welcome")),
            ("bpmnlint/no-implicit-end", Some("s4")),
            ("bpmnlint/global", Some("Msg_unused")),
            ("bpmnlint/fake-join", Some("s1")),
        ]
    );
    assert_eq!(linted.health_score, 100 - 10 - 10 - 2 - 2);
    let risky = analyze(&parse_bpmn(&reference_bpmn(variants[4], "bpmn")));
    assert_eq!(
        rules(&risky),
        vec![
            "loop-without-wait",
            "email-no-unsubscribe",
            "webhook-insecure-url",
            "webhook-no-retry"
        ]
    );
}

#[test]
fn reference_workflow_maps_field_by_field() {
    let workflow = parse_bpmn(&reference_bpmn(CLEAN, "bpmn"));
    assert_eq!(workflow.name.as_deref(), Some("Welcome series"));
    let trigger = &workflow.triggers[0];
    assert_eq!(
        (
            trigger.id.as_str(),
            trigger.trigger_type.as_str(),
            trigger.name.as_deref(),
            trigger.next.as_deref()
        ),
        ("t1", "form_submitted", Some("Form submitted"), Some("s1"))
    );
    let summary: Vec<(&str, StepType, Option<&str>)> = workflow
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.step_type, s.next.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("s1", StepType::SendEmail, Some("s2")),
            ("s2", StepType::Wait, Some("s3")),
            ("s3", StepType::IfElse, None),
            ("s4", StepType::Webhook, None),
        ]
    );
    let branches = workflow.steps[2].branches.as_ref().unwrap();
    assert_eq!(
        (branches.yes.as_deref(), branches.no.as_deref()),
        (Some("s4"), Some("s1"))
    );
    assert_eq!(workflow.steps[1].config["duration"], "P1D");
    assert_eq!(workflow.steps[0].name.as_deref(), Some("Welcome email"));
}

#[test]
fn any_prefix_or_the_default_namespace_parses_the_same() {
    let reference = parse_bpmn(&reference_bpmn(CLEAN, "bpmn"));
    for prefix in ["bpmn2", "", "x"] {
        assert_eq!(
            parse_bpmn(&reference_bpmn(CLEAN, prefix)),
            reference,
            "prefix {prefix:?}"
        );
    }
    // The prefix alone means nothing: `bpmn:` bound to another namespace is not BPMN.
    let wrong = reference_bpmn(CLEAN, "bpmn").replace(
        r#"xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL""#,
        r#"xmlns:bpmn="urn:something-else""#,
    );
    let found = problems(&wrong);
    assert_eq!(found[0].kind, ProblemKind::Schema);
    assert!(found[0].message.contains("root element"), "{}", found[0].message);
}

#[test]
fn loop_without_timer_is_an_infinite_loop() {
    let body = r#"
    <startEvent id="t1"/>
    <sequenceFlow sourceRef="t1" targetRef="a"/>
    <task id="a" portico:type="add_tag"><extensionElements><portico:config>{"tag": "a"}</portico:config></extensionElements></task>
    <sequenceFlow sourceRef="a" targetRef="merge"/>
    <exclusiveGateway id="merge"/>
    <sequenceFlow sourceRef="merge" targetRef="b"/>
    <task id="b" portico:type="remove_tag"><extensionElements><portico:config>{"tag": "a"}</portico:config></extensionElements></task>
    <sequenceFlow sourceRef="b" targetRef="a"/>"#;
    let analysis = analyze(&parse_bpmn(&doc(body)));
    assert_eq!(rules(&analysis), vec!["infinite-loop"]);
    assert_eq!(analysis.issues[0].step_id.as_deref(), Some("a"));
    assert_eq!(analysis.stats.steps, 2, "the merge gateway is not a step");

    let with_timer = body.replace(
        r#"<sequenceFlow sourceRef="b" targetRef="a"/>"#,
        r#"<sequenceFlow sourceRef="b" targetRef="w"/>
        <intermediateCatchEvent id="w"><timerEventDefinition><timeDuration>P7D</timeDuration></timerEventDefinition></intermediateCatchEvent>
        <sequenceFlow sourceRef="w" targetRef="merge"/>"#,
    );
    assert!(rules(&analyze(&parse_bpmn(&doc(&with_timer)))).is_empty());
}

#[test]
fn flow_to_a_missing_element_is_a_broken_reference_not_an_input_problem() {
    let body = r#"
    <startEvent id="t1"/>
    <sequenceFlow sourceRef="t1" targetRef="e"/>
    <endEvent id="e"/>
    <intermediateThrowEvent id="g" portico:type="goal"/>
    <sequenceFlow id="lost" sourceRef="g" targetRef="ghost"/>"#;
    let workflow = parse_bpmn(&doc(body));
    assert_eq!(workflow.steps[1].next.as_deref(), Some("ghost"));
    let analysis = analyze(&workflow);
    assert_eq!(
        findings(&analysis),
        vec![
            ("broken-reference", Some("g".to_owned())),
            ("goal-unreachable", Some("g".to_owned()))
        ]
    );
}

#[test]
fn waiting_for_a_message_takes_the_timeout_from_a_boundary_timer() {
    let with_timer = doc(r#"
    <startEvent id="t1"><messageEventDefinition messageRef="m_signup"/></startEvent>
    <sequenceFlow sourceRef="t1" targetRef="w"/>
    <receiveTask id="w" messageRef="m_click"/>
    <boundaryEvent id="timeout" attachedToRef="w"><timerEventDefinition><timeDuration>P3D</timeDuration></timerEventDefinition></boundaryEvent>
    <sequenceFlow sourceRef="w" targetRef="e"/>
    <sequenceFlow sourceRef="timeout" targetRef="e"/>
    <endEvent id="e"/>"#)
    .replace("</definitions>", r#"<message id="m_click" name="email_clicked"/></definitions>"#);
    let workflow = parse_bpmn(&with_timer);
    assert_eq!(workflow.triggers[0].trigger_type, "message");
    let wait = &workflow.steps[0];
    assert_eq!(wait.step_type, StepType::WaitForEvent);
    assert_eq!(
        wait.config,
        json!({"event": "email_clicked", "timeout": "P3D"})
            .as_object()
            .unwrap()
            .clone()
    );
    assert_eq!(wait.next.as_deref(), Some("e"));
    assert!(rules(&analyze(&workflow)).is_empty());

    let without = doc(r#"
    <startEvent id="t1"/>
    <sequenceFlow sourceRef="t1" targetRef="w"/>
    <intermediateCatchEvent id="w"><signalEventDefinition signalRef="sig"/></intermediateCatchEvent>"#);
    let workflow = parse_bpmn(&without);
    assert_eq!(workflow.steps[0].config["event"], "sig");
    assert_eq!(rules(&analyze(&workflow)), vec!["wait-without-timeout"]);

    // A timeout that leads elsewhere than the event: the step waits with that timeout, and
    // the element the timer leads to is one of its paths.
    let elsewhere = with_timer.replace(
        r#"<sequenceFlow sourceRef="timeout" targetRef="e"/>"#,
        r#"<sequenceFlow sourceRef="timeout" targetRef="other"/><endEvent id="other"/>"#,
    );
    let workflow = parse_bpmn(&elsewhere);
    let wait = &workflow.steps[0];
    assert_eq!(
        (wait.config["timeout"].as_str(), wait.next.as_deref()),
        (Some("P3D"), Some("e"))
    );
    assert_eq!(wait.paths, vec!["other".to_owned()]);
    assert!(rules(&analyze(&workflow)).is_empty());
}

#[test]
fn malformed_xml_is_a_syntax_problem_with_a_position() {
    let broken = reference_bpmn(CLEAN, "bpmn").replace("</bpmn:sendTask>", "</bpmn:task>");
    let found = bpmn::parse(broken.as_bytes(), Limits::default()).unwrap_err();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].kind, found[0].pointer.as_str()), (ProblemKind::Syntax, ""));
    assert!(found[0].message.contains("line 23,"), "{}", found[0].message);
    for bad in ["", "<definitions", "not xml at all", "<a></b>", "<a>&nbsp;</a>"] {
        let found = bpmn::parse(bad.as_bytes(), Limits::default()).unwrap_err();
        assert_eq!(found[0].kind, ProblemKind::Syntax, "{bad:?}");
    }
}

#[test]
fn doctype_is_refused_so_entities_cannot_expand() {
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY lol "lol">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p" name="&xxe;&lol;"/></definitions>"#;
    let found = problems(xxe);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::Syntax);
    assert!(found[0].message.contains("DOCTYPE"), "{}", found[0].message);
    assert!(found[0].message.contains("line 2, column 1"), "{}", found[0].message);
}

#[test]
fn duplicate_ids_are_schema_problems() {
    let found = problems(&doc(r#"
    <startEvent id="t1"/>
    <sequenceFlow id="x" sourceRef="t1" targetRef="s1"/>
    <sendTask id="s1"/>
    <sendTask id="s1"/>
    <task id="x" portico:type="end"/>"#));
    assert!(found.iter().all(|p| p.kind == ProblemKind::Schema), "{found:?}");
    let pointers: Vec<&str> = found.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(pointers, vec!["/process/sendTask[2]", "/process/task[1]"]);
    assert!(
        found[0].message.contains("/process/sendTask[1]"),
        "{}",
        found[0].message
    );
    assert!(
        found[1].message.contains("/process/sequenceFlow[1]"),
        "{}",
        found[1].message
    );
}

#[test]
fn too_many_steps_is_its_own_kind() {
    let xml = doc(r#"
    <endEvent id="a"/><endEvent id="b"/>
    <exclusiveGateway id="merge"/><sequenceFlow sourceRef="merge" targetRef="c"/>
    <endEvent id="c"/>"#);
    let found = bpmn::parse(
        xml.as_bytes(),
        Limits {
            max_steps: 2,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].kind, found[0].pointer.as_str()),
        (ProblemKind::TooLarge, "/process")
    );
    assert!(
        bpmn::parse(
            xml.as_bytes(),
            Limits {
                max_steps: 3,
                ..Limits::default()
            }
        )
        .is_ok(),
        "merges do not count"
    );
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let found = problems(&doc(r#"
    <startEvent id="t1"/>
    <sequenceFlow id="f1" sourceRef="t1" targetRef="s"/>
    <sendTask id="s" portico:type="send_fax"/>
    <serviceTask id="w"><extensionElements><portico:config>{"retry": {"maxAttempts": "3"}}</portico:config></extensionElements></serviceTask>
    <task id="j" portico:type="add_tag"><extensionElements><portico:config>[1]</portico:config></extensionElements></task>
    <task id="k" portico:tpye="add_tag" portico:type="add_tag"><extensionElements><portico:conifg/></extensionElements></task>
    <userTask id="u"><extensionElements><portico:config>{"tag": "x"}</portico:config></extensionElements></userTask>
    <exclusiveGateway id="g" portico:type="wait"/>"#));
    assert!(found.iter().all(|p| p.kind == ProblemKind::Schema), "{found:#?}");
    let mut pointers: Vec<&str> = found.iter().map(|p| p.pointer.as_str()).collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        vec![
            "/process/exclusiveGateway[@id='g']",
            "/process/sendTask[@id='s']",
            "/process/serviceTask[@id='w']/extensionElements/config/retry/maxAttempts",
            "/process/task[@id='j']/extensionElements/config",
            "/process/task[@id='k']",
            "/process/task[@id='k']",
            "/process/userTask[@id='u']",
        ]
    );
    let user_task = found.iter().find(|p| p.pointer.contains("userTask")).unwrap();
    assert!(user_task.message.contains("<userTask>") && user_task.message.contains("portico:type"));
}

#[test]
fn what_a_modeler_leaves_open_is_noted_not_refused() {
    let workflow = parse_bpmn(&doc(r#"
    <startEvent id="t1"/>
    <sequenceFlow id="f1" sourceRef="t1" targetRef="u"/>
    <sequenceFlow id="f2" sourceRef="t1" targetRef="s"/>
    <userTask id="u"/>
    <sendTask id="s"/>
    <parallelGateway id="fork"/>
    <intermediateCatchEvent id="d"><timerEventDefinition><timeDate>2030-01-01</timeDate></timerEventDefinition></intermediateCatchEvent>
    <endEvent id="e"/>
    <sequenceFlow id="f3" sourceRef="e" targetRef="t1"/>
    <sequenceFlow id="f4" sourceRef="nowhere" targetRef="e"/>
    <sequenceFlow id="f5" sourceRef="e"/>"#));
    // The start event forks: its trigger leads to a split of the same id.
    assert_eq!(workflow.triggers[0].next.as_deref(), Some("t1"));
    let summary: Vec<(&str, StepType, Vec<String>)> = workflow
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.step_type, s.paths.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("t1", StepType::Split, vec!["u".to_owned(), "s".to_owned()]),
            ("u", StepType::Task, vec![]),
            ("s", StepType::Task, vec![]),
            ("d", StepType::Wait, vec![]),
            ("e", StepType::End, vec![]),
        ]
    );
    let noted: Vec<(&str, &str)> = workflow
        .findings
        .iter()
        .filter(|f| f.rule == "unjudged-element")
        .map(|f| (f.step_id.as_deref().unwrap_or(""), f.message.as_str()))
        .collect();
    let ids: Vec<&str> = noted.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec!["f3", "f4", "f5", "d"], "{noted:#?}");
    assert!(noted[3].1.contains("duration"), "{}", noted[3].1);
    // Notes inform; they cost nothing.
    assert!(
        workflow
            .findings
            .iter()
            .filter(|f| f.rule == "unjudged-element")
            .all(|f| f.severity.weight() == 0)
    );
}

#[test]
fn the_document_must_be_bpmn() {
    for xml in [
        r#"<process xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"#,
        r#"<definitions/>"#,
    ] {
        let found = problems(xml);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].pointer.as_str()), (ProblemKind::Schema, ""));
        assert!(found[0].message.contains("root element"), "{}", found[0].message);
    }
    // Definitions without a process are a workflow with nothing in it.
    let empty = analyze(&parse_bpmn(
        r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"#,
    ));
    assert_eq!(rules(&empty), vec!["no-trigger", "empty-workflow"]);
}

#[test]
fn every_process_is_mapped_and_the_executable_one_names_the_workflow() {
    let xml = r#"<b:definitions xmlns:b="http://www.omg.org/spec/BPMN/20100524/MODEL">
      <b:process id="draft" name="Draft"><b:userTask id="u"/></b:process>
      <b:process id="live" name="Live" isExecutable="true">
        <b:documentation> Runs every day. </b:documentation>
        <b:startEvent id="t"><b:timerEventDefinition/></b:startEvent>
      </b:process>
    </b:definitions>"#;
    let workflow = parse_bpmn(xml);
    assert_eq!(workflow.name.as_deref(), Some("Live"));
    assert_eq!(workflow.description.as_deref(), Some("Runs every day."));
    assert_eq!(workflow.triggers[0].trigger_type, "timer");
    assert_eq!(workflow.steps[0].id, "u");
    assert_eq!(rules(&analyze(&workflow)), vec!["unreachable-step"]);
    // Without isExecutable the first process names it.
    let first = xml.replace(r#" isExecutable="true""#, "");
    assert_eq!(parse_bpmn(&first).name.as_deref(), Some("Draft"));
}

#[test]
fn long_chains_through_merge_gateways_parse_in_linear_time() {
    const N: usize = 100_000;
    let mut body = String::from(r#"<startEvent id="t"/><sequenceFlow sourceRef="t" targetRef="g0"/>"#);
    for i in 0..N {
        write!(
            body,
            r#"<exclusiveGateway id="g{i}"/><sequenceFlow sourceRef="g{i}" targetRef="{}"/>"#,
            if i + 1 < N {
                format!("g{}", i + 1)
            } else {
                "e".to_owned()
            }
        )
        .unwrap();
    }
    body.push_str(r#"<endEvent id="e"/>"#);
    // 200,000 elements: over the default element cap, which is not what this test is about.
    let limits = Limits {
        max_xml_elements: 1_000_000,
        ..Limits::default()
    };
    let workflow = bpmn::parse(doc(&body).as_bytes(), limits).unwrap();
    assert_eq!(workflow.triggers[0].next.as_deref(), Some("e"));
    assert_eq!(workflow.steps.len(), 1);
}

/// One root element carrying 40,000 `xmlns:pN="urn:x"` declarations, one per line, padded with
/// spaces inside the tag to exactly 1 MiB.
fn namespace_flood() -> String {
    const SIZE: usize = 1 << 20;
    let mut xml = String::with_capacity(SIZE);
    xml.push_str(r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL""#);
    for i in 0..40_000 {
        write!(xml, "\n    xmlns:p{i}=\"urn:x\"").unwrap();
    }
    let tail = r#"><process id="p"/></definitions>"#;
    xml.extend(std::iter::repeat_n(' ', SIZE - xml.len() - tail.len()));
    xml.push_str(tail);
    xml
}

/// The byte offset a located problem's message ends with: `… (line L, column C, byte B)`.
fn byte_offset(problem: &portico_workflow_analyzer::InputProblem) -> usize {
    let (_, tail) = problem.message.rsplit_once("byte ").unwrap();
    tail.trim_end_matches(')').parse().unwrap()
}

#[test]
fn a_megabyte_of_namespace_declarations_is_refused_at_the_cap() {
    let xml = namespace_flood();
    assert_eq!(xml.len(), 1 << 20);
    let found = problems(&xml);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].kind, found[0].pointer.as_str()), (ProblemKind::TooLarge, ""));
    assert!(
        found[0].message.contains("maxXmlNamespaces = 64"),
        "{}",
        found[0].message
    );
    // The default namespace is the first declaration, so xmlns:p63 is the 65th: the reader
    // stopped right there, 0.2% into the document, without binding or reading the rest.
    let at = byte_offset(&found[0]);
    assert_eq!(at, xml.find("xmlns:p63=").unwrap(), "{}", found[0].message);
    assert!(at < xml.len() / 500, "{}", found[0].message);
    assert!(found[0].message.contains("line 65, column 5"), "{}", found[0].message);
}

#[test]
fn namespace_declarations_are_counted_over_the_whole_document() {
    // `doc` declares two on the root; each task declares one more, in a scope of its own.
    let tasks = |n: usize| -> String {
        (0..n)
            .map(|i| format!(r#"<task id="t{i}" portico:type="end" xmlns:v="urn:v"/>"#))
            .collect()
    };
    let at_cap = bpmn::parse(doc(&tasks(62)).as_bytes(), Limits::default()).unwrap();
    assert_eq!(at_cap.steps.len(), 62);
    let xml = doc(&tasks(63));
    let found = problems(&xml);
    assert_eq!(found[0].kind, ProblemKind::TooLarge);
    assert!(found[0].message.contains("maxXmlNamespaces"), "{}", found[0].message);
    let last = xml.rfind("xmlns:v=").unwrap();
    assert_eq!(byte_offset(&found[0]), last);
}

#[test]
fn attributes_per_element_are_capped() {
    let task = |attributes: usize| {
        let extra: String = (2..attributes).map(|i| format!(r#" a{i}="""#)).collect();
        doc(&format!(r#"<task id="t" portico:type="end"{extra}/>"#))
    };
    assert!(bpmn::parse(task(64).as_bytes(), Limits::default()).is_ok());
    let xml = task(65);
    let found = problems(&xml);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::TooLarge);
    assert!(
        found[0].message.contains("maxXmlAttributes = 64"),
        "{}",
        found[0].message
    );
    assert_eq!(byte_offset(&found[0]), xml.find(" a64=").unwrap() + 1);
    // The walk stops at the cap, before quick-xml's duplicate check or the resolver see the rest.
    let flood = task(100_000);
    let found = problems(&flood);
    assert_eq!(found[0].kind, ProblemKind::TooLarge);
    assert_eq!(byte_offset(&found[0]), flood.find(" a64=").unwrap() + 1);
}

#[test]
fn elements_are_capped_and_the_cap_scales_with_the_step_limit() {
    assert_eq!(Limits::default().max_xml_elements, 100_000);
    assert_eq!(Limits::default(), Limits::for_steps(Limits::DEFAULT_MAX_STEPS));
    assert_eq!(Limits::for_steps(10_000).max_xml_elements, 200_000);
    assert_eq!(Limits::for_steps(2).max_xml_elements, Limits::MIN_XML_ELEMENTS);
    // definitions, process and eight end events are ten elements.
    let xml = doc(&r#"<endEvent id="e"/>"#.repeat(8).replace(r#"id="e""#, ""));
    let small = Limits {
        max_xml_elements: 10,
        ..Limits::default()
    };
    assert!(
        bpmn::parse(xml.as_bytes(), small).unwrap_err()[0].kind == ProblemKind::Schema,
        "within the cap, so the missing ids are what is wrong"
    );
    let one_more = xml.replace("</process>", "<endEvent/></process>");
    let found = bpmn::parse(one_more.as_bytes(), small).unwrap_err();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::TooLarge);
    assert!(found[0].message.contains("maxXmlElements = 10"), "{}", found[0].message);
    assert_eq!(byte_offset(&found[0]), one_more.rfind("<endEvent/>").unwrap());
}

#[test]
fn nesting_is_capped_without_recursion() {
    let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    // At the cap the reader finishes, and the document is merely not BPMN.
    assert_eq!(problems(&nested(64))[0].kind, ProblemKind::Schema);
    for depth in [65, 100_000] {
        let found = problems(&nested(depth));
        assert_eq!(found[0].kind, ProblemKind::TooLarge);
        assert!(found[0].message.contains("maxXmlDepth = 64"), "{}", found[0].message);
        assert_eq!(byte_offset(&found[0]), 64 * "<a>".len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = bpmn::parse(&bytes, Limits::default());
    }

    #[test]
    fn damaged_documents_never_panic(cut in 0usize..4000, at in 0usize..4000, byte in any::<u8>()) {
        let mut bytes = reference_bpmn(CLEAN, "bpmn").into_bytes();
        if let Some(b) = bytes.get_mut(at) {
            *b = byte;
        }
        bytes.truncate(cut);
        if let Ok(workflow) = bpmn::parse(&bytes, Limits::default()) {
            let _ = analyze(&workflow);
        }
    }
}

#[test]
fn modeler_constructs_join_the_workflow_graph() {
    // A sub-process is entered at its start event and left where it ends; an element inside
    // that nothing leads to is unreachable.
    let sub = doc(r#"
    <startEvent id="t1"/><sequenceFlow sourceRef="t1" targetRef="sub"/>
    <subProcess id="sub">
      <startEvent id="in"/><sequenceFlow sourceRef="in" targetRef="a"/>
      <userTask id="a"/><sequenceFlow sourceRef="a" targetRef="out"/><endEvent id="out"/>
      <task id="stray"/>
    </subProcess>
    <sequenceFlow sourceRef="sub" targetRef="e"/><endEvent id="e"/>"#);
    let workflow = parse_bpmn(&sub);
    let step = |id: &str| workflow.steps.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(step("sub").next.as_deref(), Some("in"));
    assert_eq!(
        (step("out").step_type, step("out").next.as_deref()),
        (StepType::Task, Some("e"))
    );
    assert_eq!(
        findings(&analyze(&workflow)),
        vec![("unreachable-step", Some("stray".to_owned()))]
    );

    // A loop through a parallel branch with no wait in it.
    let parallel = doc(r#"
    <startEvent id="t1"/><sequenceFlow sourceRef="t1" targetRef="fork"/>
    <parallelGateway id="fork"/>
    <sequenceFlow sourceRef="fork" targetRef="a"/><sequenceFlow sourceRef="fork" targetRef="b"/>
    <task id="a" portico:type="add_tag"><extensionElements><portico:config>{"tag": "x"}</portico:config></extensionElements></task>
    <sequenceFlow sourceRef="a" targetRef="fork"/>
    <task id="b"/><sequenceFlow sourceRef="b" targetRef="e"/><endEvent id="e"/>"#);
    let workflow = parse_bpmn(&parallel);
    assert_eq!(workflow.steps[0].step_type, StepType::Split);
    assert_eq!(
        findings(&analyze(&workflow)),
        vec![("loop-without-wait", Some("fork".to_owned()))]
    );
    // Without the way out through b, the loop never ends.
    let closed = parallel.replace(r#"<sequenceFlow sourceRef="fork" targetRef="b"/>"#, "");
    assert_eq!(rules(&analyze(&parse_bpmn(&closed)))[0], "infinite-loop");

    // Event sub-processes start runs of their own; boundary events, link events and
    // compensation lead on; a message raced against a timer has that timer as its timeout.
    let reached = doc(r#"
    <startEvent id="t1"/><sequenceFlow sourceRef="t1" targetRef="task"/>
    <serviceTask id="task"/>
    <boundaryEvent id="failed" attachedToRef="task"><errorEventDefinition/></boundaryEvent>
    <sequenceFlow sourceRef="failed" targetRef="handle"/><task id="handle"/>
    <sequenceFlow sourceRef="handle" targetRef="jump"/>
    <intermediateThrowEvent id="jump"><linkEventDefinition name="L"/></intermediateThrowEvent>
    <intermediateCatchEvent id="land"><linkEventDefinition name="L"/></intermediateCatchEvent>
    <sequenceFlow sourceRef="land" targetRef="race"/>
    <sequenceFlow sourceRef="task" targetRef="race"/>
    <eventBasedGateway id="race"/>
    <sequenceFlow sourceRef="race" targetRef="pay"/><sequenceFlow sourceRef="race" targetRef="late"/>
    <intermediateCatchEvent id="pay"><messageEventDefinition messageRef="m"/></intermediateCatchEvent>
    <intermediateCatchEvent id="late"><timerEventDefinition><timeDuration>P2D</timeDuration></timerEventDefinition></intermediateCatchEvent>
    <sequenceFlow sourceRef="pay" targetRef="e"/><sequenceFlow sourceRef="late" targetRef="e"/><endEvent id="e"/>
    <boundaryEvent id="undo" attachedToRef="task"><compensateEventDefinition/></boundaryEvent>
    <task id="refund" isForCompensation="true"/><association sourceRef="undo" targetRef="refund"/>
    <subProcess id="esp" triggeredByEvent="true">
      <startEvent id="cancel"><messageEventDefinition messageRef="m"/></startEvent>
      <sequenceFlow sourceRef="cancel" targetRef="notify"/><task id="notify"/>
    </subProcess>"#)
    .replace("</definitions>", r#"<message id="m" name="paid"/></definitions>"#);
    let workflow = parse_bpmn(&reached);
    assert_eq!(findings(&analyze(&workflow)), vec![]);
    let pay = workflow.steps.iter().find(|s| s.id == "pay").unwrap();
    assert_eq!(
        (
            pay.step_type,
            pay.config["event"].as_str(),
            pay.config["timeout"].as_str()
        ),
        (StepType::WaitForEvent, Some("paid"), Some("P2D"))
    );
    assert_eq!(
        workflow
            .triggers
            .iter()
            .map(|t| (t.id.as_str(), t.trigger_type.as_str()))
            .collect::<Vec<_>>(),
        vec![("t1", "start"), ("cancel", "message")]
    );
    let task = workflow.steps.iter().find(|s| s.id == "task").unwrap();
    assert_eq!(task.paths, vec!["failed".to_owned(), "undo".to_owned()]);
}

#[test]
fn a_gateway_condition_that_can_never_hold_is_a_contradiction() {
    let xml = doc(r#"
    <startEvent id="t1"/><sequenceFlow sourceRef="t1" targetRef="g"/>
    <exclusiveGateway id="g" default="rest"/>
    <sequenceFlow id="dead" sourceRef="g" targetRef="a"><conditionExpression>${amount &gt; 100 &amp;&amp; amount &lt; 50}</conditionExpression></sequenceFlow>
    <sequenceFlow id="fine" sourceRef="g" targetRef="a"><conditionExpression>${amount &gt;= 100 &amp;&amp; tier == 'gold'}</conditionExpression></sequenceFlow>
    <sequenceFlow id="feel" sourceRef="g" targetRef="a"><conditionExpression>tier = "gold" and tier = "silver"</conditionExpression></sequenceFlow>
    <sequenceFlow id="opaque" sourceRef="g" targetRef="a"><conditionExpression>${isVip(customer) || amount &lt; 0}</conditionExpression></sequenceFlow>
    <sequenceFlow id="rest" sourceRef="g" targetRef="a"/>
    <task id="a"/><sequenceFlow sourceRef="a" targetRef="e"/><endEvent id="e"/>"#);
    let analysis = analyze(&parse_bpmn(&xml));
    let contradictions: Vec<(Option<&str>, &str)> = analysis
        .issues
        .iter()
        .filter(|f| f.rule == "contradictory-condition")
        .map(|f| (f.step_id.as_deref(), f.message.as_str()))
        .collect();
    assert_eq!(contradictions.len(), 2, "{contradictions:#?}");
    assert_eq!(contradictions[0].0, Some("dead"));
    assert!(contradictions[0].1.contains("\"amount\""), "{}", contradictions[0].1);
    assert_eq!(contradictions[1].0, Some("feel"));
}
