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

use std::fmt;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{Namespace, NamespaceResolver, ResolveResult};
use quick_xml::reader::Reader;
use serde_json::{Map, Value};

use crate::hash::{IdMap, id_map};
use crate::model::{Branches, InputProblem, Limits, ProblemKind, Step, StepType, Trigger, Workflow, config_problems};

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
    let document = read(xml, &limits).map_err(|problem| vec![problem])?;
    build(document, limits)
}

// ---------------------------------------------------------------------------------------------
// Reading: one streaming pass that checks well-formedness and keeps only what the mapping needs.
// ---------------------------------------------------------------------------------------------

/// What a flow-node element is, before flows are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    End,
    Boundary,
    Catch,
    Throw,
    /// A task, with the step type its element implies, if any.
    Task(Option<StepType>),
    /// An exclusive or inclusive gateway: a decision, or a merge.
    Gateway,
    Unsupported,
}

/// Flow-node elements by local name.
const FLOW_NODES: [(&str, Kind); 22] = [
    ("startEvent", Kind::Start),
    ("endEvent", Kind::End),
    ("boundaryEvent", Kind::Boundary),
    ("intermediateCatchEvent", Kind::Catch),
    ("intermediateThrowEvent", Kind::Throw),
    ("sendTask", Kind::Task(Some(StepType::SendEmail))),
    ("serviceTask", Kind::Task(Some(StepType::Webhook))),
    ("receiveTask", Kind::Task(Some(StepType::WaitForEvent))),
    ("task", Kind::Task(None)),
    ("userTask", Kind::Task(None)),
    ("manualTask", Kind::Task(None)),
    ("scriptTask", Kind::Task(None)),
    ("businessRuleTask", Kind::Task(None)),
    ("exclusiveGateway", Kind::Gateway),
    ("inclusiveGateway", Kind::Gateway),
    ("parallelGateway", Kind::Unsupported),
    ("eventBasedGateway", Kind::Unsupported),
    ("complexGateway", Kind::Unsupported),
    ("subProcess", Kind::Unsupported),
    ("adHocSubProcess", Kind::Unsupported),
    ("transaction", Kind::Unsupported),
    ("callActivity", Kind::Unsupported),
];

/// Kind of an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefinitionKind {
    Message,
    Signal,
    Timer,
    Conditional,
    Other,
}

#[derive(Debug)]
struct EventDefinition {
    kind: DefinitionKind,
    /// Local element name, for messages.
    element: String,
    /// `messageRef` or `signalRef`.
    reference: Option<String>,
    /// Text of a timer's `timeDuration`.
    duration: Option<String>,
}

#[derive(Debug)]
struct Node {
    /// Position among all children of the process, for document-order reporting.
    order: usize,
    kind: Kind,
    element: &'static str,
    /// 1-based position among the process's children of the same name.
    position: usize,
    attrs: Attrs,
    definitions: Vec<EventDefinition>,
    /// Text of the first `portico:config`.
    config: Option<String>,
    config_count: usize,
    /// Whether `portico:config` had child elements.
    config_markup: bool,
    /// The first `portico:` element in `extensionElements` other than `config`, a likely typo.
    unknown_element: Option<String>,
}

#[derive(Debug)]
struct Flow {
    order: usize,
    position: usize,
    attrs: Attrs,
}

#[derive(Debug, Default)]
struct Process {
    attrs: Attrs,
    documentation: Option<String>,
    nodes: Vec<Node>,
    flows: Vec<Flow>,
    /// Children seen per entry of [`FLOW_NODES`].
    counts: [usize; FLOW_NODES.len()],
    /// Children seen.
    children: usize,
}

#[derive(Debug, Default)]
struct Document {
    /// Local name of a root element other than BPMN `definitions`.
    wrong_root: Option<String>,
    processes: Vec<Process>,
    /// `(id, name)` of `message` elements.
    messages: Vec<(String, Option<String>)>,
    /// `(id, name)` of `signal` elements.
    signals: Vec<(String, Option<String>)>,
}

/// The attributes the mapping reads; the rest are checked for well-formedness and dropped.
#[derive(Debug, Default)]
struct Attrs {
    id: Option<String>,
    name: Option<String>,
    source_ref: Option<String>,
    target_ref: Option<String>,
    default: Option<String>,
    attached_to_ref: Option<String>,
    message_ref: Option<String>,
    signal_ref: Option<String>,
    is_executable: Option<String>,
    /// `portico:type`.
    portico_type: Option<String>,
    /// `portico:branch`.
    portico_branch: Option<String>,
    /// The first other `portico:` attribute, a likely typo.
    unknown_portico: Option<String>,
}

/// Where the reader is in the tree; the current process, node and event definition are the
/// last ones of their lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Definitions,
    Process,
    Node,
    EventDefinition,
    TimeDuration,
    Extension,
    Config,
    Documentation,
    Skip,
}

impl Frame {
    fn captures_text(self) -> bool {
        matches!(self, Self::TimeDuration | Self::Config | Self::Documentation)
    }
}

/// A problem that stops reading, located by byte offset.
struct Stop {
    kind: ProblemKind,
    at: usize,
    message: String,
}

impl Stop {
    /// Not well-formed (or not acceptable) XML.
    fn new(at: usize, message: impl fmt::Display) -> Self {
        Self {
            kind: ProblemKind::Syntax,
            at,
            message: message.to_string(),
        }
    }

    /// Over one of the reader caps of [`Limits`], named as it serialises.
    fn cap(at: usize, limit: &str, cap: usize, what: impl fmt::Display) -> Self {
        Self {
            kind: ProblemKind::TooLarge,
            at,
            message: format!("over the limit {limit} = {cap}: {what}"),
        }
    }
}

fn read(xml: &[u8], limits: &Limits) -> Result<Document, InputProblem> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (skipped, body) = match xml.strip_prefix(BOM) {
        Some(body) => (BOM.len(), body),
        None => (0, xml),
    };
    let located = |stop: Stop| located_problem(stop.kind, xml, stop.at.saturating_add(skipped), &stop.message);
    let text = std::str::from_utf8(body).map_err(|err| located(Stop::new(err.valid_up_to(), "not UTF-8 text")))?;
    read_events(text, limits).map_err(located)
}

/// What the reader has seen so far, against the caps of [`Limits`].
#[derive(Default)]
struct Counts {
    elements: usize,
    namespaces: usize,
}

fn read_events(text: &str, limits: &Limits) -> Result<Document, Stop> {
    // A plain reader and a resolver of our own, rather than quick-xml's `NsReader`: that one
    // binds every declaration of a tag before handing the tag over, so the caps could only be
    // checked after the work they are meant to prevent.
    let mut reader = Reader::from_str(text);
    reader.config_mut().enable_all_checks(true);
    let mut resolver = NamespaceResolver::default();
    // In scope never exceeds the document's total, so our own cap always speaks first.
    resolver.set_max_namespace_bindings(limits.max_xml_namespaces);
    let mut counts = Counts::default();
    let mut document = Document::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut seen_root = false;
    let mut captured = String::new();
    let mut capture_level: Option<usize> = None;
    loop {
        let at = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|err| Stop::new(offset(reader.error_position()), format!("not well-formed XML: {err}")))?;
        // Text of a capturing element includes the text of its descendants.
        let capturing = capture_level.is_some();
        match event {
            Event::Start(ref element) | Event::Empty(ref element) => {
                if stack.is_empty() {
                    if seen_root {
                        return Err(Stop::new(at, "not well-formed XML: content after the root element"));
                    }
                    seen_root = true;
                }
                check_caps(text, at, element, stack.len() + 1, limits, &mut counts)?;
                resolver
                    .push(element)
                    .map_err(|err| Stop::new(at, format!("not well-formed XML: {err}")))?;
                let frame = open(&resolver, element, stack.last().copied(), &mut document, &mut captured)
                    .map_err(|message| Stop::new(at, message))?;
                if matches!(event, Event::Empty(_)) {
                    resolver.pop();
                    close(frame, &mut document, &mut captured);
                } else {
                    if frame.captures_text() {
                        capture_level = Some(stack.len());
                    }
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                if let Some(frame) = stack.pop() {
                    resolver.pop();
                    if capture_level == Some(stack.len()) {
                        capture_level = None;
                    }
                    close(frame, &mut document, &mut captured);
                }
            }
            Event::Text(content) => {
                let content = content.xml10_content();
                if stack.is_empty() && !content.trim_matches(is_xml_space).is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: text outside the root element"));
                }
                if capturing {
                    captured.push_str(&content);
                }
            }
            Event::CData(content) => {
                if stack.is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: CDATA outside the root element"));
                }
                if capturing {
                    captured.push_str(&content.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let c = resolve_reference(&reference).map_err(|message| Stop::new(at, message))?;
                if stack.is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: text outside the root element"));
                }
                if capturing {
                    captured.push(c);
                }
            }
            Event::DocType(_) => {
                return Err(Stop::new(
                    at,
                    "DOCTYPE declarations are not accepted: BPMN needs no DTD, and entities are never expanded",
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Stop::new(
            text.len(),
            format!(
                "not well-formed XML: input ends with {} element(s) not closed",
                stack.len()
            ),
        ));
    }
    if !seen_root {
        return Err(Stop::new(text.len(), "not well-formed XML: no root element"));
    }
    Ok(document)
}

/// Applies the reader caps to one start tag at byte `at`, at nesting `depth`, before any of its
/// declarations is bound or any attribute kept. Attributes are walked one at a time and the walk
/// stops at the first one over a cap, so beyond quick-xml's byte scan for the end of the tag, a
/// tag with a million attributes costs what one with a cap's worth does. Malformed attributes
/// end the walk too; [`read_attrs`] reports them.
fn check_caps(
    text: &str,
    at: usize,
    element: &BytesStart<'_>,
    depth: usize,
    limits: &Limits,
    counts: &mut Counts,
) -> Result<(), Stop> {
    counts.elements += 1;
    if counts.elements > limits.max_xml_elements {
        return Err(Stop::cap(
            at,
            "maxXmlElements",
            limits.max_xml_elements,
            format!("more than {} elements in the document", limits.max_xml_elements),
        ));
    }
    if depth > limits.max_xml_depth {
        return Err(Stop::cap(
            at,
            "maxXmlDepth",
            limits.max_xml_depth,
            format!("elements nested more than {} deep", limits.max_xml_depth),
        ));
    }
    for (n, attribute) in element.attributes().enumerate() {
        let Ok(attribute) = attribute else { break };
        let key = attribute.key.as_ref();
        let here = offset_in(text, key).unwrap_or(at);
        if key == "xmlns" || key.starts_with("xmlns:") {
            counts.namespaces += 1;
            if counts.namespaces > limits.max_xml_namespaces {
                return Err(Stop::cap(
                    here,
                    "maxXmlNamespaces",
                    limits.max_xml_namespaces,
                    format!(
                        "more than {} namespace declarations (xmlns, xmlns:prefix) in the document",
                        limits.max_xml_namespaces
                    ),
                ));
            }
        }
        if n >= limits.max_xml_attributes {
            return Err(Stop::cap(
                here,
                "maxXmlAttributes",
                limits.max_xml_attributes,
                format!("more than {} attributes on one element", limits.max_xml_attributes),
            ));
        }
    }
    Ok(())
}

/// Byte offset of `part` in `text` when it is a slice of it (events of a reader over a `&str`
/// borrow from it); an address comparison, nothing is dereferenced.
fn offset_in(text: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    (start.checked_add(part.len())? <= text.len()).then_some(start)
}

fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The character an entity or character reference stands for; only the five predefined entities
/// exist, since DTDs are refused.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, String> {
    let bad = || {
        format!(
            "not well-formed XML: undefined entity or bad character reference \"&{};\"",
            &**reference
        )
    };
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            _ => Err(bad()),
        };
    }
    match &**reference {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(bad()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Bpmn,
    Portico,
    Other,
}

fn namespace(resolved: &ResolveResult<'_>, qname: &str) -> Result<Ns, String> {
    match resolved {
        ResolveResult::Bound(Namespace(BPMN_NAMESPACE)) => Ok(Ns::Bpmn),
        ResolveResult::Bound(Namespace(PORTICO_NAMESPACE)) => Ok(Ns::Portico),
        ResolveResult::Bound(_) | ResolveResult::Unbound => Ok(Ns::Other),
        ResolveResult::Unknown(prefix) => Err(format!(
            "not well-formed XML: the prefix \"{prefix}\" of \"{qname}\" is not declared"
        )),
    }
}

/// Checks every attribute of an element and keeps the ones the mapping reads.
fn read_attrs(resolver: &NamespaceResolver, element: &BytesStart<'_>) -> Result<Attrs, String> {
    let mut attrs = Attrs::default();
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|err| {
            format!(
                "not well-formed XML: bad attribute in <{}>: {err}",
                element.name().as_ref()
            )
        })?;
        let key = attribute.key.as_ref();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| format!("not well-formed XML: bad value of attribute \"{key}\": {err}"))?;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let (resolved, local) = resolver.resolve_attribute(attribute.key);
        let slot = match (namespace(&resolved, key)?, &resolved, local.as_ref()) {
            (Ns::Portico, _, "type") => &mut attrs.portico_type,
            (Ns::Portico, _, "branch") => &mut attrs.portico_branch,
            (Ns::Portico, _, other) => {
                attrs.unknown_portico.get_or_insert_with(|| other.to_owned());
                continue;
            }
            (_, ResolveResult::Unbound, "id") => &mut attrs.id,
            (_, ResolveResult::Unbound, "name") => &mut attrs.name,
            (_, ResolveResult::Unbound, "sourceRef") => &mut attrs.source_ref,
            (_, ResolveResult::Unbound, "targetRef") => &mut attrs.target_ref,
            (_, ResolveResult::Unbound, "default") => &mut attrs.default,
            (_, ResolveResult::Unbound, "attachedToRef") => &mut attrs.attached_to_ref,
            (_, ResolveResult::Unbound, "messageRef") => &mut attrs.message_ref,
            (_, ResolveResult::Unbound, "signalRef") => &mut attrs.signal_ref,
            (_, ResolveResult::Unbound, "isExecutable") => &mut attrs.is_executable,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    Ok(attrs)
}

/// Handles an opening tag: records what the mapping needs and returns the new frame.
fn open(
    resolver: &NamespaceResolver,
    element: &BytesStart<'_>,
    parent: Option<Frame>,
    document: &mut Document,
    captured: &mut String,
) -> Result<Frame, String> {
    let qname = element.name();
    let (resolved, local) = resolver.resolve_element(qname);
    let ns = namespace(&resolved, qname.as_ref())?;
    let attrs = read_attrs(resolver, element)?;
    let local = local.as_ref();
    let bpmn = ns == Ns::Bpmn;
    let process = document.processes.last_mut();
    let frame = match (parent, process) {
        (None, _) => {
            if bpmn && local == "definitions" {
                Frame::Definitions
            } else {
                document.wrong_root = Some(qname.as_ref().to_owned());
                Frame::Skip
            }
        }
        (Some(Frame::Definitions), _) if bpmn => match local {
            "process" => {
                document.processes.push(Process {
                    attrs,
                    ..Process::default()
                });
                Frame::Process
            }
            "message" | "signal" => {
                let list = if local == "message" {
                    &mut document.messages
                } else {
                    &mut document.signals
                };
                if let Some(id) = attrs.id {
                    list.push((id, attrs.name));
                }
                Frame::Skip
            }
            _ => Frame::Skip,
        },
        (Some(Frame::Process), Some(process)) if bpmn => open_in_process(process, local, attrs, captured),
        (Some(Frame::Node), _) if bpmn && local == "extensionElements" => Frame::Extension,
        (Some(Frame::Node), Some(process)) if bpmn && local.ends_with("EventDefinition") => {
            let kind = match local {
                "messageEventDefinition" => DefinitionKind::Message,
                "signalEventDefinition" => DefinitionKind::Signal,
                "timerEventDefinition" => DefinitionKind::Timer,
                "conditionalEventDefinition" => DefinitionKind::Conditional,
                _ => DefinitionKind::Other,
            };
            let reference = match kind {
                DefinitionKind::Message => attrs.message_ref,
                DefinitionKind::Signal => attrs.signal_ref,
                _ => None,
            };
            match process.nodes.last_mut() {
                Some(node) => {
                    node.definitions.push(EventDefinition {
                        kind,
                        element: local.to_owned(),
                        reference,
                        duration: None,
                    });
                    Frame::EventDefinition
                }
                None => Frame::Skip,
            }
        }
        (Some(Frame::EventDefinition), _) if bpmn && local == "timeDuration" => {
            captured.clear();
            Frame::TimeDuration
        }
        (Some(Frame::Extension), Some(process)) if ns == Ns::Portico && local == "config" => {
            if let Some(node) = process.nodes.last_mut() {
                node.config_count += 1;
            }
            captured.clear();
            Frame::Config
        }
        (Some(Frame::Extension), Some(process)) if ns == Ns::Portico => {
            if let Some(node) = process.nodes.last_mut() {
                node.unknown_element.get_or_insert_with(|| local.to_owned());
            }
            Frame::Skip
        }
        (Some(Frame::Config), Some(process)) => {
            if let Some(node) = process.nodes.last_mut() {
                node.config_markup = true;
            }
            Frame::Skip
        }
        _ => Frame::Skip,
    };
    Ok(frame)
}

fn open_in_process(process: &mut Process, local: &str, attrs: Attrs, captured: &mut String) -> Frame {
    process.children += 1;
    let order = process.children;
    match local {
        "sequenceFlow" => {
            process.flows.push(Flow {
                order,
                position: process.flows.len() + 1,
                attrs,
            });
            Frame::Skip
        }
        "documentation" if process.documentation.is_none() => {
            captured.clear();
            Frame::Documentation
        }
        _ => {
            let Some(slot) = FLOW_NODES.iter().position(|(name, _)| *name == local) else {
                return Frame::Skip;
            };
            let (Some(&(element, kind)), Some(count)) = (FLOW_NODES.get(slot), process.counts.get_mut(slot)) else {
                return Frame::Skip;
            };
            *count += 1;
            process.nodes.push(Node {
                order,
                kind,
                element,
                position: *count,
                attrs,
                definitions: Vec::new(),
                config: None,
                config_count: 0,
                config_markup: false,
                unknown_element: None,
            });
            Frame::Node
        }
    }
}

/// Handles a closing tag: stores captured text.
fn close(frame: Frame, document: &mut Document, captured: &mut String) {
    let Some(process) = document.processes.last_mut() else {
        return;
    };
    match frame {
        Frame::Documentation => {
            let text = captured.trim_matches(is_xml_space);
            process.documentation = Some(text.to_owned()).filter(|t| !t.is_empty());
        }
        Frame::Config => {
            if let Some(node) = process.nodes.last_mut()
                && node.config.is_none()
            {
                node.config = Some(std::mem::take(captured));
            }
        }
        Frame::TimeDuration => {
            if let Some(definition) = process.nodes.last_mut().and_then(|node| node.definitions.last_mut()) {
                definition.duration = Some(captured.trim_matches(is_xml_space).to_owned());
            }
        }
        _ => {}
    }
}

/// A problem at a byte offset of the original input, with line and column (in characters).
fn located_problem(kind: ProblemKind, input: &[u8], at: usize, message: &str) -> InputProblem {
    let at = at.min(input.len());
    let before = input.get(..at).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |s| s.iter().filter(|&&b| b & 0xC0 != 0x80).count())
        + 1;
    InputProblem {
        kind,
        pointer: String::new(),
        message: format!("{message} (line {line}, column {column}, byte {at})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Building: the chosen process's elements and flows become triggers and steps.
// ---------------------------------------------------------------------------------------------

fn build(document: Document, limits: Limits) -> Result<Workflow, Vec<InputProblem>> {
    let schema = |message: String| {
        vec![InputProblem {
            kind: ProblemKind::Schema,
            pointer: String::new(),
            message,
        }]
    };
    if let Some(root) = &document.wrong_root {
        return Err(schema(format!(
            "the root element is <{root}>, expected BPMN <definitions> in namespace {BPMN_NAMESPACE}"
        )));
    }
    let chosen = document
        .processes
        .iter()
        .position(|p| {
            p.attrs
                .is_executable
                .as_deref()
                .is_some_and(|v| matches!(v.trim_matches(is_xml_space), "true" | "1"))
        })
        .unwrap_or(0);
    let Some(process) = document.processes.get(chosen) else {
        return Err(schema(format!("no <process> element in namespace {BPMN_NAMESPACE}")));
    };
    Builder::new(process, &document, limits).run()
}

/// What an id names.
#[derive(Debug, Clone, Copy)]
enum Named {
    Node(usize),
    Flow,
}

/// What a flow node turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Trigger,
    Step(StepType),
    /// A gateway with one outgoing flow and no decision: flows into it lead to its successor.
    Merge,
    /// A boundary timer: the timeout of the step it is attached to.
    Timeout,
    /// Not mappable; a problem has been reported.
    Invalid,
}

/// Progress of resolving a merge gateway to the element it leads to.
#[derive(Debug, Clone, Copy)]
enum Through<'p> {
    Pending,
    Visiting,
    /// The element reached, `None` when the flows loop through gateways only.
    Done(Option<&'p str>),
}

/// Yes or no side of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Yes,
    No,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::Yes => Self::No,
            Self::No => Self::Yes,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
        }
    }
}

struct Builder<'p> {
    process: &'p Process,
    limits: Limits,
    index: IdMap<'p, Named>,
    roles: Vec<Role>,
    /// Outgoing flows (indices) per node.
    outgoing: Vec<Vec<usize>>,
    /// Boundary timer node attached to each node, if any.
    timeouts: Vec<Option<usize>>,
    through: Vec<Through<'p>>,
    /// Name (if any) of each message and signal by id.
    messages: IdMap<'p, Option<&'p str>>,
    signals: IdMap<'p, Option<&'p str>>,
    problems: Vec<InputProblem>,
}

impl<'p> Builder<'p> {
    fn new(process: &'p Process, document: &'p Document, limits: Limits) -> Self {
        let nodes = process.nodes.len();
        Self {
            process,
            limits,
            index: id_map(nodes + process.flows.len()),
            roles: vec![Role::Invalid; nodes],
            outgoing: vec![Vec::new(); nodes],
            timeouts: vec![None; nodes],
            through: vec![Through::Pending; nodes],
            messages: names(&document.messages),
            signals: names(&document.signals),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, pointer: String, message: impl Into<String>) {
        self.problems.push(InputProblem {
            kind: ProblemKind::Schema,
            pointer,
            message: message.into(),
        });
    }

    fn run(mut self) -> Result<Workflow, Vec<InputProblem>> {
        self.index_ids();
        self.classify();
        self.link_flows();
        self.classify_gateways();
        let steps = self.roles.iter().filter(|r| matches!(r, Role::Step(_))).count();
        if steps > self.limits.max_steps {
            self.problems.push(InputProblem {
                kind: ProblemKind::TooLarge,
                pointer: "/process".to_owned(),
                message: format!("{steps} steps is over the limit of {}", self.limits.max_steps),
            });
            return Err(self.problems);
        }
        self.attach_timeouts();
        let mut workflow = Workflow {
            name: self.process.attrs.name.clone(),
            description: self.process.documentation.clone(),
            triggers: Vec::new(),
            steps: Vec::with_capacity(steps),
        };
        for (i, node) in self.process.nodes.iter().enumerate() {
            match self.roles.get(i).copied() {
                Some(Role::Trigger) => {
                    if let Some(trigger) = self.trigger(i, node) {
                        workflow.triggers.push(trigger);
                    }
                }
                Some(Role::Step(step_type)) => {
                    if let Some(step) = self.step(i, node, step_type) {
                        workflow.steps.push(step);
                    }
                }
                _ => {}
            }
        }
        if self.problems.is_empty() {
            Ok(workflow)
        } else {
            Err(self.problems)
        }
    }

    /// Requires an id on every flow node and unique ids across nodes and flows.
    fn index_ids(&mut self) {
        let process = self.process;
        let nodes = process.nodes.iter().enumerate().map(|(i, node)| {
            let unknown = node.unknown_element.as_deref().map(|name| ("element", name));
            (
                node.order,
                &node.attrs,
                unknown,
                Named::Node(i),
                node.element,
                node.position,
            )
        });
        let flows = process.flows.iter().map(|flow| {
            (
                flow.order,
                &flow.attrs,
                None,
                Named::Flow,
                "sequenceFlow",
                flow.position,
            )
        });
        let mut children: Vec<_> = nodes.chain(flows).collect();
        children.sort_unstable_by_key(|child| child.0);
        let mut first_use: IdMap<'p, (&'static str, usize)> = id_map(children.len());
        for (_, attrs, unknown_element, named, element, position) in children {
            let unknown_attribute = attrs.unknown_portico.as_deref().map(|name| ("attribute", name));
            for (what, name) in [unknown_attribute, unknown_element].into_iter().flatten() {
                self.problem(
                    located(element, attrs.id.as_deref(), position),
                    format!(
                        "unknown Portico {what} \"{name}\" (Portico reads the attributes type and branch \
                         and the element config, in namespace {PORTICO_NAMESPACE})"
                    ),
                );
            }
            let id = attrs.id.as_deref().filter(|id| !id.is_empty());
            let Some(id) = id else {
                if matches!(named, Named::Node(_)) {
                    self.problem(
                        positional(element, position),
                        format!("missing required attribute \"id\" on <{element}>"),
                    );
                }
                continue;
            };
            if let Some(&(first_element, first_position)) = first_use.get(id) {
                self.problem(
                    positional(element, position),
                    format!(
                        "duplicate id \"{id}\" (first used at {})",
                        positional(first_element, first_position)
                    ),
                );
                continue;
            }
            first_use.insert(id, (element, position));
            self.index.insert(id, named);
        }
    }

    /// Decides the role of every node but gateways.
    fn classify(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            let role = match node.kind {
                Kind::Start => Role::Trigger,
                Kind::Boundary => self.boundary_role(node),
                // Decided once the outgoing flows are known.
                Kind::Gateway => Role::Merge,
                Kind::Unsupported => {
                    self.problem(
                        locator(node),
                        format!(
                            "BPMN <{}> is not supported: a Portico workflow runs one path per contact, \
                             with exclusive or inclusive gateways for decisions",
                            node.element
                        ),
                    );
                    Role::Invalid
                }
                _ => self.step_type(node).map_or(Role::Invalid, Role::Step),
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    fn boundary_role(&mut self, node: &Node) -> Role {
        match node.definitions.as_slice() {
            [definition] if definition.kind == DefinitionKind::Timer => Role::Timeout,
            _ => {
                self.problem(
                    locator(node),
                    "only a timer boundary event is supported, as the timeout of a wait_for_event step",
                );
                Role::Invalid
            }
        }
    }

    /// The step type of a task or event node, reporting why when there is none.
    fn step_type(&mut self, node: &Node) -> Option<StepType> {
        if let Some(name) = &node.attrs.portico_type {
            let step_type = StepType::from_name(name);
            if step_type.is_none() {
                self.problem(
                    locator(node),
                    format!(
                        "unknown portico:type \"{name}\" (expected one of {})",
                        step_type_names()
                    ),
                );
            }
            return step_type;
        }
        match node.kind {
            Kind::Task(Some(step_type)) => return Some(step_type),
            Kind::End => return Some(StepType::End),
            Kind::Catch => match node.definitions.as_slice() {
                [definition] => match definition.kind {
                    DefinitionKind::Timer => return Some(StepType::Wait),
                    DefinitionKind::Message | DefinitionKind::Signal => return Some(StepType::WaitForEvent),
                    _ => {}
                },
                [] => {}
                _ => {
                    self.problem(
                        locator(node),
                        "an intermediate catch event with several event definitions is not supported",
                    );
                    return None;
                }
            },
            _ => {}
        }
        let why = match node.kind {
            Kind::Catch => "catches no timer, message or signal and has no portico:type",
            _ => "has no portico:type",
        };
        self.problem(
            locator(node),
            format!(
                "<{}> {why}, so the analyser cannot tell what it does: set portico:type to one of {} \
                 (namespace {PORTICO_NAMESPACE})",
                node.element,
                step_type_names()
            ),
        );
        None
    }

    /// Files every flow under its source node.
    fn link_flows(&mut self) {
        let process = self.process;
        for (f, flow) in process.flows.iter().enumerate() {
            let at = || flow_locator(flow);
            let source = flow.attrs.source_ref.as_deref().filter(|s| !s.is_empty());
            let target = flow.attrs.target_ref.as_deref().filter(|s| !s.is_empty());
            let (Some(source), Some(target)) = (source, target) else {
                self.problem(at(), "a sequence flow needs a non-empty sourceRef and targetRef");
                continue;
            };
            let Some(&Named::Node(s)) = self.index.get(source) else {
                self.problem(
                    at(),
                    format!("sourceRef \"{source}\" names no flow node of the process"),
                );
                continue;
            };
            if let Some(&Named::Node(t)) = self.index.get(target)
                && let Some(role @ (Role::Trigger | Role::Timeout)) = self.roles.get(t).copied()
            {
                let what = if role == Role::Trigger {
                    "a start event"
                } else {
                    "a boundary event"
                };
                self.problem(
                    at(),
                    format!("targetRef \"{target}\" is {what}, which takes no incoming flow"),
                );
                continue;
            }
            if let Some(list) = self.outgoing.get_mut(s) {
                list.push(f);
            }
        }
    }

    /// A gateway is a decision (if_else) when it has two or more outgoing flows or says so;
    /// with one outgoing flow it is a merge.
    fn classify_gateways(&mut self) {
        let process = self.process;
        for (i, node) in process.nodes.iter().enumerate() {
            if node.kind != Kind::Gateway {
                continue;
            }
            let outgoing = self.outgoing.get(i).map_or(0, Vec::len);
            let role = match node.attrs.portico_type.as_deref() {
                Some("if_else") => Role::Step(StepType::IfElse),
                Some(other) => {
                    self.problem(
                        locator(node),
                        format!("a gateway is an if_else decision or a merge; portico:type \"{other}\" does not fit"),
                    );
                    Role::Invalid
                }
                None if outgoing >= 2 || node.config_count > 0 => Role::Step(StepType::IfElse),
                None if outgoing == 1 => Role::Merge,
                None => {
                    self.problem(locator(node), "a gateway needs an outgoing sequence flow");
                    Role::Invalid
                }
            };
            if let Some(slot) = self.roles.get_mut(i) {
                *slot = role;
            }
        }
    }

    /// Attaches boundary timers to their wait_for_event steps.
    fn attach_timeouts(&mut self) {
        let process = self.process;
        for (b, node) in process.nodes.iter().enumerate() {
            if self.roles.get(b) != Some(&Role::Timeout) {
                continue;
            }
            let host = node
                .attrs
                .attached_to_ref
                .as_deref()
                .and_then(|id| self.index.get(id))
                .copied();
            let host = match host {
                Some(Named::Node(h)) if self.roles.get(h) == Some(&Role::Step(StepType::WaitForEvent)) => h,
                _ => {
                    self.problem(
                        locator(node),
                        "a timer boundary event must be attached (attachedToRef) to a wait_for_event step",
                    );
                    continue;
                }
            };
            match self.timeouts.get_mut(host) {
                Some(slot @ None) => *slot = Some(b),
                _ => self.problem(locator(node), "a step can have only one timer boundary event"),
            }
        }
    }

    /// The step or trigger a flow leads to, looking through merge gateways; `None` when the flows
    /// loop through gateways only (reported once).
    fn follow(&mut self, target: &'p str) -> Option<&'p str> {
        let mut path = Vec::new();
        let mut current = target;
        let reached = loop {
            let Some(&Named::Node(gateway)) = self.index.get(current) else {
                break Some(current);
            };
            if self.roles.get(gateway) != Some(&Role::Merge) {
                break Some(current);
            }
            match self.through.get(gateway).copied() {
                Some(Through::Done(reached)) => break reached,
                Some(Through::Visiting) => {
                    let at = self.process.nodes.get(gateway).map(locator).unwrap_or_default();
                    self.problem(at, "sequence flows loop through gateways without passing any step");
                    break None;
                }
                _ => {}
            }
            if let Some(slot) = self.through.get_mut(gateway) {
                *slot = Through::Visiting;
            }
            path.push(gateway);
            let next = self
                .outgoing
                .get(gateway)
                .and_then(|flows| flows.first())
                .and_then(|&f| self.process.flows.get(f))
                .and_then(|flow| flow.attrs.target_ref.as_deref());
            match next {
                Some(next) => current = next,
                None => break None,
            }
        };
        for gateway in path {
            if let Some(slot) = self.through.get_mut(gateway) {
                *slot = Through::Done(reached);
            }
        }
        reached
    }

    /// Targets of a node's outgoing flows, as (flow, resolved target).
    fn targets(&mut self, node: usize) -> Vec<(&'p Flow, Option<&'p str>)> {
        let process = self.process;
        let flows: Vec<&'p Flow> = self
            .outgoing
            .get(node)
            .map(|list| list.iter().filter_map(|&f| process.flows.get(f)).collect())
            .unwrap_or_default();
        flows
            .into_iter()
            .map(|flow| {
                let target = flow.attrs.target_ref.as_deref().and_then(|t| self.follow(t));
                (flow, target)
            })
            .collect()
    }

    /// `next` of a node that continues at one element at most; `step_type` is `None` for a start
    /// event.
    fn single_next(&mut self, i: usize, node: &Node, step_type: Option<StepType>) -> Option<String> {
        let targets = self.targets(i);
        match targets.as_slice() {
            [] => None,
            [(_, target)] => target.map(str::to_owned),
            _ => {
                let what = step_type.map_or_else(|| "a start event".to_owned(), |t| format!("a {t} step"));
                self.problem(
                    locator(node),
                    format!(
                        "{what} has {} outgoing sequence flows but continues at one element; \
                         branch with an exclusive gateway",
                        targets.len()
                    ),
                );
                None
            }
        }
    }

    fn trigger(&mut self, i: usize, node: &'p Node) -> Option<Trigger> {
        let id = node.attrs.id.clone()?;
        let trigger_type = match &node.attrs.portico_type {
            Some(name) if name.is_empty() => {
                self.problem(locator(node), "portico:type of a start event must not be empty");
                return None;
            }
            Some(name) => name.clone(),
            None => match node.definitions.first().map(|d| d.kind) {
                Some(DefinitionKind::Message) => "message",
                Some(DefinitionKind::Timer) => "timer",
                Some(DefinitionKind::Signal) => "signal",
                Some(DefinitionKind::Conditional) => "conditional",
                _ => "start",
            }
            .to_owned(),
        };
        let next = self.single_next(i, node, None);
        let config = self.explicit_config(node).unwrap_or_default();
        Some(Trigger {
            id,
            trigger_type,
            name: node.attrs.name.clone(),
            next,
            config,
        })
    }

    fn step(&mut self, i: usize, node: &'p Node, step_type: StepType) -> Option<Step> {
        let id = node.attrs.id.clone()?;
        let mut config = self.explicit_config(node).unwrap_or_default();
        // Values the BPMN gives: (config key, value, where it came from).
        let mut derived: Vec<(&'static str, String, Source<'p>)> = Vec::new();
        let (mut next, mut branches) = (None, None);
        match step_type {
            StepType::End => {
                if !self.outgoing.get(i).is_none_or(Vec::is_empty) {
                    self.problem(
                        locator(node),
                        "an end step finishes the path: remove its outgoing sequence flows",
                    );
                }
            }
            StepType::IfElse => branches = Some(self.branches(i, node)),
            StepType::Goto => {
                if let Some(target) = self.single_next(i, node, Some(step_type)) {
                    if config.contains_key("target") {
                        self.problem(
                            locator(node),
                            "a goto step continues at config.target or at its outgoing sequence flow, not both",
                        );
                    } else {
                        derived.push(("target", target, Source::new(node, "", "")));
                    }
                }
            }
            _ => next = self.single_next(i, node, Some(step_type)),
        }
        match step_type {
            StepType::Wait => {
                if let Some(definition) = node.definitions.iter().find(|d| d.kind == DefinitionKind::Timer)
                    && let Some(duration) = &definition.duration
                {
                    let source = Source::new(node, &definition.element, "timeDuration");
                    derived.push(("duration", duration.clone(), source));
                }
            }
            StepType::WaitForEvent => {
                if let Some((event, source)) = self.event_name(node) {
                    derived.push(("event", event.to_owned(), source));
                }
                if let Some((timeout, source)) = self.timeout(i, node, next.as_deref()) {
                    derived.push(("timeout", timeout.to_owned(), source));
                }
            }
            _ => {}
        }
        let mut sources: Vec<(&'static str, Source<'p>)> = Vec::new();
        for (key, value, source) in derived {
            if !config.contains_key(key) {
                config.insert(key.to_owned(), Value::String(value));
                sources.push((key, source));
            }
        }
        for (pointer, message) in config_problems(step_type, &config) {
            let key = pointer.trim_start_matches('/').split('/').next().unwrap_or_default();
            let (pointer, message) = if let Some((_, source)) = sources.iter().find(|(k, _)| *k == key) {
                (source.render(), message)
            } else if config.contains_key(key) {
                // Not derived, so it came from portico:config.
                (format!("{}/extensionElements/config{pointer}", locator(node)), message)
            } else {
                (locator(node), format!("{message}{}", missing_hint(key)))
            };
            self.problem(pointer, message);
        }
        Some(Step {
            id,
            step_type,
            name: node.attrs.name.clone(),
            next,
            branches,
            config,
        })
    }

    /// The `portico:config` object of a node, reporting problems with it.
    fn explicit_config(&mut self, node: &Node) -> Option<Map<String, Value>> {
        let at = || format!("{}/extensionElements/config", locator(node));
        if node.config_count > 1 {
            self.problem(at(), "an element can have only one portico:config");
        }
        if node.config_markup {
            self.problem(at(), "portico:config holds JSON text, not elements");
        }
        let text = node.config.as_deref()?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(config)) => Some(config),
            Ok(_) => {
                self.problem(at(), "portico:config must be a JSON object");
                None
            }
            Err(err) => {
                self.problem(at(), format!("portico:config is not valid JSON: {err}"));
                None
            }
        }
    }

    /// The event a wait_for_event step waits for: the name of the message or signal it references
    /// (else the reference itself), with where it came from.
    fn event_name(&self, node: &'p Node) -> Option<(&'p str, Source<'p>)> {
        let from_definition = node.definitions.iter().find_map(|d| {
            let names = match d.kind {
                DefinitionKind::Message => &self.messages,
                DefinitionKind::Signal => &self.signals,
                _ => return None,
            };
            let reference = d.reference.as_deref()?;
            Some((names, reference, Source::new(node, &d.element, "")))
        });
        let (names, reference, source) = match from_definition {
            Some(found) => found,
            None => (
                &self.messages,
                node.attrs.message_ref.as_deref()?,
                Source::new(node, "@messageRef", ""),
            ),
        };
        let name = names.get(reference).copied().flatten().unwrap_or(reference);
        Some((name, source))
    }

    /// The timeout of a wait_for_event step from its boundary timer, which must continue where the
    /// step does, since the model has one `next` for both.
    fn timeout(&mut self, i: usize, node: &Node, next: Option<&str>) -> Option<(&'p str, Source<'p>)> {
        let b = self.timeouts.get(i).copied().flatten()?;
        let boundary = self.process.nodes.get(b)?;
        let continues = self.targets(b);
        match continues.as_slice() {
            [] => {}
            [(_, target)] if *target == next => {}
            _ => self.problem(
                locator(boundary),
                format!(
                    "after a timeout the workflow continues where {} does after the event; \
                     this timer's outgoing flow must lead to the same element, or be left out",
                    locator(node)
                ),
            ),
        }
        let definition = boundary.definitions.first()?;
        match &definition.duration {
            Some(duration) => Some((duration, Source::new(boundary, &definition.element, "timeDuration"))),
            None => {
                self.problem(locator(boundary), "a timeout timer needs a timeDuration such as P7D");
                None
            }
        }
    }

    /// Branches of a decision from its outgoing flows.
    fn branches(&mut self, i: usize, node: &Node) -> Branches {
        let at = || locator(node);
        let targets = self.targets(i);
        let mut branches = Branches::default();
        if targets.len() > 2 {
            self.problem(
                at(),
                format!(
                    "a decision has at most two outgoing sequence flows (yes and no), found {}",
                    targets.len()
                ),
            );
            return branches;
        }
        let mut sides = Vec::with_capacity(targets.len());
        for (flow, target) in &targets {
            let side = match self.side(node, flow) {
                Ok(side) => side,
                Err(()) => return branches,
            };
            sides.push((side, *target));
        }
        let assigned: Vec<(Side, Option<&str>)> = match sides.as_slice() {
            [] => Vec::new(),
            [(Some(side), target)] => vec![(*side, *target)],
            [(Some(a), first), (Some(b), second)] if a != b => vec![(*a, *first), (*b, *second)],
            [(Some(a), first), (None, second)] => vec![(*a, *first), (a.other(), *second)],
            [(None, first), (Some(b), second)] => vec![(b.other(), *first), (*b, *second)],
            [(Some(side), _), (Some(_), _)] => {
                self.problem(
                    at(),
                    format!(
                        "both outgoing sequence flows of this decision are \"{}\"",
                        side.as_str()
                    ),
                );
                return branches;
            }
            _ => {
                self.problem(
                    at(),
                    "cannot tell the yes and no outgoing flows of this decision apart: set portico:branch=\"yes\" \
                     or \"no\" on a flow, name the flows yes/no, or make one the gateway's default (no)",
                );
                return branches;
            }
        };
        for (side, target) in assigned {
            let target = target.map(str::to_owned);
            match side {
                Side::Yes => branches.yes = target,
                Side::No => branches.no = target,
            }
        }
        branches
    }

    /// The side a flow of a decision stands for, if labelled.
    fn side(&mut self, node: &Node, flow: &Flow) -> Result<Option<Side>, ()> {
        if let Some(branch) = &flow.attrs.portico_branch {
            return match branch.as_str() {
                "yes" => Ok(Some(Side::Yes)),
                "no" => Ok(Some(Side::No)),
                other => {
                    self.problem(
                        flow_locator(flow),
                        format!("portico:branch must be \"yes\" or \"no\", found \"{other}\""),
                    );
                    Err(())
                }
            };
        }
        if flow.attrs.id.is_some() && flow.attrs.id == node.attrs.default {
            return Ok(Some(Side::No));
        }
        let name = flow
            .attrs
            .name
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Ok(match name.as_str() {
            "yes" | "true" => Some(Side::Yes),
            "no" | "false" => Some(Side::No),
            _ => None,
        })
    }
}

/// Where a value given by the BPMN came from: an element and up to two steps below it, rendered
/// only when a problem needs it.
#[derive(Debug, Clone, Copy)]
struct Source<'n> {
    node: &'n Node,
    path: [&'n str; 2],
}

impl<'n> Source<'n> {
    fn new(node: &'n Node, first: &'n str, second: &'n str) -> Self {
        Self {
            node,
            path: [first, second],
        }
    }

    fn render(&self) -> String {
        let mut out = locator(self.node);
        for part in self.path.iter().filter(|part| !part.is_empty()) {
            out.push('/');
            out.push_str(part);
        }
        out
    }
}

/// How BPMN can give a required config key that is missing.
fn missing_hint(key: &str) -> &'static str {
    match key {
        "duration" => " (give the timer event a timeDuration such as P1D, or set it in portico:config)",
        "event" => " (reference a message or signal, or set it in portico:config)",
        "target" => " (draw an outgoing sequence flow, or set it in portico:config)",
        "conditions" => " (set it in portico:config)",
        _ => "",
    }
}

/// Index of `(id, name)` pairs; the first of equal ids wins and an empty name counts as none.
fn names(list: &[(String, Option<String>)]) -> IdMap<'_, Option<&str>> {
    let mut map = id_map(list.len());
    for (id, name) in list {
        map.entry(id.as_str())
            .or_insert_with(|| name.as_deref().filter(|name| !name.is_empty()));
    }
    map
}

fn step_type_names() -> String {
    StepType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

fn quoted(id: &str) -> String {
    if id.contains('\'') {
        format!("\"{id}\"")
    } else {
        format!("'{id}'")
    }
}

fn positional(element: &str, position: usize) -> String {
    format!("/process/{element}[{position}]")
}

fn located(element: &str, id: Option<&str>, position: usize) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => format!("/process/{element}[@id={}]", quoted(id)),
        None => positional(element, position),
    }
}

fn locator(node: &Node) -> String {
    located(node.element, node.attrs.id.as_deref(), node.position)
}

fn flow_locator(flow: &Flow) -> String {
    located("sequenceFlow", flow.attrs.id.as_deref(), flow.position)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

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
