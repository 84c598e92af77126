//! BPMN 2.0 XML input, as modelers (Camunda Modeler, bpmn.io) export it: maps the document's
//! processes onto the same [`Workflow`] model that the JSON [`parse`](crate::parse) produces, so
//! every rule of [`analyze`](crate::analyze) applies unchanged, and runs bpmnlint's rules over the
//! document itself (ids `bpmnlint/<name>`), whose findings come with the workflow.
//!
//! ```
//! use portico_workflow_analyzer::{Limits, analyze, bpmn};
//!
//! let xml = br#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"
//!                            xmlns:portico="https://portico.dev/schema/bpmn">
//!   <process id="welcome" name="Welcome">
//!     <startEvent id="t1" name="Signed up" portico:type="form_submitted"/>
//!     <sequenceFlow id="f1" sourceRef="t1" targetRef="tag"/>
//!     <task id="tag" name="Tag as new" portico:type="add_tag">
//!       <extensionElements><portico:config>{"tag": "new"}</portico:config></extensionElements>
//!     </task>
//!     <sequenceFlow id="f2" sourceRef="tag" targetRef="done"/>
//!     <endEvent id="done" name="Done"/>
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
//!   since it is most likely a typo), and so are text annotations, data objects, groups and
//!   `incoming`/`outgoing` children (the `sequenceFlow` elements are authoritative).
//! - The root must be BPMN `definitions`. Every `process` is mapped, collaborations' participants
//!   included, into one workflow; its name and description (first `documentation`) are those of
//!   the first process with `isExecutable="true"`, else of the first process.
//! - Input must be UTF-8 (a byte-order mark is skipped). A `<!DOCTYPE>` is refused as a
//!   [`ProblemKind::Syntax`] problem, so no DTD is read and no entity beyond the five predefined
//!   ones and character references is ever expanded.
//! - Nothing that is well-formed BPMN is refused for being unfamiliar: what the mapping cannot
//!   judge (a flow without a source, a timer given as `timeDate`, a wait whose event the diagram
//!   does not name) is an `unjudged-element` finding of severity info. Input problems are kept for
//!   what Portico's own extensions get wrong, missing or duplicate ids, and the caps below.
//!
//! # Mapping
//!
//! `portico:type="…"` on a task, event or sub-process overrides what the element implies (any
//! [`StepType`] name); on a start event it is the trigger type. `portico:config` on a
//! `sendTask` or `serviceTask` makes it `send_email` or `webhook`; on any other element without
//! a `portico:type` it is a problem, since the analyser cannot tell what the config is for.
//!
//! | BPMN element | becomes |
//! | --- | --- |
//! | `startEvent` at process level or in an event sub-process | a [`Trigger`]: type `portico:type`, else `message`, `timer`, `signal`, `conditional`, `error`, `escalation` or `compensation` from its event definition, else `start` |
//! | `startEvent` in a sub-process, `intermediateThrowEvent`, `task`, `userTask`, `manualTask`, `scriptTask`, `businessRuleTask`, `callActivity`, `sendTask` and `serviceTask` without Portico's extensions | `task`: an activity whose effect the analyser does not know |
//! | `receiveTask` | `wait_for_event`; `event` is the name of the `message` its `messageRef` names (else the ref itself) |
//! | `intermediateCatchEvent` | with `timerEventDefinition`: `wait`, `duration` from its `timeDuration`; with a message, signal or conditional definition: `wait_for_event`, `event` from the referenced message's/signal's name (else the ref); a link catch or anything else: `task` |
//! | `endEvent` | `end`; inside a sub-process that goes on, `task` leading where the sub-process does |
//! | `exclusiveGateway`, `inclusiveGateway` with `portico:type="if_else"` or a `portico:config` | `if_else` |
//! | any other gateway | with two or more outgoing flows a `split` (its `paths` are the targets); otherwise a merge: it becomes no step and every flow into it leads straight to its successor |
//! | `boundaryEvent` with a `timerEventDefinition` (with a `timeDuration`) on a `wait_for_event` step | that step's `timeout`; where its flow leads elsewhere, that element is one of the step's `paths` |
//! | any other `boundaryEvent` | a step (`task` unless `portico:type` says otherwise) that is one of its activity's `paths`; a compensation boundary event leads to the handlers it is associated with |
//! | `subProcess`, `transaction`, `adHocSubProcess` | a `task` whose `next`/`paths` are its start events (in an ad-hoc one, or without start events: the elements inside no flow leads to); where a path inside ends, the run goes on along the sub-process's own flows |
//! | `subProcess triggeredByEvent="true"` | no step: its start events are triggers |
//!
//! Routing comes from `sequenceFlow sourceRef/targetRef`:
//!
//! - An element continues at the target of its single outgoing flow (`next`), or, with several,
//!   at all of them (`paths`). A start event with several outgoing flows leads to a `split` of the
//!   same id. An `end` finishes the path; its outgoing flows are noted and not followed.
//! - A link throw event continues at the link catch event of the same name in its scope.
//! - A wait behind an event-based gateway that also leads to a timer catch event takes that
//!   timer's `timeDuration` as its `timeout`.
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
//! valid ISO-8601 `duration`, `if_else` needs `conditions`); a required key an element without
//! Portico's extensions cannot give is noted (`unjudged-element`) instead.
//!
//! # Problems
//!
//! Every problem is reported, as for JSON, except that a document that is not well-formed XML
//! gets a single [`ProblemKind::Syntax`] problem with pointer `""` and its line, column and byte
//! offset in the message. More than [`Limits::max_steps`] steps is a [`ProblemKind::TooLarge`]
//! problem at `/process`. For BPMN the [`InputProblem::pointer`] is an XPath-like location
//! with local names and no prefixes: `/process`,
//! `/process/sendTask[@id='s1']` (or `/process/sendTask[2]`, the second `sendTask` of its process,
//! when the id is missing or duplicated), `/process/sequenceFlow[@id='f1']`. A config problem
//! points into the config JSON with a JSON pointer,
//! `/process/serviceTask[@id='s4']/extensionElements/config/retry/maxAttempts`, or at the BPMN
//! element a value came from, such as `…/timerEventDefinition/timeDuration`.
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
//! # Not read
//!
//! Timers with `timeDate` or `timeCycle` (the wait is assumed to pause); event definitions
//! shared through `eventDefinitionRef`; condition expressions other than a conjunction of
//! comparisons of a variable with a literal (those are judged by `contradictory-condition`: a
//! flow whose condition can never hold is reported); message flows between participants.
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
mod conditions;
mod document;
mod flows;
pub(crate) mod lint;
mod locate;
mod namespace;
mod reader;
mod roles;
mod steps;
mod tree;

use crate::model::{InputProblem, Limits, Workflow};
use crate::{Finding, RuleInfo, Severity};

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
    let (mut workflow, notes) = build::build(&document, limits)?;
    workflow.findings = lint::lint(&document);
    workflow.findings.extend(conditions::contradictions(&document));
    workflow.findings.extend(notes.into_iter().map(|note| {
        Finding {
            rule: UNJUDGED.id,
            severity: UNJUDGED.severity,
            title: UNJUDGED.title,
            message: note.message,
            step_id: note.element,
            suggestion: "Add Portico's extensions (portico:type, portico:config) where the analyser should judge \
                     more."
                .to_owned(),
        }
    }));
    Ok(workflow)
}

/// What the BPMN mapping could not judge, reported rather than refused.
pub(crate) const UNJUDGED: RuleInfo = RuleInfo {
    id: "unjudged-element",
    severity: Severity::Info,
    title: "Element not judged",
    description: "A BPMN element the analyser reads but cannot judge fully: a flow that leads nowhere, a \
                  timer Portico does not read, a task whose effect the diagram does not say.",
    check: crate::rules::from_source,
};

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

    /// The workflow a document maps to, without the findings about the document itself.
    fn mapped(xml: &[u8]) -> Workflow {
        Workflow {
            findings: Vec::new(),
            ..parse(xml, Limits::default()).unwrap()
        }
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
        assert_eq!(mapped(doc(REFERENCE).as_bytes()), crate::model::reference_example());
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
        let notes: Vec<_> = parse(doc(body).as_bytes(), Limits::default())
            .unwrap()
            .findings
            .into_iter()
            .filter(|f| f.rule == UNJUDGED.id)
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].message.contains("loop through gateways"));
        assert_eq!(notes[0].step_id.as_deref(), Some("m1"));
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
                "/process/task[@id='g']",
            ]
        );
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
        assert_eq!(mapped(&xml), crate::model::reference_example());
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
