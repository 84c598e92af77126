//! Turns a classified node into a [`Trigger`] or a [`Step`], its config from `portico:config`
//! completed with what the BPMN itself gives and validated as JSON input is.

use serde_json::{Map, Value};

use super::build::Builder;
use super::document::{DefinitionKind, Node};
use super::locate::{Source, locator};
use crate::model::{Step, StepType, Trigger, config_problems};

impl<'p> Builder<'p> {
    pub(super) fn trigger(&mut self, i: usize, node: &'p Node) -> Option<Trigger> {
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

    pub(super) fn step(&mut self, i: usize, node: &'p Node, step_type: StepType) -> Option<Step> {
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
