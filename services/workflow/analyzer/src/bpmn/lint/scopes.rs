//! The rules about what a process or sub-process holds directly: its start and end events, and
//! the event definitions of events.

use super::{Diagram, Lint, Out, rule};
use crate::bpmn::document::{DefinitionKind, Kind};

pub(crate) const AD_HOC_SUB_PROCESS: Lint = Lint {
    rule: rule(
        "bpmnlint/ad-hoc-sub-process",
        true,
        "Start or end event in an ad-hoc sub-process",
        "An ad-hoc sub-process runs its activities in any order, so it may hold neither start nor end events.",
    ),
    check: ad_hoc_sub_process,
    suggestion: "Remove the start and end events from the ad-hoc sub-process.",
};

fn ad_hoc_sub_process(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in diagram.scopes.iter().filter(|s| s.is_ad_hoc()) {
        for child in diagram.children(scope) {
            match child.node.kind {
                Kind::Start => out.report(child.id(), "A <Start Event> is not allowed in <Ad Hoc Sub Process>"),
                Kind::End => out.report(child.id(), "An <End Event> is not allowed in <Ad Hoc Sub Process>"),
                _ => {}
            }
        }
    }
}

pub(crate) const END_EVENT_REQUIRED: Lint = Lint {
    rule: rule(
        "bpmnlint/end-event-required",
        true,
        "Process without an end event",
        "Every process and sub-process (ad-hoc ones excepted) needs an end event, so it is clear where it finishes.",
    ),
    check: end_event_required,
    suggestion: "Add an end event where the path finishes.",
};

fn end_event_required(diagram: &Diagram<'_>, out: &mut Out) {
    required(diagram, out, Kind::End, "end");
}

pub(crate) const START_EVENT_REQUIRED: Lint = Lint {
    rule: rule(
        "bpmnlint/start-event-required",
        true,
        "Process without a start event",
        "Every process and sub-process (ad-hoc ones excepted) needs a start event, so it is clear where it begins.",
    ),
    check: start_event_required,
    suggestion: "Add a start event where the path begins.",
};

fn start_event_required(diagram: &Diagram<'_>, out: &mut Out) {
    required(diagram, out, Kind::Start, "start");
}

fn required(diagram: &Diagram<'_>, out: &mut Out, kind: Kind, what: &str) {
    for scope in diagram.scopes.iter().filter(|s| !s.is_ad_hoc()) {
        if !diagram.children(scope).any(|c| c.node.kind == kind) {
            out.report(scope.id(), format!("{} is missing {what} event", scope.what()));
        }
    }
}

pub(crate) const EVENT_SUB_PROCESS_TYPED_START_EVENT: Lint = Lint {
    rule: rule(
        "bpmnlint/event-sub-process-typed-start-event",
        true,
        "Blank start event in an event sub-process",
        "An event sub-process starts on an event, so its start event needs an event definition.",
    ),
    check: event_sub_process_typed_start_event,
    suggestion: "Give the start event the event (message, timer, error, …) that starts the event sub-process.",
};

fn event_sub_process_typed_start_event(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in diagram.scopes.iter().filter(|s| s.is_event_sub_process()) {
        for child in diagram.children(scope) {
            if child.node.kind == Kind::Start && child.node.definitions.is_empty() {
                out.report(child.id(), "Start event is missing event definition");
            }
        }
    }
}

pub(crate) const SUB_PROCESS_BLANK_START_EVENT: Lint = Lint {
    rule: rule(
        "bpmnlint/sub-process-blank-start-event",
        true,
        "Typed start event in a sub-process",
        "A sub-process (not an event sub-process) starts when the flow reaches it, so its start event must be blank.",
    ),
    check: sub_process_blank_start_event,
    suggestion: "Remove the event definition from the start event, or make the sub-process an event sub-process.",
};

fn sub_process_blank_start_event(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in diagram
        .scopes
        .iter()
        .filter(|s| s.is_sub_process() && !s.is_event_sub_process())
    {
        for child in diagram.children(scope) {
            if child.node.kind == Kind::Start && !child.node.definitions.is_empty() {
                out.report(child.id(), "Start event must be blank");
            }
        }
    }
}

pub(crate) const SINGLE_BLANK_START_EVENT: Lint = Lint {
    rule: rule(
        "bpmnlint/single-blank-start-event",
        true,
        "Several blank start events",
        "A process or sub-process with more than one blank start event leaves open which one starts it.",
    ),
    check: single_blank_start_event,
    suggestion: "Keep one blank start event and type (or remove) the others.",
};

fn single_blank_start_event(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in &diagram.scopes {
        let blank = diagram
            .children(scope)
            .filter(|c| c.node.kind == Kind::Start && c.node.definitions.is_empty())
            .count();
        if blank > 1 {
            out.report(scope.id(), format!("{} has multiple blank start events", scope.what()));
        }
    }
}

pub(crate) const SINGLE_EVENT_DEFINITION: Lint = Lint {
    rule: rule(
        "bpmnlint/single-event-definition",
        true,
        "Event with several event definitions",
        "An event with more than one event definition is ambiguous: engines and readers disagree on what it means.",
    ),
    check: single_event_definition,
    suggestion: "Keep one event definition per event; model alternatives with an event-based gateway.",
};

fn single_event_definition(diagram: &Diagram<'_>, out: &mut Out) {
    for node in diagram.nodes.iter().filter(|n| n.node.kind.is_event()) {
        if node.node.definitions.len() > 1 {
            out.report(node.id(), "Event has multiple event definitions");
        }
    }
}

pub(crate) const SUPERFLUOUS_TERMINATION: Lint = Lint {
    rule: rule(
        "bpmnlint/superfluous-termination",
        false,
        "Superfluous terminate end event",
        "A terminate end event that is a scope's only way to finish (besides interrupting event sub-processes) \
         ends nothing a plain end event would not.",
    ),
    check: superfluous_termination,
    suggestion: "Use a plain end event.",
};

fn superfluous_termination(diagram: &Diagram<'_>, out: &mut Out) {
    for scope in &diagram.scopes {
        let ends: Vec<_> = diagram.children(scope).filter(|c| c.outgoing.is_empty()).collect();
        let terminate =
            |c: &super::NodeRef<'_>| c.node.kind == Kind::End && c.node.has_definition(DefinitionKind::Terminate);
        let terminates: Vec<_> = ends.iter().filter(|c| terminate(c)).collect();
        let [only] = terminates.as_slice() else {
            continue;
        };
        let interrupting_event_sub_process = |c: &super::NodeRef<'_>| {
            c.node.is_event_sub_process()
                && c.scope.and_then(|s| diagram.scopes.get(s)).is_some_and(|s| {
                    diagram
                        .children(s)
                        .any(|start| start.node.kind == Kind::Start && start.node.is_interrupting())
                })
        };
        if ends.iter().all(|c| terminate(c) || interrupting_event_sub_process(c)) {
            out.report(only.id(), "Termination is superfluous.");
        }
    }
}
