//! Where the reader is in the element tree, and what each opening and closing tag records in the
//! [`Document`].

use quick_xml::events::BytesStart;
use quick_xml::name::NamespaceResolver;

use super::document::{
    Association, Attrs, DEFINITIONS, DefinitionKind, Document, EventDefinition, FLOW_NODES, Flow, Global, Kind,
    MessageFlow, Node, Participant, Process,
};
use super::namespace::{Ns, namespace, read_attrs};
use super::reader::is_xml_space;

/// Where the reader is in the tree. Nodes and flows are named by their index in the current
/// (last) process, since a sub-process's contents follow it in the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    Definitions,
    Process,
    Collaboration,
    Node(usize),
    Flow(usize),
    /// A flow's `conditionExpression`, whose text is kept.
    Condition(usize),
    /// A `laneSet` or `childLaneSet`, whose `lane`s are kept.
    LaneSet,
    Lane,
    /// An event definition of the node; it is the node's last one.
    EventDefinition(usize),
    TimeDuration(usize),
    Extension(usize),
    Config(usize),
    Documentation,
    Skip,
}

impl Frame {
    pub(super) fn captures_text(self) -> bool {
        matches!(
            self,
            Self::TimeDuration(_) | Self::Config(_) | Self::Documentation | Self::Condition(_)
        )
    }
}

/// Handles an opening tag: records what the reader keeps and returns the new frame.
pub(super) fn open(
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
    let Some(parent) = parent else {
        return Ok(if bpmn && local == "definitions" {
            document.id = attrs.id;
            Frame::Definitions
        } else {
            document.wrong_root = Some(qname.as_ref().to_owned());
            Frame::Skip
        });
    };
    if parent == Frame::Definitions {
        return Ok(if bpmn {
            open_root_element(document, local, attrs)
        } else {
            Frame::Skip
        });
    }
    if parent == Frame::Collaboration {
        match (bpmn, local) {
            (true, "participant") => document.participants.push(Participant {
                id: attrs.id,
                name: attrs.name,
            }),
            (true, "messageFlow") => document.message_flows.push(MessageFlow {
                message_ref: attrs.message_ref,
            }),
            _ => {}
        }
        return Ok(Frame::Skip);
    }
    let Some(process) = document.processes.last_mut() else {
        return Ok(Frame::Skip);
    };
    let frame = match parent {
        Frame::Process if bpmn => open_in_scope(process, None, local, attrs, captured),
        Frame::Node(n) if bpmn => match local {
            "extensionElements" => Frame::Extension(n),
            _ if local.ends_with("EventDefinition") => open_definition(process, n, local, attrs),
            _ if process
                .nodes
                .get(n)
                .is_some_and(|node| matches!(node.kind, Kind::SubProcess(_))) =>
            {
                open_in_scope(process, Some(n), local, attrs, captured)
            }
            _ => Frame::Skip,
        },
        Frame::Flow(f) if bpmn && local == "conditionExpression" => {
            captured.clear();
            Frame::Condition(f)
        }
        Frame::LaneSet if bpmn && local == "lane" => {
            process.lanes.push((attrs.id, attrs.name));
            Frame::Lane
        }
        Frame::Lane if bpmn && local == "childLaneSet" => Frame::LaneSet,
        Frame::EventDefinition(n) if bpmn => {
            let definition = process.nodes.get_mut(n).and_then(|node| node.definitions.last_mut());
            match (local, definition) {
                ("timeDuration", _) => {
                    captured.clear();
                    Frame::TimeDuration(n)
                }
                ("timeDate", Some(definition)) => {
                    definition.other_timer.get_or_insert("timeDate");
                    Frame::Skip
                }
                ("timeCycle", Some(definition)) => {
                    definition.other_timer.get_or_insert("timeCycle");
                    Frame::Skip
                }
                _ => Frame::Skip,
            }
        }
        Frame::Extension(n) if ns == Ns::Portico => {
            let Some(node) = process.nodes.get_mut(n) else {
                return Ok(Frame::Skip);
            };
            if local == "config" {
                node.config_count += 1;
                captured.clear();
                Frame::Config(n)
            } else {
                node.unknown_element.get_or_insert_with(|| local.to_owned());
                Frame::Skip
            }
        }
        Frame::Config(n) => {
            if let Some(node) = process.nodes.get_mut(n) {
                node.config_markup = true;
            }
            Frame::Skip
        }
        _ => Frame::Skip,
    };
    Ok(frame)
}

/// A child of `definitions`: a process, a collaboration or a global element events refer to.
fn open_root_element(document: &mut Document, local: &str, attrs: Attrs) -> Frame {
    let kind = match local {
        "process" => {
            document.processes.push(Process {
                attrs,
                ..Process::default()
            });
            return Frame::Process;
        }
        "collaboration" => return Frame::Collaboration,
        "message" => DefinitionKind::Message,
        "signal" => DefinitionKind::Signal,
        "error" => DefinitionKind::Error,
        "escalation" => DefinitionKind::Escalation,
        _ => return Frame::Skip,
    };
    if let Some(id) = attrs.id {
        document.globals.push(Global {
            kind,
            id,
            name: attrs.name,
        });
    }
    Frame::Skip
}

fn open_definition(process: &mut Process, n: usize, local: &str, attrs: Attrs) -> Frame {
    let Some(&(element, kind)) = DEFINITIONS.iter().find(|(name, _)| *name == local) else {
        return Frame::Skip;
    };
    let Some(node) = process.nodes.get_mut(n) else {
        return Frame::Skip;
    };
    let reference = match kind {
        DefinitionKind::Message => attrs.message_ref,
        DefinitionKind::Signal => attrs.signal_ref,
        DefinitionKind::Error => attrs.error_ref,
        DefinitionKind::Escalation => attrs.escalation_ref,
        _ => None,
    };
    node.definitions.push(EventDefinition {
        kind,
        element,
        reference,
        name: attrs.name,
        duration: None,
        other_timer: None,
    });
    Frame::EventDefinition(n)
}

/// A child of a process or of the sub-process `parent`.
fn open_in_scope(
    process: &mut Process,
    parent: Option<usize>,
    local: &str,
    attrs: Attrs,
    captured: &mut String,
) -> Frame {
    process.children += 1;
    let order = process.children;
    match local {
        "sequenceFlow" => {
            process.flows.push(Flow {
                order,
                position: process.flows.len() + 1,
                attrs,
                condition: None,
            });
            Frame::Flow(process.flows.len() - 1)
        }
        "laneSet" => Frame::LaneSet,
        "association" => {
            process.associations.push(Association {
                parent,
                source: attrs.source_ref,
                target: attrs.target_ref,
            });
            Frame::Skip
        }
        "documentation" if parent.is_none() && process.documentation.is_none() => {
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
                parent,
                attrs,
                definitions: Vec::new(),
                config: None,
                config_count: 0,
                config_markup: false,
                unknown_element: None,
            });
            Frame::Node(process.nodes.len() - 1)
        }
    }
}

/// Handles a closing tag: stores captured text.
pub(super) fn close(frame: Frame, document: &mut Document, captured: &mut String) {
    let Some(process) = document.processes.last_mut() else {
        return;
    };
    match frame {
        Frame::Documentation => {
            let text = captured.trim_matches(is_xml_space);
            process.documentation = Some(text.to_owned()).filter(|t| !t.is_empty());
        }
        Frame::Config(n) => {
            if let Some(node) = process.nodes.get_mut(n)
                && node.config.is_none()
            {
                node.config = Some(std::mem::take(captured));
            }
        }
        Frame::TimeDuration(n) => {
            if let Some(definition) = process.nodes.get_mut(n).and_then(|node| node.definitions.last_mut()) {
                definition.duration = Some(captured.trim_matches(is_xml_space).to_owned());
            }
        }
        Frame::Condition(f) => {
            if let Some(flow) = process.flows.get_mut(f) {
                flow.condition = Some(std::mem::take(captured));
            }
        }
        _ => {}
    }
}
