//! The typed workflow: its triggers and steps, step types and condition operators, and what the
//! rules ask of a step.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::duration::duration_is_nonzero;

/// Kind of a workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    /// Sends an email (`config.subject`, `config.unsubscribeLink`).
    SendEmail,
    /// Sends a text message (`config.text` or `config.message`).
    SendSms,
    /// Calls an HTTP endpoint (`config.url`, `config.retry.maxAttempts`).
    Webhook,
    /// Adds a tag to the contact (`config.tag`).
    AddTag,
    /// Removes a tag from the contact (`config.tag`).
    RemoveTag,
    /// Pauses for an ISO-8601 `config.duration`.
    Wait,
    /// Pauses until `config.event` happens or the optional `config.timeout` passes.
    WaitForEvent,
    /// Goes to `branches.yes` when every entry of `config.conditions` holds, else to `branches.no`.
    IfElse,
    /// Jumps to `config.target`.
    Goto,
    /// Marks a conversion goal; the path may continue through `next`.
    Goal,
    /// Ends the path.
    End,
    /// An activity whose effect the analyser does not know (a BPMN task without Portico's
    /// extensions); the path continues through `next` and `paths`.
    Task,
    /// Continues along `next` and every entry of `paths`: a BPMN gateway whose conditions the
    /// analyser does not read (parallel, event-based, complex, or an unlabelled exclusive one).
    Split,
}

impl StepType {
    /// Every step type, in catalogue order.
    pub const ALL: [Self; 13] = [
        Self::SendEmail,
        Self::SendSms,
        Self::Webhook,
        Self::AddTag,
        Self::RemoveTag,
        Self::Wait,
        Self::WaitForEvent,
        Self::IfElse,
        Self::Goto,
        Self::Goal,
        Self::End,
        Self::Task,
        Self::Split,
    ];

    /// Name used for this type in the JSON input.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SendEmail => "send_email",
            Self::SendSms => "send_sms",
            Self::Webhook => "webhook",
            Self::AddTag => "add_tag",
            Self::RemoveTag => "remove_tag",
            Self::Wait => "wait",
            Self::WaitForEvent => "wait_for_event",
            Self::IfElse => "if_else",
            Self::Goto => "goto",
            Self::Goal => "goal",
            Self::End => "end",
            Self::Task => "task",
            Self::Split => "split",
        }
    }

    /// Looks a type up by its JSON name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Position in [`StepType::ALL`], for per-type tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Whether the step acts on the contact or the outside world, so repeating it has an effect.
    pub const fn is_action(self) -> bool {
        matches!(
            self,
            Self::SendEmail | Self::SendSms | Self::Webhook | Self::AddTag | Self::RemoveTag
        )
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Comparison operator of an if_else condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionOp {
    /// Field equals value.
    Eq,
    /// Field differs from value.
    Neq,
    /// Field is greater than value.
    Gt,
    /// Field is less than value.
    Lt,
    /// Field is greater than or equal to value.
    Gte,
    /// Field is less than or equal to value.
    Lte,
    /// Field contains value.
    Contains,
    /// Field is set; takes no value.
    Exists,
}

impl ConditionOp {
    /// Every operator, in catalogue order.
    pub const ALL: [Self; 8] = [
        Self::Eq,
        Self::Neq,
        Self::Gt,
        Self::Lt,
        Self::Gte,
        Self::Lte,
        Self::Contains,
        Self::Exists,
    ];

    /// Name used for this operator in the JSON input.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Gte => "gte",
            Self::Lte => "lte",
            Self::Contains => "contains",
            Self::Exists => "exists",
        }
    }

    /// Looks an operator up by its JSON name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for ConditionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated workflow document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-text description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Entry points; a missing `triggers` array reads as empty.
    pub triggers: Vec<Trigger>,
    /// Steps in input order; a missing `steps` array reads as empty.
    pub steps: Vec<Step>,
    /// Findings about the source document itself, which [`analyze`](crate::analyze) reports
    /// beside its own: for BPMN, bpmnlint's rules and what the mapping could not judge. Not part
    /// of the JSON format.
    #[serde(skip)]
    pub findings: Vec<crate::Finding>,
}

/// An event that starts a run of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Trigger id, unique among triggers.
    pub id: String,
    /// Event name such as `form_submitted`; any non-empty string is accepted.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Id of the first step, if any.
    pub next: Option<String>,
    /// Free-form trigger settings.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
}

/// One step of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Step id, unique among steps.
    pub id: String,
    /// What the step does.
    #[serde(rename = "type")]
    pub step_type: StepType,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Id of the following step; `None` ends the path.
    pub next: Option<String>,
    /// Targets of an if_else step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branches: Option<Branches>,
    /// Further steps the run continues at besides `next`: the paths of a split, or what a
    /// BPMN activity's boundary events and extra outgoing flows lead to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Type-specific settings, kept verbatim (unknown keys included).
    pub config: Map<String, Value>,
}

/// The two targets of an if_else step; `None` ends the path on that side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Branches {
    /// Step taken when every condition holds.
    pub yes: Option<String>,
    /// Step taken otherwise.
    pub no: Option<String>,
}

impl Step {
    /// A config value, with JSON `null` read as absent (the schema allows null for optional keys).
    pub(crate) fn config_value(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    /// A config value that is a string.
    pub(crate) fn config_str(&self, key: &str) -> Option<&str> {
        self.config_value(key).and_then(Value::as_str)
    }

    /// Outgoing references as `(field, target id)`, in a fixed order so findings are deterministic.
    pub(crate) fn references(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let branches = self.branches.as_ref();
        let target = if self.step_type == StepType::Goto {
            self.config_str("target")
        } else {
            None
        };
        [
            ("next", self.next.as_deref()),
            ("branches.yes", branches.and_then(|b| b.yes.as_deref())),
            ("branches.no", branches.and_then(|b| b.no.as_deref())),
            ("config.target", target),
        ]
        .into_iter()
        .filter_map(|(field, target)| target.map(|t| (field, t)))
        .chain(self.paths.iter().map(|t| ("paths", t.as_str())))
    }

    /// Whether this is an if_else with a side left empty, which ends the run there.
    pub(crate) fn has_open_branch(&self) -> bool {
        self.step_type == StepType::IfElse && self.branches.as_ref().is_none_or(|b| b.yes.is_none() || b.no.is_none())
    }

    /// Whether the step makes the contact wait; a zero-length wait throttles nothing, so it does not count.
    pub(crate) fn pauses(&self) -> bool {
        match self.step_type {
            StepType::WaitForEvent => true,
            StepType::Wait => self.config_str("duration").and_then(duration_is_nonzero) != Some(false),
            _ => false,
        }
    }
}
