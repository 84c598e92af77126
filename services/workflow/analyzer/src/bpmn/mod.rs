//! BPMN 2.0 XML input: maps one BPMN process onto the same [`Workflow`] model that the JSON
//! [`parse`](crate::parse) produces, so every rule of [`analyze`](crate::analyze) applies unchanged.
//!
//! ```
//! use portico_workflow_analyzer::{Limits, analyze, bpmn};
//!
//! let xml = br#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
//!                            xmlns:portico="https://portico.dev/schema/bpmn">
//!   <process id="welcome" name="Welcome">
//!     <startEvent id="t1" portico:type="form_submitted"/>
//!     <sequenceFlow id="f1" sourceRef="t1" targetRef="tag"/>
//!     <task id="tag" portico:type="add_tag">
//!       <extensionElements><portico:config>{"tag": "new"}</portico:config></extensionElements>
//!     </task>
//!   </process>
//! </definitions>"#;
//! let workflow = bpmn::parse(xml, Limits::default()).expect("a valid workflow");
//! assert_eq!(analyze(&workflow).health_score, 100);
//! ```
//!
//! # Documents
//!
//! - Elements are matched by namespace, never by prefix: the BPMN model namespace
//!   [`BPMN_NAMESPACE`] under any prefix or as the default namespace, and Portico's extension
//!   namespace [`PORTICO_NAMESPACE`] (conventionally prefixed `portico:`) for the attributes and
//!   elements below. Elements and attributes of other namespaces (BPMN DI, vendor extensions)
//!   are ignored (an unknown `portico:` attribute or element on a flow node or flow is a problem,
//!   since it is most likely a typo), and so are lanes, artifacts, data objects, `incoming`/`outgoing` children (the
//!   `sequenceFlow` elements are authoritative) and `conditionExpression` bodies.
//! - The root must be BPMN `definitions`. The workflow is its first `process` with
//!   `isExecutable="true"`, else its first `process`. The process `name` becomes the workflow name
//!   and its first `documentation` child the description.
//! - Input must be UTF-8 (a byte-order mark is skipped). A `<!DOCTYPE>` is refused as a
//!   [`ProblemKind::Syntax`] problem, so no DTD is read and no entity beyond the five predefined
//!   ones and character references is ever expanded.
//!
//! # Mapping
//!
//! Each direct child of the process maps as follows. `portico:type="…"` on a task or intermediate
//! or end event overrides the type the element implies (any [`StepType`] name); on a start event
//! it is the trigger type.
//!
//! | BPMN element | becomes |
//! | --- | --- |
//! | `startEvent` | a [`Trigger`]: type `portico:type`, else `message`, `timer`, `signal` or `conditional` from its event definition, else `start` |
//! | `sendTask` | `send_email` |
//! | `serviceTask` | `webhook` |
//! | `receiveTask` | `wait_for_event`; `event` is the name of the `message` its `messageRef` names (else the ref itself) |
//! | `task`, `userTask`, `manualTask`, `scriptTask`, `businessRuleTask` | the step `portico:type` names; without one a [`ProblemKind::Schema`] problem, since the analyser cannot tell what it does |
//! | `intermediateCatchEvent` | with `timerEventDefinition`: `wait`, `duration` from its `timeDuration`; with `messageEventDefinition`/`signalEventDefinition`: `wait_for_event`, `event` from the referenced message's/signal's name (else the ref) |
//! | `intermediateThrowEvent` | the step `portico:type` names (typically `goal`); required |
//! | `endEvent` | `end` |
//! | `exclusiveGateway`, `inclusiveGateway` | `if_else` when it has two outgoing flows, `portico:type="if_else"` or a `portico:config`; otherwise, with one outgoing flow, a merge: it becomes no step and every flow into it leads straight to its successor |
//! | `boundaryEvent` with `timerEventDefinition` on a `wait_for_event` step | that step's `timeout` (its `timeDuration`); any other boundary event is a problem |
//! | `parallelGateway`, `eventBasedGateway`, `complexGateway`, `subProcess`, `adHocSubProcess`, `transaction`, `callActivity` | a problem: not supported |
//!
//! Routing comes from `sequenceFlow sourceRef/targetRef`:
//!
//! - A step or trigger takes the target of its single outgoing flow as `next` (none: `null`). More
//!   than one outgoing flow on anything but a decision is a problem, and so is any on an `end`.
//! - A `goto` step's outgoing flow becomes its `config.target` (or set `target` in its config, not
//!   both).
//! - A decision's flows become `branches`: a flow is `yes` or `no` by `portico:branch="yes|no"`,
//!   else `no` when it is the gateway's `default` flow, else by its `name` (`yes`/`true`,
//!   `no`/`false`, any case). With two flows, one label decides both. More than two flows, or
//!   flows that cannot be told apart, are problems.
//! - A flow to an id that is not in the process is **not** an input problem: the step keeps the
//!   dangling id in `next` and `analyze` reports `broken-reference`, exactly as for JSON.
//!
//! # Step config
//!
//! The JSON object in `<extensionElements><portico:config>{…}</portico:config></extensionElements>`
//! (text or CDATA, at most one per element) is the step's `config`, or the trigger's. Values the
//! BPMN itself gives (`duration`, `event`, `timeout`, `target` above) fill in keys that config does
//! not set; config wins. The result is validated exactly as JSON input is (e.g. `wait` needs a
//! valid ISO-8601 `duration`, `if_else` needs `conditions`).
//!
//! # Problems
//!
//! Every problem is reported, as for JSON, except that a document that is not well-formed XML
//! gets a single [`ProblemKind::Syntax`] problem with pointer `""` and its line, column and byte
//! offset in the message. More than [`Limits::max_steps`] steps is a [`ProblemKind::TooLarge`]
//! problem at `/process`. For BPMN the [`InputProblem::pointer`] is an XPath-like location
//! relative to the chosen process, with local names and no prefixes: `/process`,
//! `/process/sendTask[@id='s1']` (or `/process/sendTask[2]`, the second `sendTask`, when the id
//! is missing or duplicated), `/process/sequenceFlow[@id='f1']`. A config problem points into the
//! config JSON with a JSON pointer, `/process/serviceTask[@id='s4']/extensionElements/config/retry/maxAttempts`,
//! or at the BPMN element a value came from, such as `…/timerEventDefinition/timeDuration`.
//!
//! Parsing is one streaming pass over the XML plus linear work over the elements, with no
//! recursion, so deep or large documents cannot blow the stack.
//!
//! # Resource caps
//!
//! The reader enforces the `max_xml_*` caps of [`Limits`] as it goes, each tag checked before
//! any of its namespace declarations is bound or any attribute kept: elements in the document
//! (default 100,000, scaled with [`Limits::max_steps`] by [`Limits::for_steps`]), attributes per
//! element (64), namespace declarations over the whole document (64) and nesting depth (64).
//! Going over one stops the read with a single [`ProblemKind::TooLarge`] problem with pointer
//! `""`, naming the limit and its cap, with the line, column and byte offset where it was
//! exceeded.
//!
//! # Not supported
//!
//! Timers with `timeDate` or `timeCycle` instead of `timeDuration`; event definitions shared
//! through `eventDefinitionRef`; several event definitions on one catch event; boundary events
//! other than a timer on a `wait_for_event` step, and a timeout flow that leads elsewhere than the
//! step's own flow (the model has one `next` for both); sub-processes and call activities;
//! parallel, event-based and complex gateways; more than one process per analysis.
//!
//! [`StepType`]: crate::StepType
//! [`Trigger`]: crate::Trigger
//! [`ProblemKind::Syntax`]: crate::ProblemKind::Syntax
//! [`ProblemKind::Schema`]: crate::ProblemKind::Schema
//! [`ProblemKind::TooLarge`]: crate::ProblemKind::TooLarge
//! [`Limits::max_steps`]: crate::Limits::max_steps
//! [`Limits::for_steps`]: crate::Limits::for_steps

mod build;
mod caps;
mod document;
mod flows;
mod locate;
mod namespace;
mod reader;
mod roles;
mod steps;
mod tree;

use crate::model::{InputProblem, Limits, Workflow};

/// Namespace of BPMN 2.0 model elements.
pub const BPMN_NAMESPACE: &str = "http://www.omg.org/spec/BPMN/20100524/MODEL";

/// Namespace of Portico's BPMN extensions: the `type` and `branch` attributes and the `config`
/// extension element.
pub const PORTICO_NAMESPACE: &str = "https://portico.dev/schema/bpmn";

/// Parses a BPMN 2.0 document into a workflow, reporting every problem found rather than the first.
///
/// See the [module documentation](self) for the mapping. As with JSON, reference targets are not
/// checked here: a flow to a missing element is a `broken-reference` finding of
/// [`analyze`](crate::analyze), not an input problem.
pub fn parse(xml: &[u8], limits: Limits) -> Result<Workflow, Vec<InputProblem>> {
    let document = reader::read(xml, &limits).map_err(|problem| vec![problem])?;
    build::build(document, limits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::model::ProblemKind;

    fn doc(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN_NAMESPACE}" xmlns:portico="{PORTICO_NAMESPACE}" id="defs">
  <process id="p" name="Welcome series" isExecutable="true">{body}</process>
</definitions>"#
        )
    }

    fn problems(xml: &str) -> Vec<InputProblem> {
        parse(xml.as_bytes(), Limits::default()).expect_err("document should be rejected")
    }

    fn pointers(problems: &[InputProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.pointer.as_str()).collect()
    }

    const REFERENCE: &str = r#"
    <startEvent id="t1" portico:type="form_submitted"/>
    <sequenceFlow id="f1" sourceRef="t1" targetRef="s1"/>
    <sendTask id="s1">
      <extensionElements><portico:config>{"subject": "Hi", "unsubscribeLink": true}</portico:config></extensionElements>
    </sendTask>
    <sequenceFlow id="f2" sourceRef="s1" targetRef="s2"/>
    <intermediateCatchEvent id="s2"><timerEventDefinition><timeDuration> P1D </timeDuration></timerEventDefinition></intermediateCatchEvent>
    <sequenceFlow id="f3" sourceRef="s2" targetRef="s3"/>
    <exclusiveGateway id="s3" default="f5">
      <extensionElements><portico:config><![CDATA[{"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]}]]></portico:config></extensionElements>
    </exclusiveGateway>
    <sequenceFlow id="f4" sourceRef="s3" targetRef="s4"/>
    <sequenceFlow id="f5" sourceRef="s3" targetRef="s5"/>
    <serviceTask id="s4">
      <extensionElements><portico:config>{"url": "https://x.example/hook", "retry": {"maxAttempts": 3}}</portico:config></extensionElements>
    </serviceTask>
    <task id="s5" portico:type="goto"/>
    <sequenceFlow id="f6" sourceRef="s5" targetRef="s1"/>
    "#;

    #[test]
    fn the_reference_example_maps_to_the_same_model() {
        let workflow = parse(doc(REFERENCE).as_bytes(), Limits::default()).unwrap();
        assert_eq!(workflow, crate::model::reference_example());
    }

    #[test]
    fn merge_gateways_vanish_and_chains_resolve() {
        let body = r#"
        <startEvent id="t1"/>
        <sequenceFlow sourceRef="t1" targetRef="m1"/>
        <exclusiveGateway id="m1"/>
        <sequenceFlow sourceRef="m1" targetRef="m2"/>
        <inclusiveGateway id="m2"/>
        <sequenceFlow sourceRef="m2" targetRef="e"/>
        <endEvent id="e"/>"#;
        let workflow = parse(doc(body).as_bytes(), Limits::default()).unwrap();
        assert_eq!(workflow.triggers[0].next.as_deref(), Some("e"));
        assert_eq!(workflow.triggers[0].trigger_type, "start");
        assert_eq!(workflow.steps.len(), 1);
    }

    #[test]
    fn gateway_only_loops_are_reported_once() {
        let body = r#"
        <startEvent id="t1"/>
        <sequenceFlow sourceRef="t1" targetRef="m1"/>
        <exclusiveGateway id="m1"/>
        <sequenceFlow sourceRef="m1" targetRef="m2"/>
        <exclusiveGateway id="m2"/>
        <sequenceFlow sourceRef="m2" targetRef="m1"/>"#;
        let found = problems(&doc(body));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("loop through gateways"));
    }

    #[test]
    fn config_problems_point_at_their_source() {
        let body = r#"
        <serviceTask id="w"><extensionElements><portico:config>{"url": 1}</portico:config></extensionElements></serviceTask>
        <intermediateCatchEvent id="t"><timerEventDefinition><timeDuration>1 day</timeDuration></timerEventDefinition></intermediateCatchEvent>
        <intermediateCatchEvent id="d"><timerEventDefinition><timeDate>2030-01-01</timeDate></timerEventDefinition></intermediateCatchEvent>
        <task id="g" portico:type="goto"/>"#;
        let found = problems(&doc(body));
        assert_eq!(
            pointers(&found),
            vec![
                "/process/serviceTask[@id='w']/extensionElements/config/url",
                "/process/intermediateCatchEvent[@id='t']/timerEventDefinition/timeDuration",
                "/process/intermediateCatchEvent[@id='d']",
                "/process/task[@id='g']",
            ]
        );
        assert!(found[2].message.contains("timeDuration"), "{}", found[2].message);
    }

    #[test]
    fn decisions_need_distinguishable_sides() {
        let gateway = |flows: &str| {
            doc(&format!(
                r#"<exclusiveGateway id="g" default="b"><extensionElements><portico:config>{{"conditions": []}}</portico:config></extensionElements></exclusiveGateway>
                <endEvent id="x"/><endEvent id="y"/><endEvent id="z"/>{flows}"#
            ))
        };
        let branches = |flows: &str| {
            let workflow = parse(gateway(flows).as_bytes(), Limits::default()).unwrap();
            workflow.steps[0].branches.clone().unwrap()
        };
        let b = branches(
            r#"<sequenceFlow id="a" sourceRef="g" targetRef="x"/><sequenceFlow id="b" sourceRef="g" targetRef="y"/>"#,
        );
        assert_eq!((b.yes.as_deref(), b.no.as_deref()), (Some("x"), Some("y")));
        let b = branches(
            r#"<sequenceFlow id="a" sourceRef="g" targetRef="x" name="No"/><sequenceFlow id="c" sourceRef="g" targetRef="y"/>"#,
        );
        assert_eq!((b.yes.as_deref(), b.no.as_deref()), (Some("y"), Some("x")));
        let b = branches(r#"<sequenceFlow id="a" sourceRef="g" targetRef="x" portico:branch="yes"/>"#);
        assert_eq!((b.yes.as_deref(), b.no.as_deref()), (Some("x"), None));
        for flows in [
            r#"<sequenceFlow id="a" sourceRef="g" targetRef="x"/><sequenceFlow id="c" sourceRef="g" targetRef="y"/>"#,
            r#"<sequenceFlow id="a" sourceRef="g" targetRef="x" name="yes"/><sequenceFlow id="c" sourceRef="g" targetRef="y" name="true"/>"#,
            r#"<sequenceFlow id="a" sourceRef="g" targetRef="x" portico:branch="maybe"/>"#,
            r#"<sequenceFlow sourceRef="g" targetRef="x"/><sequenceFlow sourceRef="g" targetRef="y"/><sequenceFlow sourceRef="g" targetRef="z"/>"#,
        ] {
            let found = problems(&gateway(flows));
            assert_eq!(found.len(), 1, "{flows}: {found:?}");
        }
    }

    #[test]
    fn declarations_may_sit_anywhere_and_xml_attributes_pass() {
        let xml = r#"<?xml version="1.0"?>
<?some-pi data?>
<d:definitions xmlns:d="http://www.omg.org/spec/BPMN/20100524/MODEL" xml:lang="en">
  <d:process id="p">
    <d:documentation>Text with <b>markup</b> &amp; &#x41;.</d:documentation>
    <d:task id="a" xmlns:p2="https://portico.dev/schema/bpmn" p2:type="add_tag" name="Tag &quot;x&quot;">
      <d:extensionElements>
        <p2:config xmlns:p2="https://portico.dev/schema/bpmn">{"tag": "a &lt; b"}</p2:config>
      </d:extensionElements>
    </d:task>
  </d:process>
</d:definitions>"#;
        let workflow = parse(xml.as_bytes(), Limits::default()).unwrap();
        assert_eq!(workflow.description.as_deref(), Some("Text with markup & A."));
        let step = &workflow.steps[0];
        assert_eq!(step.name.as_deref(), Some("Tag \"x\""));
        assert_eq!(step.config["tag"], "a < b");
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_positions_count_it() {
        let mut xml = b"\xEF\xBB\xBF".to_vec();
        xml.extend_from_slice(doc(REFERENCE).as_bytes());
        assert_eq!(
            parse(&xml, Limits::default()).unwrap(),
            crate::model::reference_example()
        );
        let found = parse(b"\xEF\xBB\xBF<a>&#0;</a>", Limits::default()).unwrap_err();
        assert!(found[0].message.contains("byte 6"), "{}", found[0].message);
    }

    #[test]
    fn syntax_problems_carry_line_and_column() {
        let found = problems("<definitions>\n  <process></definitions>");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].pointer.as_str()), (ProblemKind::Syntax, ""));
        assert!(found[0].message.contains("line 2, column 12"), "{}", found[0].message);
        for bad in [
            &b""[..],
            b"<a>",
            b"<a/><b/>",
            b"text<a/>",
            b"<a>&bogus;</a>",
            b"<a x=\"&bogus;\"/>",
            b"<a x=\"1\" x=\"2\"/>",
            b"<p:a/>",
            b"<a>\xff</a>",
        ] {
            let found = parse(bad, Limits::default()).unwrap_err();
            assert_eq!(found[0].kind, ProblemKind::Syntax, "{bad:?}: {found:?}");
        }
    }
}
