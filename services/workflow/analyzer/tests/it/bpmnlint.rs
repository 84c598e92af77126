// bpmnlint's rules on BPMN documents written for these tests: for each rule, what it reports
// (by element id) on a diagram that breaks it and that it stays silent on one that does not.
// `bench/bpmnlint-agreement.sh` compares the same rules with bpmnlint itself on its fixtures.

use portico_workflow_analyzer::{Limits, Severity, Workflow, analyze, bpmn};

const NS: &str = r#"xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL""#;

/// Definitions around `content` (processes, collaborations, global elements).
fn definitions(content: &str) -> String {
    format!(r#"<definitions {NS} id="defs">{content}</definitions>"#)
}

/// Definitions with one process `P` around `body`.
fn process(body: &str) -> String {
    definitions(&format!(r#"<process id="P">{body}</process>"#))
}

fn parsed(xml: &str) -> Workflow {
    match bpmn::parse(xml.as_bytes(), Limits::default()) {
        Ok(workflow) => workflow,
        Err(problems) => panic!("test document does not parse: {problems:#?}\n{xml}"),
    }
}

/// Ids reported by `bpmnlint/<rule>`, in report order.
fn reported(xml: &str, rule: &str) -> Vec<String> {
    let id = format!("bpmnlint/{rule}");
    parsed(xml)
        .findings
        .iter()
        .filter(|f| f.rule == id)
        .filter_map(|f| f.step_id.clone())
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A named start → task → end chain with ids prefixed by `p`.
fn chain(p: &str) -> String {
    format!(
        r#"<startEvent id="{p}s" name="s"/><sequenceFlow id="{p}f1" sourceRef="{p}s" targetRef="{p}t"/>
        <task id="{p}t" name="t"/><sequenceFlow id="{p}f2" sourceRef="{p}t" targetRef="{p}e"/>
        <endEvent id="{p}e" name="e"/>"#
    )
}

#[test]
fn a_clean_diagram_has_no_lint_findings() {
    let xml = definitions(&format!(
        r#"<collaboration id="c"><participant id="pool" name="Shop" processRef="P"/></collaboration>
        <process id="P"><laneSet><lane id="l" name="Clerk"/></laneSet>{}</process>"#,
        chain("")
    ));
    let findings = parsed(&xml).findings;
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn start_and_end_events_are_required_in_every_scope_but_ad_hoc_ones() {
    let xml = process(
        r#"<task id="t" name="t"/>
        <subProcess id="sub"><task id="in" name="in"/></subProcess>
        <transaction id="tx">{tx}</transaction>
        <adHocSubProcess id="adhoc"><task id="a" name="a"/></adHocSubProcess>"#,
    )
    .replace("{tx}", &chain("x"));
    assert_eq!(reported(&xml, "start-event-required"), ids(&["P", "sub"]));
    assert_eq!(reported(&xml, "end-event-required"), ids(&["P", "sub"]));
}

#[test]
fn ad_hoc_sub_processes_hold_neither_start_nor_end_events() {
    let xml = process(
        r#"<adHocSubProcess id="adhoc"><startEvent id="s" name="s"/><task id="a" name="a"/>
        <endEvent id="e" name="e"/></adHocSubProcess>"#,
    );
    assert_eq!(reported(&xml, "ad-hoc-sub-process"), ids(&["s", "e"]));
    // Elements of an ad-hoc sub-process need no flows; the sub-process itself does.
    assert_eq!(reported(&xml, "no-disconnected"), ids(&["adhoc"]));
    assert_eq!(reported(&xml, "no-implicit-start"), ids(&["adhoc"]));
}

#[test]
fn start_events_of_sub_processes_are_blank_and_of_event_sub_processes_typed() {
    let xml = process(
        r#"
        <subProcess id="sub"><startEvent id="typed" name="x"><timerEventDefinition/></startEvent></subProcess>
        <subProcess id="esp" triggeredByEvent="true">
          <startEvent id="blank" name="b"/>
          <startEvent id="msg" name="m"><messageEventDefinition/></startEvent>
        </subProcess>"#,
    );
    assert_eq!(reported(&xml, "sub-process-blank-start-event"), ids(&["typed"]));
    assert_eq!(reported(&xml, "event-sub-process-typed-start-event"), ids(&["blank"]));
}

#[test]
fn one_blank_start_event_per_scope_and_one_definition_per_event() {
    let xml = process(
        r#"<startEvent id="a" name="a"/><startEvent id="b" name="b"/>
        <startEvent id="c" name="c"><timerEventDefinition/></startEvent>
        <subProcess id="sub"><startEvent id="d" name="d"/></subProcess>
        <intermediateCatchEvent id="both" name="x"><timerEventDefinition/><messageEventDefinition/></intermediateCatchEvent>"#,
    );
    assert_eq!(reported(&xml, "single-blank-start-event"), ids(&["P"]));
    assert_eq!(reported(&xml, "single-event-definition"), ids(&["both"]));
}

#[test]
fn conditional_splits_need_a_condition_on_every_flow_but_the_default() {
    let xml = process(
        r#"<exclusiveGateway id="g" name="g?" default="dflt"/>
        <sequenceFlow id="dflt" sourceRef="g" targetRef="a"/>
        <sequenceFlow id="bare" sourceRef="g" targetRef="b"/>
        <sequenceFlow id="cond" name="c" sourceRef="g" targetRef="b"><conditionExpression>x</conditionExpression></sequenceFlow>
        <task id="a" name="a"/><task id="b" name="b"/>
        <task id="t" name="t"/>
        <sequenceFlow id="t1" sourceRef="t" targetRef="a"/><sequenceFlow id="t2" sourceRef="t" targetRef="b"/>"#,
    );
    assert_eq!(reported(&xml, "conditional-flows"), ids(&["bare"]));
    // Two unconditional flows out of a task split it implicitly; a gateway may fork.
    assert_eq!(reported(&xml, "no-implicit-split"), ids(&["t"]));
    // Two flows into a task do not join.
    assert_eq!(reported(&xml, "fake-join"), ids(&["a", "b"]));
}

#[test]
fn event_based_gateways_need_two_unconditional_flows() {
    let xml = process(
        r#"<eventBasedGateway id="one"/><sequenceFlow id="f" sourceRef="one" targetRef="m"/>
        <intermediateCatchEvent id="m" name="m"><messageEventDefinition/></intermediateCatchEvent>
        <eventBasedGateway id="two"/>
        <sequenceFlow id="c1" sourceRef="two" targetRef="m"><conditionExpression>x</conditionExpression></sequenceFlow>
        <sequenceFlow id="c2" sourceRef="two" targetRef="m"/>"#,
    );
    assert_eq!(reported(&xml, "event-based-gateway"), ids(&["one", "c1"]));
}

#[test]
fn gateways_that_fork_and_join_or_neither_and_discouraged_kinds() {
    let xml = process(
        r#"<task id="a" name="a"/><task id="b" name="b"/>
        <parallelGateway id="both"/>
        <sequenceFlow sourceRef="a" targetRef="both" id="f1"/><sequenceFlow sourceRef="b" targetRef="both" id="f2"/>
        <sequenceFlow sourceRef="both" targetRef="c" id="f3"/><sequenceFlow sourceRef="both" targetRef="d" id="f4"/>
        <task id="c" name="c"/><task id="d" name="d"/>
        <exclusiveGateway id="pass"/><sequenceFlow sourceRef="c" targetRef="pass" id="f5"/><sequenceFlow sourceRef="pass" targetRef="d" id="f6"/>
        <inclusiveGateway id="inc"/><complexGateway id="cx"/>"#,
    );
    assert_eq!(reported(&xml, "no-gateway-join-fork"), ids(&["both"]));
    assert_eq!(reported(&xml, "superfluous-gateway"), ids(&["pass"]));
    assert_eq!(reported(&xml, "no-inclusive-gateway"), ids(&["inc"]));
    assert_eq!(reported(&xml, "no-complex-gateway"), ids(&["cx"]));
}

#[test]
fn disconnected_elements_and_implicit_starts_and_ends() {
    let xml = process(
        r#"<startEvent id="s" name="s"/><sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
        <task id="t" name="t"/>
        <task id="alone" name="alone"/>
        <task id="handler" name="undo" isForCompensation="true"/>
        <boundaryEvent id="comp" name="c" attachedToRef="t"><compensateEventDefinition/></boundaryEvent>
        <association id="as" sourceRef="comp" targetRef="handler"/>
        <intermediateThrowEvent id="go" name="go"><linkEventDefinition name="L"/></intermediateThrowEvent>
        <intermediateCatchEvent id="land" name="land"><linkEventDefinition name="L"/></intermediateCatchEvent>
        <sequenceFlow id="f2" sourceRef="land" targetRef="x"/><endEvent id="x" name="x"/>
        <sequenceFlow id="f3" sourceRef="t" targetRef="go"/>
        <subProcess id="esp" triggeredByEvent="true"><startEvent id="es" name="es"><errorEventDefinition/></startEvent>
          <sequenceFlow id="f4" sourceRef="es" targetRef="ee"/><endEvent id="ee" name="ee"/></subProcess>"#,
    );
    assert_eq!(reported(&xml, "no-disconnected"), ids(&["alone"]));
    assert_eq!(reported(&xml, "no-implicit-start"), ids(&["alone"]));
    assert_eq!(reported(&xml, "no-implicit-end"), ids(&["alone"]));
    assert_eq!(reported(&xml, "link-event"), ids(&[]));
}

#[test]
fn duplicate_flows_are_reported_with_their_source_and_target_once() {
    let xml = process(
        r#"<task id="a" name="a"/><task id="b" name="b"/>
        <sequenceFlow id="f1" sourceRef="a" targetRef="b"/><sequenceFlow id="f2" sourceRef="a" targetRef="b"/>
        <sequenceFlow id="f3" sourceRef="a" targetRef="b"/>
        <sequenceFlow id="c1" sourceRef="a" targetRef="b"><conditionExpression>x</conditionExpression></sequenceFlow>"#,
    );
    assert_eq!(
        reported(&xml, "no-duplicate-sequence-flows"),
        ids(&["f2", "a", "b", "f3"])
    );
}

#[test]
fn labels_are_required_where_a_reader_must_tell_elements_apart() {
    let xml = definitions(
        r#"<collaboration id="c"><participant id="pool" processRef="P"/></collaboration>
        <process id="P"><laneSet><lane id="lane"><childLaneSet><lane id="inner" name=" "/></childLaneSet></lane></laneSet>
        <startEvent id="s"/><sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
        <exclusiveGateway id="g"/>
        <sequenceFlow id="plain" sourceRef="g" targetRef="e"/>
        <sequenceFlow id="cond" sourceRef="g" targetRef="e"><conditionExpression>x</conditionExpression></sequenceFlow>
        <parallelGateway id="par"/><subProcess id="sub"/>
        <endEvent id="e" name="done"/>
        <textAnnotation id="note"/></process>"#,
    );
    assert_eq!(
        reported(&xml, "label-required"),
        ids(&["s", "g", "cond", "pool", "lane", "inner"])
    );
}

#[test]
fn global_elements_need_a_name_of_their_own_and_a_use() {
    let xml = definitions(&format!(
        r#"<message id="used" name="order"/><message id="unused" name="other"/>
        <signal id="s1" name="go"/><signal id="s2" name="go"/>
        <error id="blank" name=" "/><escalation id="esc"/>
        <process id="P">{}<receiveTask id="r" name="r" messageRef="used"/>
        <intermediateThrowEvent id="th" name="th"><signalEventDefinition signalRef="s1"/></intermediateThrowEvent>
        <endEvent id="ee" name="ee"><escalationEventDefinition escalationRef="esc"/></endEvent></process>"#,
        chain("")
    ));
    // Per element in document order: missing name, unused, not unique.
    assert_eq!(
        reported(&xml, "global"),
        ids(&["unused", "s1", "s2", "s2", "blank", "blank"])
    );
}

#[test]
fn link_events_pair_by_name_within_their_scope() {
    let xml = process(
        r#"
        <intermediateThrowEvent id="t1" name="a"><linkEventDefinition name="A"/></intermediateThrowEvent>
        <intermediateThrowEvent id="t2" name="b"><linkEventDefinition name="B"/></intermediateThrowEvent>
        <intermediateThrowEvent id="t3" name="b2"><linkEventDefinition name="B"/></intermediateThrowEvent>
        <intermediateCatchEvent id="c1" name="c"><linkEventDefinition name="C"/></intermediateCatchEvent>
        <intermediateCatchEvent id="c2" name="c2"><linkEventDefinition name="C"/></intermediateCatchEvent>
        <intermediateThrowEvent id="t4" name="c3"><linkEventDefinition name="C"/></intermediateThrowEvent>
        <intermediateThrowEvent id="nameless" name="n"><linkEventDefinition/></intermediateThrowEvent>
        <subProcess id="sub"><intermediateCatchEvent id="inner" name="i"><linkEventDefinition name="A"/></intermediateCatchEvent></subProcess>"#,
    );
    assert_eq!(
        reported(&xml, "link-event"),
        ids(&["nameless", "t1", "t2", "t3", "c1", "c2", "nameless", "inner"])
    );
}

#[test]
fn termination_is_superfluous_when_it_is_the_only_way_out() {
    let terminate = r#"<endEvent id="end" name="end"><terminateEventDefinition/></endEvent>"#;
    let only = process(&format!(
        r#"<startEvent id="s" name="s"/><sequenceFlow id="f" sourceRef="s" targetRef="end"/>{terminate}"#
    ));
    assert_eq!(reported(&only, "superfluous-termination"), ids(&["end"]));
    let two_ways = only.replace("</process>", r#"<endEvent id="other" name="o"/></process>"#);
    assert_eq!(reported(&two_ways, "superfluous-termination"), ids(&[]));
}

#[test]
fn severities_follow_the_recommended_configuration() {
    let xml = process(r#"<inclusiveGateway id="inc"/><complexGateway id="cx"/>"#);
    let analysis = analyze(&parsed(&xml));
    let severity = |rule: &str| analysis.issues.iter().find(|f| f.rule == rule).map(|f| f.severity);
    assert_eq!(severity("bpmnlint/no-inclusive-gateway"), Some(Severity::Low));
    assert_eq!(severity("bpmnlint/no-complex-gateway"), Some(Severity::High));
    let lint_rules: Vec<_> = portico_workflow_analyzer::rules()
        .iter()
        .filter(|r| r.id.starts_with("bpmnlint/"))
        .collect();
    assert_eq!(lint_rules.len(), 23);
    let warn: Vec<&str> = lint_rules
        .iter()
        .filter(|r| r.severity == Severity::Low)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        warn,
        vec![
            "bpmnlint/fake-join",
            "bpmnlint/global",
            "bpmnlint/no-inclusive-gateway",
            "bpmnlint/superfluous-gateway",
            "bpmnlint/superfluous-termination"
        ]
    );
    assert!(
        lint_rules
            .iter()
            .all(|r| matches!(r.severity, Severity::High | Severity::Low))
    );
}
