//! Where the reader is in the element tree, and what each opening and closing tag records in the
//! [`Document`].

use quick_xml::events::BytesStart;
use quick_xml::name::NamespaceResolver;

use super::document::{Attrs, DefinitionKind, Document, EventDefinition, FLOW_NODES, Flow, Node, Process};
use super::namespace::{Ns, namespace, read_attrs};
use super::reader::is_xml_space;

/// Where the reader is in the tree; the current process, node and event definition are the
/// last ones of their lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
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
    pub(super) fn captures_text(self) -> bool {
        matches!(self, Self::TimeDuration | Self::Config | Self::Documentation)
    }
}

/// Handles an opening tag: records what the mapping needs and returns the new frame.
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
pub(super) fn close(frame: Frame, document: &mut Document, captured: &mut String) {
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
