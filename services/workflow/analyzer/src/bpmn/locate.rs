//! XPath-like locations of problems: an element of the process by id or position, and a value the
//! BPMN gave, located below the element it came from.

use super::document::{Flow, Node};

/// Where a value given by the BPMN came from: an element and up to two steps below it, rendered
/// only when a problem needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'n> {
    node: &'n Node,
    path: [&'n str; 2],
}

impl<'n> Source<'n> {
    pub(super) fn new(node: &'n Node, first: &'n str, second: &'n str) -> Self {
        Self {
            node,
            path: [first, second],
        }
    }

    pub(super) fn render(&self) -> String {
        let mut out = locator(self.node);
        for part in self.path.iter().filter(|part| !part.is_empty()) {
            out.push('/');
            out.push_str(part);
        }
        out
    }
}

fn quoted(id: &str) -> String {
    if id.contains('\'') {
        format!("\"{id}\"")
    } else {
        format!("'{id}'")
    }
}

pub(super) fn positional(element: &str, position: usize) -> String {
    format!("/process/{element}[{position}]")
}

pub(super) fn located(element: &str, id: Option<&str>, position: usize) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => format!("/process/{element}[@id={}]", quoted(id)),
        None => positional(element, position),
    }
}

pub(super) fn locator(node: &Node) -> String {
    located(node.element, node.attrs.id.as_deref(), node.position)
}

pub(super) fn flow_locator(flow: &Flow) -> String {
    located("sequenceFlow", flow.attrs.id.as_deref(), flow.position)
}
