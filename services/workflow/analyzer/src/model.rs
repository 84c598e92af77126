//! Input model: the workflow document, and the single validating pass that turns JSON into it.
//!
//! Validation walks a `serde_json::Value` by hand instead of deriving `Deserialize`, because serde
//! stops at the first error while callers need every problem, each with its JSON pointer.

use std::collections::hash_map::Entry;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// Guards applied while parsing, so oversized documents are refused before any analysis.
///
/// The `max_xml_*` caps apply to [`bpmn::parse`](crate::bpmn::parse) only and are enforced while
/// the XML is read, tag by tag, before anything of the offending tag is resolved or stored; a
/// document over one of them gets a single [`ProblemKind::TooLarge`] problem naming the limit,
/// its cap and the line, column and byte offset where it was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most steps one workflow may have; more is reported as [`ProblemKind::TooLarge`].
    pub max_steps: usize,
    /// Most XML elements in one BPMN document, every element counted (diagram and vendor
    /// elements too, which the mapping skips but the reader still has to read).
    pub max_xml_elements: usize,
    /// Most attributes on one XML element, namespace declarations included.
    pub max_xml_attributes: usize,
    /// Most namespace declarations (`xmlns` and `xmlns:prefix` attributes) in one BPMN document,
    /// counted over the whole document, not per scope.
    pub max_xml_namespaces: usize,
    /// Deepest XML element nesting, the root element at depth 1.
    pub max_xml_depth: usize,
}

impl Limits {
    /// Step limit used by [`Limits::default`].
    pub const DEFAULT_MAX_STEPS: usize = 5000;
    /// XML elements allowed per step by [`Limits::for_steps`]. A modeler's export spends about 15
    /// per step: the node, its `incoming`/`outgoing` and extension elements, its sequence flow,
    /// and the diagram's shape, edge, bounds and waypoints.
    pub const XML_ELEMENTS_PER_STEP: usize = 20;
    /// Fewest XML elements [`Limits::for_steps`] allows, so a small step cap still lets a small
    /// diagram through and its steps get counted.
    pub const MIN_XML_ELEMENTS: usize = 1000;
    /// Attribute cap of [`Limits::default`]: BPMN elements carry a handful, the root a dozen.
    pub const DEFAULT_MAX_XML_ATTRIBUTES: usize = 64;
    /// Namespace declaration cap of [`Limits::default`]: modelers declare under ten, on the root.
    pub const DEFAULT_MAX_XML_NAMESPACES: usize = 64;
    /// Depth cap of [`Limits::default`]: BPMN nests under ten deep (sub-processes aside, which
    /// are refused anyway).
    pub const DEFAULT_MAX_XML_DEPTH: usize = 64;

    /// The default limits with the step cap set to `max_steps` and the XML element cap scaled
    /// with it ([`Limits::XML_ELEMENTS_PER_STEP`] per step, at least
    /// [`Limits::MIN_XML_ELEMENTS`]).
    pub const fn for_steps(max_steps: usize) -> Self {
        let elements = max_steps.saturating_mul(Self::XML_ELEMENTS_PER_STEP);
        Self {
            max_steps,
            max_xml_elements: if elements > Self::MIN_XML_ELEMENTS {
                elements
            } else {
                Self::MIN_XML_ELEMENTS
            },
            max_xml_attributes: Self::DEFAULT_MAX_XML_ATTRIBUTES,
            max_xml_namespaces: Self::DEFAULT_MAX_XML_NAMESPACES,
            max_xml_depth: Self::DEFAULT_MAX_XML_DEPTH,
        }
    }
}

impl Default for Limits {
    /// [`Limits::for_steps`] at [`Limits::DEFAULT_MAX_STEPS`]: 5,000 steps, 100,000 XML
    /// elements, 64 attributes per element, 64 namespace declarations, depth 64.
    fn default() -> Self {
        Self::for_steps(Self::DEFAULT_MAX_STEPS)
    }
}

/// Class of an input problem, so an HTTP caller can answer 400, 413 or 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// The bytes are not JSON at all (for [`bpmn::parse`](crate::bpmn::parse): not well-formed XML).
    Syntax,
    /// The JSON (or BPMN) does not have the shape of a workflow.
    Schema,
    /// The workflow is over a [`Limits`] bound.
    TooLarge,
}

/// One thing wrong with the input, located by an RFC 6901 JSON pointer (for BPMN input, an
/// XPath-like locator: see [`bpmn`](crate::bpmn)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message} (at \"{pointer}\")")]
pub struct InputProblem {
    /// Class of the problem.
    pub kind: ProblemKind,
    /// JSON pointer to the offending value, `""` for the whole document. For
    /// [`bpmn::parse`](crate::bpmn::parse), an XPath-like location such as
    /// `/process/sendTask[@id='s1']` instead.
    pub pointer: String,
    /// Human-readable explanation.
    pub message: String,
}

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
}

impl StepType {
    /// Every step type, in catalogue order.
    pub const ALL: [Self; 11] = [
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
    pub(crate) fn references(&self) -> impl Iterator<Item = (&'static str, &str)> {
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

/// Checks an ISO-8601 duration (`P1D`, `PT2H`, `P1Y2M3W4DT5H6M7.5S`); `Some(nonzero)` when valid.
pub(crate) fn duration_is_nonzero(text: &str) -> Option<bool> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut nonzero = false;
    let date_parts = duration_parts(date, &['Y', 'M', 'W', 'D'], &mut nonzero)?;
    let time_parts = match time {
        // A bare "T" with nothing after it is malformed.
        Some(time) => Some(duration_parts(time, &['H', 'M', 'S'], &mut nonzero)?).filter(|&n| n > 0)?,
        None => 0,
    };
    (date_parts + time_parts > 0).then_some(nonzero)
}

/// Counts `<number><unit>` pairs, units in the given order, each at most once.
fn duration_parts(text: &str, units: &[char], nonzero: &mut bool) -> Option<usize> {
    let mut allowed = units;
    let mut count = 0;
    let mut number_start = 0;
    for (at, c) in text.char_indices() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            continue;
        }
        let position = allowed.iter().position(|&u| u == c)?;
        allowed = allowed.get(position + 1..)?;
        let number = text.get(number_start..at)?;
        if !is_decimal(number) {
            return None;
        }
        *nonzero |= number.bytes().any(|b| (b'1'..=b'9').contains(&b));
        count += 1;
        number_start = at + c.len_utf8();
    }
    (number_start == text.len()).then_some(count)
}

/// `\d+([.,]\d+)?`, the number syntax ISO-8601 durations allow.
fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once(['.', ',']) {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(text),
    }
}

/// Parses and validates a workflow document, reporting every problem found rather than the first.
///
/// Reference targets are not checked here: a dangling `next` is a finding of
/// [`analyze`](crate::analyze), not an input error. When `steps` is over [`Limits::max_steps`] the
/// steps are not examined further, since the point of the limit is to avoid that work.
pub fn parse(json: &[u8], limits: Limits) -> Result<Workflow, Vec<InputProblem>> {
    let root: Value = match serde_json::from_slice(json) {
        Ok(root) => root,
        Err(err) => {
            return Err(vec![InputProblem {
                kind: ProblemKind::Syntax,
                pointer: String::new(),
                message: format!("not valid JSON: {err}"),
            }]);
        }
    };
    let mut problems = Problems::default();
    let workflow = read_workflow(root, limits, &mut problems);
    if problems.list.is_empty() {
        Ok(workflow)
    } else {
        Err(problems.list)
    }
}

/// One segment of a JSON pointer.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// A JSON pointer as a chain of borrowed segments, rendered only when a problem is reported so
/// valid documents cost no string formatting.
struct Loc<'a> {
    parent: Option<&'a Loc<'a>>,
    segment: Option<Segment<'a>>,
}

const ROOT: Loc<'static> = Loc {
    parent: None,
    segment: None,
};

impl Loc<'_> {
    fn key<'b>(&'b self, key: &'b str) -> Loc<'b> {
        Loc {
            parent: Some(self),
            segment: Some(Segment::Key(key)),
        }
    }

    fn index(&self, index: usize) -> Loc<'_> {
        Loc {
            parent: Some(self),
            segment: Some(Segment::Index(index)),
        }
    }

    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut current = Some(self);
        while let Some(loc) = current {
            segments.extend(loc.segment);
            current = loc.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            out.push('/');
            match segment {
                Segment::Index(i) => out.push_str(&i.to_string()),
                Segment::Key(key) => {
                    for c in key.chars() {
                        match c {
                            '~' => out.push_str("~0"),
                            '/' => out.push_str("~1"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out
    }
}

#[derive(Default)]
struct Problems {
    list: Vec<InputProblem>,
}

impl Problems {
    fn push(&mut self, kind: ProblemKind, at: &Loc<'_>, message: impl Into<String>) {
        self.list.push(InputProblem {
            kind,
            pointer: at.render(),
            message: message.into(),
        });
    }

    fn schema(&mut self, at: &Loc<'_>, message: impl Into<String>) {
        self.push(ProblemKind::Schema, at, message);
    }

    fn expected(&mut self, at: &Loc<'_>, what: &str, found: &Value) {
        self.schema(at, format!("expected {what}, found {}", describe(found)));
    }

    fn unknown_field(&mut self, at: &Loc<'_>, key: &str) {
        self.schema(at, format!("unknown field \"{key}\""));
    }

    fn missing(&mut self, at: &Loc<'_>, key: &str) {
        self.schema(at, format!("missing required field \"{key}\""));
    }

    fn count(&self) -> usize {
        self.list.len()
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_workflow(root: Value, limits: Limits, problems: &mut Problems) -> Workflow {
    let here = ROOT;
    let mut workflow = Workflow::default();
    let Value::Object(fields) = root else {
        problems.expected(&here, "the workflow to be an object", &root);
        return workflow;
    };
    for (key, value) in fields {
        let at = here.key(&key);
        match key.as_str() {
            "name" => workflow.name = read_optional_string(value, &at, problems),
            "description" => workflow.description = read_optional_string(value, &at, problems),
            "triggers" => workflow.triggers = read_list(value, &at, "trigger", problems, read_trigger),
            "steps" => match value {
                Value::Array(ref items) if items.len() > limits.max_steps => problems.push(
                    ProblemKind::TooLarge,
                    &at,
                    format!("{} steps is over the limit of {}", items.len(), limits.max_steps),
                ),
                value => workflow.steps = read_list(value, &at, "step", problems, read_step),
            },
            _ => problems.unknown_field(&at, &key),
        }
    }
    workflow
}

/// Something with an id, so duplicate detection can run over triggers and steps alike.
trait Identified {
    fn id(&self) -> &str;
}

impl Identified for Trigger {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for Step {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Item reader: the parsed item, or on failure the item's id when that much was readable (so
/// duplicate ids are still reported for items with other problems).
type ReadItem<T> = fn(Value, &Loc<'_>, &mut Problems) -> Result<T, Option<String>>;

fn read_list<T: Identified>(
    value: Value,
    at: &Loc<'_>,
    what: &str,
    problems: &mut Problems,
    read_item: ReadItem<T>,
) -> Vec<T> {
    let Value::Array(items) = value else {
        problems.expected(at, "an array", &value);
        return Vec::new();
    };
    let read: Vec<Result<T, Option<String>>> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| read_item(item, &at.index(i), problems))
        .collect();
    let mut first_use = crate::hash::id_map(read.len());
    for (i, outcome) in read.iter().enumerate() {
        let id = match outcome {
            Ok(item) => Some(item.id()),
            Err(id) => id.as_deref(),
        };
        let Some(id) = id else { continue };
        match first_use.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(slot) => {
                let first = at.index(*slot.get()).render();
                problems.schema(
                    &at.index(i).key("id"),
                    format!("duplicate {what} id \"{id}\" (first used at {first})"),
                );
            }
        }
    }
    read.into_iter().filter_map(Result::ok).collect()
}

fn read_trigger(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Result<Trigger, Option<String>> {
    let Value::Object(fields) = value else {
        problems.expected(at, "a trigger object", &value);
        return Err(None);
    };
    let before = problems.count();
    let (has_id, has_type) = (fields.contains_key("id"), fields.contains_key("type"));
    let (mut id, mut trigger_type, mut name, mut next, mut config) = (None, None, None, None, Map::new());
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "id" => id = read_id(value, &here, problems),
            "type" => trigger_type = read_id(value, &here, problems),
            "name" => name = read_optional_string(value, &here, problems),
            "next" => next = read_reference(value, &here, problems),
            "config" => config = read_config(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    if !has_id {
        problems.missing(&at.key("id"), "id");
    }
    if !has_type {
        problems.missing(&at.key("type"), "type");
    }
    match (id, trigger_type) {
        (Some(id), Some(trigger_type)) if problems.count() == before => Ok(Trigger {
            id,
            trigger_type,
            name,
            next,
            config,
        }),
        (id, _) => Err(id),
    }
}

fn read_step(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Result<Step, Option<String>> {
    let Value::Object(fields) = value else {
        problems.expected(at, "a step object", &value);
        return Err(None);
    };
    let before = problems.count();
    let (has_id, has_type) = (fields.contains_key("id"), fields.contains_key("type"));
    let (mut id, mut step_type, mut name, mut next, mut branches, mut config) =
        (None, None, None, None, None, Map::new());
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "id" => id = read_id(value, &here, problems),
            "type" => step_type = read_step_type(value, &here, problems),
            "name" => name = read_optional_string(value, &here, problems),
            "next" => next = read_reference(value, &here, problems),
            "branches" => branches = read_branches(value, &here, problems),
            "config" => config = read_config(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    if !has_id {
        problems.missing(&at.key("id"), "id");
    }
    if !has_type {
        problems.missing(&at.key("type"), "type");
    }
    if let Some(step_type) = step_type {
        check_config(step_type, &config, &at.key("config"), problems);
        check_links(step_type, next.is_some(), branches.is_some(), at, problems);
    }
    match (id, step_type) {
        (Some(id), Some(step_type)) if problems.count() == before => Ok(Step {
            id,
            step_type,
            name,
            next,
            branches,
            config,
        }),
        (id, _) => Err(id),
    }
}

fn read_id(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        other => {
            problems.expected(at, "a non-empty string", &other);
            None
        }
    }
}

fn read_optional_string(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        Value::Null => None,
        other => {
            problems.expected(at, "a string", &other);
            None
        }
    }
}

fn read_reference(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        Value::Null => None,
        other => {
            problems.expected(at, "a step id or null", &other);
            None
        }
    }
}

fn read_step_type(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<StepType> {
    let Value::String(name) = value else {
        problems.expected(at, "a step type string", &value);
        return None;
    };
    let step_type = StepType::from_name(&name);
    if step_type.is_none() {
        let known: Vec<&str> = StepType::ALL.iter().map(|t| t.as_str()).collect();
        problems.schema(
            at,
            format!("unknown step type \"{name}\" (expected one of {})", known.join(", ")),
        );
    }
    step_type
}

fn read_config(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Map<String, Value> {
    match value {
        Value::Object(config) => config,
        Value::Null => Map::new(),
        other => {
            problems.expected(at, "an object", &other);
            Map::new()
        }
    }
}

fn read_branches(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<Branches> {
    let fields = match value {
        Value::Object(fields) => fields,
        Value::Null => return None,
        other => {
            problems.expected(at, "an object with \"yes\" and \"no\"", &other);
            return None;
        }
    };
    let mut branches = Branches::default();
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "yes" => branches.yes = read_reference(value, &here, problems),
            "no" => branches.no = read_reference(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    Some(branches)
}

/// Rejects routing fields that a step type would silently ignore, since that is almost always a
/// mistake in the editor that produced the document.
fn check_links(step_type: StepType, has_next: bool, has_branches: bool, at: &Loc<'_>, problems: &mut Problems) {
    let reason = match step_type {
        StepType::IfElse => Some("if_else steps continue through \"branches\""),
        StepType::Goto => Some("goto steps continue at config.target"),
        StepType::End => Some("end steps finish the path"),
        _ => None,
    };
    if has_next && let Some(reason) = reason {
        problems.schema(&at.key("next"), format!("\"next\" must be null or absent: {reason}"));
    }
    if has_branches && step_type != StepType::IfElse {
        problems.schema(&at.key("branches"), "\"branches\" is only allowed on if_else steps");
    }
}

/// JSON shapes a known config key may take.
#[derive(Clone, Copy)]
enum Shape {
    String,
    NonEmptyString,
    Bool,
    Integer,
    Object,
    Array,
}

impl Shape {
    fn matches(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::NonEmptyString => value.as_str().is_some_and(|s| !s.is_empty()),
            Self::Bool => value.is_boolean(),
            // JSON Schema counts 3.0 as an integer, so this does too.
            Self::Integer => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::NonEmptyString => "a non-empty string",
            Self::Bool => "a boolean",
            Self::Integer => "an integer",
            Self::Object => "an object",
            Self::Array => "an array",
        }
    }
}

/// Checks a step config exactly as [`parse`] does, for the other input formats: each problem as
/// (JSON pointer relative to the config object, message).
pub(crate) fn config_problems(step_type: StepType, config: &Map<String, Value>) -> Vec<(String, String)> {
    let mut problems = Problems::default();
    check_config(step_type, config, &ROOT, &mut problems);
    problems.list.into_iter().map(|p| (p.pointer, p.message)).collect()
}

/// Checks only the keys the analyser understands; other keys belong to the platform and pass.
fn check_config(step_type: StepType, config: &Map<String, Value>, at: &Loc<'_>, problems: &mut Problems) {
    let mut field = |key: &str, shape: Shape, required: bool| config_field(config, key, shape, required, at, problems);
    match step_type {
        StepType::SendEmail => {
            field("subject", Shape::String, false);
            field("unsubscribeLink", Shape::Bool, false);
        }
        StepType::SendSms => {
            field("text", Shape::String, false);
            field("message", Shape::String, false);
        }
        StepType::Webhook => {
            field("url", Shape::String, false);
            if let Some(Value::Object(retry)) = field("retry", Shape::Object, false) {
                config_field(retry, "maxAttempts", Shape::Integer, false, &at.key("retry"), problems);
            }
        }
        StepType::AddTag | StepType::RemoveTag => {
            field("tag", Shape::String, false);
        }
        StepType::Wait => check_duration(config, "duration", true, at, problems),
        StepType::WaitForEvent => {
            field("event", Shape::NonEmptyString, true);
            check_duration(config, "timeout", false, at, problems);
        }
        StepType::IfElse => {
            if let Some(Value::Array(conditions)) = field("conditions", Shape::Array, true) {
                let list_at = at.key("conditions");
                for (i, condition) in conditions.iter().enumerate() {
                    check_condition(condition, &list_at.index(i), problems);
                }
            }
        }
        StepType::Goto => {
            field("target", Shape::NonEmptyString, true);
        }
        StepType::Goal | StepType::End => {}
    }
}

/// The value of `key` when present (null counts as absent) and of the right shape.
fn config_field<'c>(
    config: &'c Map<String, Value>,
    key: &str,
    shape: Shape,
    required: bool,
    at: &Loc<'_>,
    problems: &mut Problems,
) -> Option<&'c Value> {
    match config.get(key).filter(|v| !v.is_null()) {
        None => {
            if required {
                problems.missing(&at.key(key), key);
            }
            None
        }
        Some(value) if shape.matches(value) => Some(value),
        Some(value) => {
            problems.expected(&at.key(key), shape.name(), value);
            None
        }
    }
}

fn check_duration(config: &Map<String, Value>, key: &str, required: bool, at: &Loc<'_>, problems: &mut Problems) {
    if let Some(text) = config_field(config, key, Shape::String, required, at, problems).and_then(Value::as_str)
        && duration_is_nonzero(text).is_none()
    {
        problems.schema(
            &at.key(key),
            format!("\"{text}\" is not an ISO-8601 duration such as P1D or PT2H"),
        );
    }
}

fn check_condition(condition: &Value, at: &Loc<'_>, problems: &mut Problems) {
    let Value::Object(fields) = condition else {
        problems.expected(at, "a condition object", condition);
        return;
    };
    config_field(fields, "field", Shape::NonEmptyString, true, at, problems);
    let op = match config_field(fields, "op", Shape::String, true, at, problems).and_then(Value::as_str) {
        Some(name) => {
            let op = ConditionOp::from_name(name);
            if op.is_none() {
                let known: Vec<&str> = ConditionOp::ALL.iter().map(|o| o.as_str()).collect();
                problems.schema(
                    &at.key("op"),
                    format!(
                        "unknown condition operator \"{name}\" (expected one of {})",
                        known.join(", ")
                    ),
                );
            }
            op
        }
        None => None,
    };
    // `null` is a legitimate value to compare against, so only a missing key is a problem.
    if let Some(op) = op
        && op != ConditionOp::Exists
        && !fields.contains_key("value")
    {
        problems.schema(
            &at.key("value"),
            format!("missing required field \"value\" (needed by \"{op}\")"),
        );
    }
}

/// The example workflow of the contract, for tests across the crate.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn reference_example() -> Workflow {
    use serde_json::json;
    let doc = json!({"name": "Welcome series",
    "triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
    "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": true}, "next": "s2"},
        {"id": "s2", "type": "wait", "config": {"duration": "P1D"}, "next": "s3"},
        {"id": "s3", "type": "if_else", "config": {"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]},
         "branches": {"yes": "s4", "no": "s5"}},
        {"id": "s4", "type": "webhook", "config": {"url": "https://x.example/hook", "retry": {"maxAttempts": 3}}, "next": null},
        {"id": "s5", "type": "goto", "config": {"target": "s1"}}
    ]});
    parse(doc.to_string().as_bytes(), Limits::default()).unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;

    fn problems(doc: &Value) -> Vec<InputProblem> {
        parse(doc.to_string().as_bytes(), Limits::default()).expect_err("document should be rejected")
    }

    fn pointers(problems: &[InputProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.pointer.as_str()).collect()
    }

    #[test]
    fn parses_the_reference_example() {
        let workflow = reference_example();
        assert_eq!(workflow.name.as_deref(), Some("Welcome series"));
        assert_eq!(workflow.steps.len(), 5);
        assert_eq!(
            workflow.steps[2].branches,
            Some(Branches {
                yes: Some("s4".into()),
                no: Some("s5".into())
            })
        );
        assert_eq!(workflow.steps[3].next, None);
        assert_eq!(
            workflow.steps[4].references().collect::<Vec<_>>(),
            vec![("config.target", "s1")]
        );
    }

    #[test]
    fn not_json_is_a_syntax_problem_at_the_root() {
        for bytes in [&b""[..], b"{", b"nope", b"{\"steps\": [}"] {
            let problems = parse(bytes, Limits::default()).unwrap_err();
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].kind, ProblemKind::Syntax);
            assert_eq!(problems[0].pointer, "");
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflow() {
        let bytes = "[".repeat(100_000);
        let problems = parse(bytes.as_bytes(), Limits::default()).unwrap_err();
        assert_eq!(problems[0].kind, ProblemKind::Syntax);
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let doc = json!({
        "nmae": "typo",
        "triggers": [{"id": "t1", "type": "manual", "next": "s1", "extra": 1}],
        "steps": [
            {"id": "s1", "type": "send_email", "config": {"anything": "goes"}},
            {"type": "add_tag"},
            {"id": "s1", "type": "teleport"},
            {"id": "s4", "type": "if_else", "config": {"conditions": [{"field": "age", "op": "between", "value": 3}]}},
            {"id": "s5", "type": "wait", "config": {"duration": "1 day"}, "colour": "red"},
            {"id": 6, "type": "end"}
        ]});
        let found = problems(&doc);
        assert!(found.iter().all(|p| p.kind == ProblemKind::Schema), "{found:?}");
        let mut pointers = pointers(&found);
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            vec![
                "/nmae",
                "/steps/1/id",
                "/steps/2/id",
                "/steps/2/type",
                "/steps/3/config/conditions/0/op",
                "/steps/4/colour",
                "/steps/4/config/duration",
                "/steps/5/id",
                "/triggers/0/extra",
            ]
        );
        let duplicate = found.iter().find(|p| p.pointer == "/steps/2/id").unwrap();
        assert!(duplicate.message.contains("/steps/0"), "{}", duplicate.message);
    }

    #[test]
    fn too_many_steps_is_its_own_kind() {
        let steps: Vec<Value> = (0..3).map(|i| json!({"id": format!("s{i}"), "type": "end"})).collect();
        let doc = json!({"triggers": [], "steps": steps});
        let problems = parse(
            doc.to_string().as_bytes(),
            Limits {
                max_steps: 2,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].kind, problems[0].pointer.as_str()),
            (ProblemKind::TooLarge, "/steps")
        );
        assert!(
            parse(
                doc.to_string().as_bytes(),
                Limits {
                    max_steps: 3,
                    ..Limits::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn wrong_shapes_are_schema_problems() {
        let found = problems(&json!({"name": 3, "triggers": {}, "steps": "none"}));
        assert_eq!(pointers(&found), vec!["/name", "/steps", "/triggers"]);
        assert_eq!(pointers(&problems(&json!([1, 2]))), vec![""]);
        let found = problems(
            &json!({"steps": [{"id": "a", "type": "webhook", "config": {"url": 1, "retry": {"maxAttempts": "3"}}}]}),
        );
        assert_eq!(
            pointers(&found),
            vec!["/steps/0/config/url", "/steps/0/config/retry/maxAttempts"]
        );
    }

    #[test]
    fn missing_fields_point_where_they_belong() {
        let found = problems(&json!({"triggers": [{"next": "s1"}], "steps": [{"id": "g", "type": "goto"}]}));
        let mut pointers = pointers(&found);
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            vec!["/steps/0/config/target", "/triggers/0/id", "/triggers/0/type"]
        );
    }

    #[test]
    fn routing_fields_must_fit_the_step_type() {
        let found = problems(&json!({"steps": [
            {"id": "a", "type": "if_else", "config": {"conditions": []}, "next": "b"},
            {"id": "b", "type": "add_tag", "branches": {"yes": "a"}},
            {"id": "c", "type": "end", "next": "a"},
            {"id": "d", "type": "if_else", "config": {"conditions": []}, "branches": {"maybe": "a"}}
        ]}));
        assert_eq!(
            pointers(&found),
            vec![
                "/steps/0/next",
                "/steps/1/branches",
                "/steps/2/next",
                "/steps/3/branches/maybe"
            ]
        );
    }

    #[test]
    fn conditions_need_a_value_except_for_exists() {
        let doc = |conditions: Value| json!({"steps": [{"id": "a", "type": "if_else", "config": {"conditions": conditions}}]});
        let ok = doc(json!([{"field": "tag", "op": "exists"}, {"field": "x", "op": "eq", "value": null}]));
        assert!(parse(ok.to_string().as_bytes(), Limits::default()).is_ok());
        let found = problems(&doc(
            json!([{"field": "tag", "op": "eq"}, {"op": "gt", "value": 1}, "x"]),
        ));
        assert_eq!(
            pointers(&found),
            vec![
                "/steps/0/config/conditions/0/value",
                "/steps/0/config/conditions/1/field",
                "/steps/0/config/conditions/2"
            ]
        );
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let found = problems(&json!({"a/b~c": 1}));
        assert_eq!(found[0].pointer, "/a~1b~0c");
    }

    #[test]
    fn iso_durations() {
        for ok in ["P1D", "PT2H", "P1Y2M3W4DT5H6M7.5S", "PT0,5S", "P0D"] {
            assert!(duration_is_nonzero(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "P", "PT", "1D", "P1", "PD", "P1H", "PT1D", "P1D2Y", "P1DT", "p1d", "P1.D", "P-1D", "P1DD",
        ] {
            assert_eq!(duration_is_nonzero(bad), None, "{bad}");
        }
        assert_eq!(duration_is_nonzero("PT0S"), Some(false));
        assert_eq!(duration_is_nonzero("PT0.5S"), Some(true));
    }

    #[test]
    fn null_optional_config_counts_as_absent() {
        let doc = json!({"steps": [
            {"id": "a", "type": "wait_for_event", "config": {"event": "open", "timeout": null}},
            {"id": "b", "type": "webhook", "config": {"url": null, "retry": null, "method": "POST"}}
        ]});
        let workflow = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        assert_eq!(workflow.steps[0].config_value("timeout"), None);
    }
}
