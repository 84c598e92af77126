//! What the reader keeps of a BPMN document for the mapping: the processes with their flow nodes
//! and sequence flows, and the messages and signals that events refer to.

use crate::model::StepType;

/// What a flow-node element is, before flows are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) const FLOW_NODES: [(&str, Kind); 22] = [
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
pub(super) enum DefinitionKind {
    Message,
    Signal,
    Timer,
    Conditional,
    Other,
}

#[derive(Debug)]
pub(super) struct EventDefinition {
    pub(super) kind: DefinitionKind,
    /// Local element name, for messages.
    pub(super) element: String,
    /// `messageRef` or `signalRef`.
    pub(super) reference: Option<String>,
    /// Text of a timer's `timeDuration`.
    pub(super) duration: Option<String>,
}

#[derive(Debug)]
pub(super) struct Node {
    /// Position among all children of the process, for document-order reporting.
    pub(super) order: usize,
    pub(super) kind: Kind,
    pub(super) element: &'static str,
    /// 1-based position among the process's children of the same name.
    pub(super) position: usize,
    pub(super) attrs: Attrs,
    pub(super) definitions: Vec<EventDefinition>,
    /// Text of the first `portico:config`.
    pub(super) config: Option<String>,
    pub(super) config_count: usize,
    /// Whether `portico:config` had child elements.
    pub(super) config_markup: bool,
    /// The first `portico:` element in `extensionElements` other than `config`, a likely typo.
    pub(super) unknown_element: Option<String>,
}

#[derive(Debug)]
pub(super) struct Flow {
    pub(super) order: usize,
    pub(super) position: usize,
    pub(super) attrs: Attrs,
}

#[derive(Debug, Default)]
pub(super) struct Process {
    pub(super) attrs: Attrs,
    pub(super) documentation: Option<String>,
    pub(super) nodes: Vec<Node>,
    pub(super) flows: Vec<Flow>,
    /// Children seen per entry of [`FLOW_NODES`].
    pub(super) counts: [usize; FLOW_NODES.len()],
    /// Children seen.
    pub(super) children: usize,
}

#[derive(Debug, Default)]
pub(super) struct Document {
    /// Local name of a root element other than BPMN `definitions`.
    pub(super) wrong_root: Option<String>,
    pub(super) processes: Vec<Process>,
    /// `(id, name)` of `message` elements.
    pub(super) messages: Vec<(String, Option<String>)>,
    /// `(id, name)` of `signal` elements.
    pub(super) signals: Vec<(String, Option<String>)>,
}

/// The attributes the mapping reads; the rest are checked for well-formedness and dropped.
#[derive(Debug, Default)]
pub(super) struct Attrs {
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    pub(super) source_ref: Option<String>,
    pub(super) target_ref: Option<String>,
    pub(super) default: Option<String>,
    pub(super) attached_to_ref: Option<String>,
    pub(super) message_ref: Option<String>,
    pub(super) signal_ref: Option<String>,
    pub(super) is_executable: Option<String>,
    /// `portico:type`.
    pub(super) portico_type: Option<String>,
    /// `portico:branch`.
    pub(super) portico_branch: Option<String>,
    /// The first other `portico:` attribute, a likely typo.
    pub(super) unknown_portico: Option<String>,
}
