//! Namespaces: elements and attributes are matched by namespace, never by prefix, and an
//! element's attributes are checked and the ones the mapping reads kept.

use quick_xml::XmlVersion;
use quick_xml::events::BytesStart;
use quick_xml::name::{Namespace, NamespaceResolver, ResolveResult};

use super::document::Attrs;
use super::{BPMN_NAMESPACE, PORTICO_NAMESPACE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ns {
    Bpmn,
    Portico,
    Other,
}

pub(super) fn namespace(resolved: &ResolveResult<'_>, qname: &str) -> Result<Ns, String> {
    match resolved {
        ResolveResult::Bound(Namespace(BPMN_NAMESPACE)) => Ok(Ns::Bpmn),
        ResolveResult::Bound(Namespace(PORTICO_NAMESPACE)) => Ok(Ns::Portico),
        ResolveResult::Bound(_) | ResolveResult::Unbound => Ok(Ns::Other),
        ResolveResult::Unknown(prefix) => Err(format!(
            "not well-formed XML: the prefix \"{prefix}\" of \"{qname}\" is not declared"
        )),
    }
}

/// Checks every attribute of an element and keeps the ones the mapping reads.
pub(super) fn read_attrs(resolver: &NamespaceResolver, element: &BytesStart<'_>) -> Result<Attrs, String> {
    let mut attrs = Attrs::default();
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|err| {
            format!(
                "not well-formed XML: bad attribute in <{}>: {err}",
                element.name().as_ref()
            )
        })?;
        let key = attribute.key.as_ref();
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| format!("not well-formed XML: bad value of attribute \"{key}\": {err}"))?;
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let (resolved, local) = resolver.resolve_attribute(attribute.key);
        let slot = match (namespace(&resolved, key)?, &resolved, local.as_ref()) {
            (Ns::Portico, _, "type") => &mut attrs.portico_type,
            (Ns::Portico, _, "branch") => &mut attrs.portico_branch,
            (Ns::Portico, _, other) => {
                attrs.unknown_portico.get_or_insert_with(|| other.to_owned());
                continue;
            }
            (_, ResolveResult::Unbound, "id") => &mut attrs.id,
            (_, ResolveResult::Unbound, "name") => &mut attrs.name,
            (_, ResolveResult::Unbound, "sourceRef") => &mut attrs.source_ref,
            (_, ResolveResult::Unbound, "targetRef") => &mut attrs.target_ref,
            (_, ResolveResult::Unbound, "default") => &mut attrs.default,
            (_, ResolveResult::Unbound, "attachedToRef") => &mut attrs.attached_to_ref,
            (_, ResolveResult::Unbound, "messageRef") => &mut attrs.message_ref,
            (_, ResolveResult::Unbound, "signalRef") => &mut attrs.signal_ref,
            (_, ResolveResult::Unbound, "errorRef") => &mut attrs.error_ref,
            (_, ResolveResult::Unbound, "escalationRef") => &mut attrs.escalation_ref,
            (_, ResolveResult::Unbound, "processRef") => &mut attrs.process_ref,
            (_, ResolveResult::Unbound, "isExecutable") => &mut attrs.is_executable,
            (_, ResolveResult::Unbound, "triggeredByEvent") => &mut attrs.triggered_by_event,
            (_, ResolveResult::Unbound, "isForCompensation") => &mut attrs.is_for_compensation,
            (_, ResolveResult::Unbound, "isInterrupting") => &mut attrs.is_interrupting,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    Ok(attrs)
}
