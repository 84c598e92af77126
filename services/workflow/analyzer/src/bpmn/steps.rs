//! Turns a classified node into a [`Trigger`] or a [`Step`], its config from `portico:config`
//! completed with what the BPMN itself gives and validated as JSON input is.

use serde_json::{Map, Value};

use super::build::Builder;
use super::document::{DefinitionKind, GatewayKind, Kind, Node, SubProcessKind};
use super::locate::{Source, locator};
use crate::model::{Step, StepType, Trigger, config_problems};

impl<'p> Builder<'p> {
    /// A start event's trigger; when it forks into several flows, also the split step (with the
    /// same id) the trigger leads to.
    pub(super) fn trigger(&mut self, i: usize, node: &'p Node) -> (Option<Trigger>, Option<Step>) {
        let Some(id) = node.attrs.id.clone() else {
            return (None, None);
        };
        let trigger_type = match &node.attrs.portico_type {
            Some(name) if name.is_empty() => {
                self.problem(locator(node), "portico:type of a start event must not be empty");
                return (None, None);
            }
            Some(name) => name.clone(),
            None => match node.definitions.first().map(|d| d.kind) {
                Some(DefinitionKind::Message) => "message",
                Some(DefinitionKind::Timer) => "timer",
                Some(DefinitionKind::Signal) => "signal",
                Some(DefinitionKind::Conditional) => "conditional",
                Some(DefinitionKind::Error) => "error",
                Some(DefinitionKind::Escalation) => "escalation",
                Some(DefinitionKind::Compensate) => "compensation",
                _ => "start",
            }
            .to_owned(),
        };
        let mut routing: Vec<String> = self.successors(i).into_iter().map(str::to_owned).collect();
        let (next, split) = match routing.len() {
            0 => (None, None),
            1 => (routing.pop(), None),
            _ => {
                let split = Step {
                    id: id.clone(),
                    step_type: StepType::Split,
                    name: node.attrs.name.clone(),
                    next: None,
                    branches: None,
                    paths: routing,
                    config: Map::new(),
                };
                (Some(id.clone()), Some(split))
            }
        };
        let config = self.explicit_config(node).unwrap_or_default();
        let trigger = Trigger {
            id,
            trigger_type,
            name: node.attrs.name.clone(),
            next,
            config,
        };
        (Some(trigger), split)
    }

    pub(super) fn step(&mut self, i: usize, node: &'p Node, mut step_type: StepType) -> Option<Step> {
        let id = node.attrs.id.clone()?;
        let mut config = self.explicit_config(node).unwrap_or_default();
        // Values the BPMN gives: (config key, value, where it came from).
        let mut derived: Vec<(&'static str, String, Source<'p>)> = Vec::new();
        let (mut next, mut branches, mut paths) = (None, None, Vec::new());
        let own_flows = self.outgoing.get(i).is_some_and(|flows| !flows.is_empty());
        let mut routing = self.routing(i, node);
        if step_type == StepType::End && !routing.is_empty() {
            if own_flows {
                self.note(
                    Some(&id),
                    "an end event finishes its path, so its outgoing sequence flows are never taken",
                );
                routing.clear();
            } else {
                // The end of a sub-process: the run goes on where the sub-process does.
                step_type = StepType::Task;
            }
        }
        match step_type {
            StepType::End => {}
            StepType::IfElse => branches = Some(self.branches(i, node)),
            StepType::Goto => match routing.as_slice() {
                [] => {}
                [_] if config.contains_key("target") => {
                    self.problem(
                        locator(node),
                        "a goto step continues at config.target or at its outgoing sequence flow, not both",
                    );
                }
                [target] => derived.push(("target", (*target).to_owned(), Source::new(node, "", ""))),
                _ => self.problem(
                    locator(node),
                    format!("a goto step continues at one element, not {}", routing.len()),
                ),
            },
            _ => match routing.as_slice() {
                [] => {}
                [target] => next = Some((*target).to_owned()),
                _ => paths = routing.iter().map(|t| (*t).to_owned()).collect(),
            },
        }
        let extra: Vec<&'p str> = self.extra.get(i).cloned().unwrap_or_default();
        for target in extra {
            if let Some(target) = self.follow(target)
                && next.as_deref() != Some(target)
                && !paths.iter().any(|p| p == target)
            {
                paths.push(target.to_owned());
            }
        }
        match step_type {
            StepType::Wait => {
                if let Some(definition) = node.definitions.iter().find(|d| d.kind == DefinitionKind::Timer)
                    && let Some(duration) = &definition.duration
                {
                    let source = Source::new(node, definition.element, "timeDuration");
                    derived.push(("duration", duration.clone(), source));
                }
            }
            StepType::WaitForEvent => {
                if let Some((event, source)) = self.event_name(node) {
                    derived.push(("event", event.to_owned(), source));
                }
                let timeout = self
                    .timeout(i, next.as_deref(), &mut paths)
                    .or_else(|| self.raced_timer(i));
                if let Some((timeout, source)) = timeout {
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
            if let Some((_, source)) = sources.iter().find(|(k, _)| *k == key) {
                self.problem(source.render(), message);
            } else if config.contains_key(key) {
                // Not derived, so it came from portico:config.
                self.problem(format!("{}/extensionElements/config{pointer}", locator(node)), message);
            } else if node.has_portico() {
                self.problem(locator(node), format!("{message}{}", missing_hint(key)));
            } else {
                self.note(
                    Some(&id),
                    format!(
                        "as a {step_type} step, <{}> needs config.{key}, which the diagram does not give{}; \
                         rules that read it skip this element",
                        node.element,
                        missing_hint(key)
                    ),
                );
            }
        }
        Some(Step {
            id,
            step_type,
            name: node.attrs.name.clone(),
            next,
            branches,
            paths,
            config,
        })
    }

    /// Where a node continues: into a sub-process's contents, from a link to its catch, along
    /// its flows, or, where a path inside a sub-process ends, wherever the sub-process goes on.
    fn routing(&mut self, i: usize, node: &'p Node) -> Vec<&'p str> {
        if matches!(node.kind, Kind::SubProcess(_)) {
            let entries = self.entries(i, node);
            if !entries.is_empty() {
                return entries;
            }
        }
        if node.kind == Kind::Throw
            && let Some(catch) = self.link_catch(node)
        {
            return vec![catch];
        }
        let own = self.successors(i);
        if !own.is_empty() {
            return own;
        }
        match node.parent {
            Some(scope) => self.continuation(scope),
            None => Vec::new(),
        }
    }

    /// Where a sub-process goes on once a path inside it ends: its own flows, else (nested) where
    /// its enclosing sub-process goes on. An event sub-process goes on nowhere.
    fn continuation(&mut self, mut scope: usize) -> Vec<&'p str> {
        let process = self.process;
        loop {
            let Some(node) = process.nodes.get(scope) else {
                return Vec::new();
            };
            if node.is_event_sub_process() {
                return Vec::new();
            }
            let own = self.successors(scope);
            if !own.is_empty() {
                return own;
            }
            match node.parent {
                Some(parent) => scope = parent,
                None => return Vec::new(),
            }
        }
    }

    /// Where a run enters a sub-process: its start events, else (as in an ad-hoc sub-process)
    /// every element inside that no flow leads to.
    fn entries(&mut self, s: usize, sub: &Node) -> Vec<&'p str> {
        let process = self.process;
        let inside: Vec<(usize, &'p Node)> = self
            .inside
            .get(s)
            .into_iter()
            .flatten()
            .filter_map(|&j| process.nodes.get(j).map(|n| (j, n)))
            .collect();
        let starts: Vec<&'p str> = inside
            .iter()
            .filter(|(_, n)| n.kind == Kind::Start)
            .filter_map(|(_, n)| n.attrs.id.as_deref())
            .collect();
        let adhoc = sub.kind == Kind::SubProcess(SubProcessKind::AdHoc);
        let candidates: Vec<&'p str> = if !starts.is_empty() && !adhoc {
            starts
        } else {
            inside
                .iter()
                .filter(|(j, n)| {
                    self.incoming.get(*j).is_some_and(Vec::is_empty)
                        && n.kind != Kind::Boundary
                        && !n.is_event_sub_process()
                        && !n.is_for_compensation()
                })
                .filter_map(|(_, n)| n.attrs.id.as_deref())
                .collect()
        };
        candidates.into_iter().filter_map(|id| self.follow(id)).collect()
    }

    /// Finds, for every event-based gateway, the first timer catch event with a duration it leads
    /// to: one pass over the gateways' flows.
    pub(super) fn find_raced_timers(&mut self) {
        let process = self.process;
        for (g, node) in process.nodes.iter().enumerate() {
            if node.kind != Kind::Gateway(GatewayKind::EventBased) {
                continue;
            }
            let timer = self.outgoing.get(g).into_iter().flatten().find_map(|&f| {
                let t = self.node_of(process.flows.get(f)?.attrs.target_ref.as_deref()?)?;
                let target = process.nodes.get(t)?;
                let timed = matches!(target.definitions.as_slice(),
                    [d] if d.kind == DefinitionKind::Timer && d.duration.is_some());
                (target.kind == Kind::Catch && timed).then_some(t)
            });
            if let Some(slot) = self.raced_timers.get_mut(g) {
                *slot = timer;
            }
        }
    }

    /// A wait behind an event-based gateway that also waits for a timer ends when the timer
    /// fires: that timer's duration is its timeout.
    fn raced_timer(&self, i: usize) -> Option<(&'p str, Source<'p>)> {
        let process = self.process;
        let timer = self.incoming.get(i)?.iter().find_map(|&f| {
            let g = self.node_of(process.flows.get(f)?.attrs.source_ref.as_deref()?)?;
            self.raced_timers.get(g).copied().flatten()
        })?;
        let timer = process.nodes.get(timer)?;
        let definition = timer.definitions.first()?;
        Some((
            definition.duration.as_deref()?,
            Source::new(timer, definition.element, "timeDuration"),
        ))
    }

    /// The catching link event a throwing one jumps to: same name, same scope.
    fn link_catch(&self, node: &Node) -> Option<&'p str> {
        let name = node
            .definitions
            .iter()
            .find(|d| d.kind == DefinitionKind::Link)?
            .name
            .as_deref()?;
        self.link_catches.get(&(node.parent, name)).copied()
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
            let reference = d.reference.as_deref()?;
            Some((d.kind, reference, Source::new(node, d.element, "")))
        });
        let (kind, reference, source) = match from_definition {
            Some(found) => found,
            None => (
                DefinitionKind::Message,
                node.attrs.message_ref.as_deref()?,
                Source::new(node, "@messageRef", ""),
            ),
        };
        let name = self
            .globals
            .get(&(kind, reference))
            .and_then(|g| g.name.as_deref())
            .filter(|name| !name.is_empty())
            .unwrap_or(reference);
        Some((name, source))
    }

    /// The timeout of a wait_for_event step from its boundary timer. Where the timer's flow leads
    /// elsewhere than the step's own, that element becomes one of the step's paths.
    fn timeout(&mut self, i: usize, next: Option<&str>, paths: &mut Vec<String>) -> Option<(&'p str, Source<'p>)> {
        let b = self.timeouts.get(i).copied().flatten()?;
        let boundary = self.process.nodes.get(b)?;
        for target in self.successors(b) {
            if next != Some(target) && !paths.iter().any(|p| p == target) {
                paths.push(target.to_owned());
            }
        }
        let definition = boundary.definitions.first()?;
        let duration = definition.duration.as_deref()?;
        Some((duration, Source::new(boundary, definition.element, "timeDuration")))
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
