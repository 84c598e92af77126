//! What the reader keeps of a BPMN document: the processes with their flow nodes (sub-process
//! contents included, each node knowing its enclosing sub-process), sequence flows and
//! associations; the collaborations with their participants and message flows; and the global
//! elements (messages, signals, errors, escalations) that events refer to.

use std::collections::HashMap;

use crate::model::StepType;

/// Kind of a task-like activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Task,
    User,
    Manual,
    Script,
    BusinessRule,
    Receive,
    Send,
    Service,
    CallActivity,
}

/// Kind of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayKind {
    Exclusive,
    Inclusive,
    Parallel,
    EventBased,
    Complex,
}

/// Kind of a sub-process; an event sub-process is an embedded one with `triggeredByEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubProcessKind {
    Embedded,
    Transaction,
    AdHoc,
}

/// What a flow-node element is, before flows are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Start,
    End,
    Boundary,
    Catch,
    Throw,
    Task(TaskKind),
    Gateway(GatewayKind),
    SubProcess(SubProcessKind),
}

impl Kind {
    /// The step type the element implies when it carries Portico's extensions.
    pub(crate) fn implied_step(self) -> Option<StepType> {
        match self {
            Self::Task(TaskKind::Send) => Some(StepType::SendEmail),
            Self::Task(TaskKind::Service) => Some(StepType::Webhook),
            Self::Task(TaskKind::Receive) => Some(StepType::WaitForEvent),
            _ => None,
        }
    }

    /// An activity: a task of any kind, a call activity or a sub-process.
    pub(crate) fn is_activity(self) -> bool {
        matches!(self, Self::Task(_) | Self::SubProcess(_))
    }

    /// A task in BPMN's sense (`bpmn:Task` and its kinds), which a call activity is not.
    pub(crate) fn is_task(self) -> bool {
        matches!(self, Self::Task(kind) if kind != TaskKind::CallActivity)
    }

    /// Catches: start, intermediate catch and boundary events.
    pub(crate) fn is_catch(self) -> bool {
        matches!(self, Self::Start | Self::Catch | Self::Boundary)
    }

    /// Whether the element may name a `default` flow (activities and exclusive, inclusive and
    /// complex gateways).
    pub(crate) fn takes_default(self) -> bool {
        self.is_activity()
            || matches!(
                self,
                Self::Gateway(GatewayKind::Exclusive | GatewayKind::Inclusive | GatewayKind::Complex)
            )
    }

    pub(crate) fn is_event(self) -> bool {
        matches!(
            self,
            Self::Start | Self::End | Self::Boundary | Self::Catch | Self::Throw
        )
    }

    pub(crate) fn is_gateway(self) -> bool {
        matches!(self, Self::Gateway(_))
    }
}

/// Flow-node elements by local name.
pub(crate) const FLOW_NODES: [(&str, Kind); 22] = [
    ("startEvent", Kind::Start),
    ("endEvent", Kind::End),
    ("boundaryEvent", Kind::Boundary),
    ("intermediateCatchEvent", Kind::Catch),
    ("intermediateThrowEvent", Kind::Throw),
    ("task", Kind::Task(TaskKind::Task)),
    ("userTask", Kind::Task(TaskKind::User)),
    ("manualTask", Kind::Task(TaskKind::Manual)),
    ("scriptTask", Kind::Task(TaskKind::Script)),
    ("businessRuleTask", Kind::Task(TaskKind::BusinessRule)),
    ("receiveTask", Kind::Task(TaskKind::Receive)),
    ("sendTask", Kind::Task(TaskKind::Send)),
    ("serviceTask", Kind::Task(TaskKind::Service)),
    ("callActivity", Kind::Task(TaskKind::CallActivity)),
    ("exclusiveGateway", Kind::Gateway(GatewayKind::Exclusive)),
    ("inclusiveGateway", Kind::Gateway(GatewayKind::Inclusive)),
    ("parallelGateway", Kind::Gateway(GatewayKind::Parallel)),
    ("eventBasedGateway", Kind::Gateway(GatewayKind::EventBased)),
    ("complexGateway", Kind::Gateway(GatewayKind::Complex)),
    ("subProcess", Kind::SubProcess(SubProcessKind::Embedded)),
    ("transaction", Kind::SubProcess(SubProcessKind::Transaction)),
    ("adHocSubProcess", Kind::SubProcess(SubProcessKind::AdHoc)),
];

/// Kind of an event definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DefinitionKind {
    Message,
    Signal,
    Timer,
    Conditional,
    Error,
    Escalation,
    Compensate,
    Link,
    Terminate,
    Cancel,
}

/// Event-definition elements by local name.
pub(crate) const DEFINITIONS: [(&str, DefinitionKind); 10] = [
    ("messageEventDefinition", DefinitionKind::Message),
    ("signalEventDefinition", DefinitionKind::Signal),
    ("timerEventDefinition", DefinitionKind::Timer),
    ("conditionalEventDefinition", DefinitionKind::Conditional),
    ("errorEventDefinition", DefinitionKind::Error),
    ("escalationEventDefinition", DefinitionKind::Escalation),
    ("compensateEventDefinition", DefinitionKind::Compensate),
    ("linkEventDefinition", DefinitionKind::Link),
    ("terminateEventDefinition", DefinitionKind::Terminate),
    ("cancelEventDefinition", DefinitionKind::Cancel),
];

#[derive(Debug)]
pub(crate) struct EventDefinition {
    pub(crate) kind: DefinitionKind,
    /// Local element name, for locations.
    pub(crate) element: &'static str,
    /// `messageRef`, `signalRef`, `errorRef` or `escalationRef`, by kind.
    pub(crate) reference: Option<String>,
    /// A link's `name`.
    pub(crate) name: Option<String>,
    /// Text of a timer's `timeDuration`.
    pub(crate) duration: Option<String>,
    /// A timer's `timeDate` or `timeCycle`, which Portico does not read, by local name.
    pub(crate) other_timer: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct Node {
    /// Position among all elements of the process, for document-order reporting.
    pub(crate) order: usize,
    pub(crate) kind: Kind,
    pub(crate) element: &'static str,
    /// 1-based position among the process's elements of the same name.
    pub(crate) position: usize,
    /// The sub-process (node index) it sits in; `None` at process level.
    pub(crate) parent: Option<usize>,
    pub(crate) attrs: Attrs,
    pub(crate) definitions: Vec<EventDefinition>,
    /// Text of the first `portico:config`.
    pub(crate) config: Option<String>,
    pub(crate) config_count: usize,
    /// Whether `portico:config` had child elements.
    pub(crate) config_markup: bool,
    /// The first `portico:` element in `extensionElements` other than `config`, a likely typo.
    pub(crate) unknown_element: Option<String>,
}

impl Node {
    /// Whether the node carries any of Portico's extensions, so the modeler's defaults give way
    /// to what Portico reads.
    pub(crate) fn has_portico(&self) -> bool {
        self.attrs.portico_type.is_some() || self.config_count > 0
    }

    /// An event sub-process: started by its own start event, not by flows.
    pub(crate) fn is_event_sub_process(&self) -> bool {
        matches!(self.kind, Kind::SubProcess(_)) && flag(self.attrs.triggered_by_event.as_ref())
    }

    pub(crate) fn is_for_compensation(&self) -> bool {
        self.kind.is_activity() && flag(self.attrs.is_for_compensation.as_ref())
    }

    /// A start event interrupts unless it says `isInterrupting="false"`.
    pub(crate) fn is_interrupting(&self) -> bool {
        self.attrs.is_interrupting.as_ref().is_none_or(|v| v == "true")
    }

    /// Whether every event definition (at least one) is of this kind.
    pub(crate) fn only_definitions(&self, kind: DefinitionKind) -> bool {
        !self.definitions.is_empty() && self.definitions.iter().all(|d| d.kind == kind)
    }

    pub(crate) fn has_definition(&self, kind: DefinitionKind) -> bool {
        self.definitions.iter().any(|d| d.kind == kind)
    }
}

/// A boolean attribute: true only when it says exactly `true`, as bpmn-moddle reads it.
pub(crate) fn flag(value: Option<&String>) -> bool {
    value.is_some_and(|v| v == "true")
}

/// A name with the white space JavaScript's `trim` removes taken off, as bpmnlint compares names.
pub(crate) fn trimmed(name: Option<&str>) -> &str {
    name.unwrap_or_default()
        .trim_matches(|c: char| (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}')
}

#[derive(Debug)]
pub(crate) struct Flow {
    pub(crate) order: usize,
    pub(crate) position: usize,
    pub(crate) attrs: Attrs,
    /// The text of its `conditionExpression`, when it has one.
    pub(crate) condition: Option<String>,
}

/// An `association` (a compensation boundary event to its handler, or an annotation).
#[derive(Debug)]
pub(crate) struct Association {
    /// The sub-process (node index) it sits in; `None` at process level.
    pub(crate) parent: Option<usize>,
    pub(crate) source: Option<String>,
    pub(crate) target: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Process {
    pub(crate) attrs: Attrs,
    pub(crate) documentation: Option<String>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) flows: Vec<Flow>,
    pub(crate) associations: Vec<Association>,
    /// `(id, name)` of every `lane`, nested ones included.
    pub(crate) lanes: Vec<(Option<String>, Option<String>)>,
    /// Elements seen per entry of [`FLOW_NODES`].
    pub(crate) counts: [usize; FLOW_NODES.len()],
    /// Elements seen.
    pub(crate) children: usize,
}

/// A `participant` of a collaboration.
#[derive(Debug)]
pub(crate) struct Participant {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
}

/// A `messageFlow` of a collaboration: only the message it carries matters here.
#[derive(Debug)]
pub(crate) struct MessageFlow {
    pub(crate) message_ref: Option<String>,
}

/// A root element that events refer to.
#[derive(Debug)]
pub(crate) struct Global {
    pub(crate) kind: DefinitionKind,
    pub(crate) id: String,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Document {
    /// Id of the `definitions` root.
    pub(crate) id: Option<String>,
    /// Local name of a root element other than BPMN `definitions`.
    pub(crate) wrong_root: Option<String>,
    pub(crate) processes: Vec<Process>,
    pub(crate) participants: Vec<Participant>,
    pub(crate) message_flows: Vec<MessageFlow>,
    /// `message`, `signal`, `error` and `escalation` elements.
    pub(crate) globals: Vec<Global>,
}

impl Document {
    /// The global elements by kind and id (the first of equal ids wins).
    pub(crate) fn globals_by_id(&self) -> HashMap<(DefinitionKind, &str), &Global> {
        let mut map = HashMap::with_capacity(self.globals.len());
        for global in &self.globals {
            map.entry((global.kind, global.id.as_str())).or_insert(global);
        }
        map
    }
}

/// The attributes the reader keeps; the rest are checked for well-formedness and dropped.
#[derive(Debug, Default)]
pub(crate) struct Attrs {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) source_ref: Option<String>,
    pub(crate) target_ref: Option<String>,
    pub(crate) default: Option<String>,
    pub(crate) attached_to_ref: Option<String>,
    pub(crate) message_ref: Option<String>,
    pub(crate) signal_ref: Option<String>,
    pub(crate) error_ref: Option<String>,
    pub(crate) escalation_ref: Option<String>,
    pub(crate) process_ref: Option<String>,
    pub(crate) is_executable: Option<String>,
    pub(crate) triggered_by_event: Option<String>,
    pub(crate) is_for_compensation: Option<String>,
    pub(crate) is_interrupting: Option<String>,
    /// `portico:type`.
    pub(crate) portico_type: Option<String>,
    /// `portico:branch`.
    pub(crate) portico_branch: Option<String>,
    /// The first other `portico:` attribute, a likely typo.
    pub(crate) unknown_portico: Option<String>,
}
