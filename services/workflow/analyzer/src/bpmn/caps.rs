//! The reader caps of [`Limits`] (`max_xml_*`), applied to each start tag before any of its
//! namespace declarations is bound or any attribute kept.

use quick_xml::events::BytesStart;

use super::reader::Stop;
use crate::model::Limits;

/// What the reader has seen so far, against the caps of [`Limits`].
#[derive(Default)]
pub(super) struct Counts {
    elements: usize,
    namespaces: usize,
}

/// Applies the reader caps to one start tag at byte `at`, at nesting `depth`, before any of its
/// declarations is bound or any attribute kept. Attributes are walked one at a time and the walk
/// stops at the first one over a cap, so beyond quick-xml's byte scan for the end of the tag, a
/// tag with a million attributes costs what one with a cap's worth does. Malformed attributes
/// end the walk too; [`read_attrs`](super::namespace::read_attrs) reports them.
pub(super) fn check_caps(
    text: &str,
    at: usize,
    element: &BytesStart<'_>,
    depth: usize,
    limits: &Limits,
    counts: &mut Counts,
) -> Result<(), Stop> {
    counts.elements += 1;
    if counts.elements > limits.max_xml_elements {
        return Err(Stop::cap(
            at,
            "maxXmlElements",
            limits.max_xml_elements,
            format!("more than {} elements in the document", limits.max_xml_elements),
        ));
    }
    if depth > limits.max_xml_depth {
        return Err(Stop::cap(
            at,
            "maxXmlDepth",
            limits.max_xml_depth,
            format!("elements nested more than {} deep", limits.max_xml_depth),
        ));
    }
    for (n, attribute) in element.attributes().enumerate() {
        let Ok(attribute) = attribute else { break };
        let key = attribute.key.as_ref();
        let here = offset_in(text, key).unwrap_or(at);
        if key == "xmlns" || key.starts_with("xmlns:") {
            counts.namespaces += 1;
            if counts.namespaces > limits.max_xml_namespaces {
                return Err(Stop::cap(
                    here,
                    "maxXmlNamespaces",
                    limits.max_xml_namespaces,
                    format!(
                        "more than {} namespace declarations (xmlns, xmlns:prefix) in the document",
                        limits.max_xml_namespaces
                    ),
                ));
            }
        }
        if n >= limits.max_xml_attributes {
            return Err(Stop::cap(
                here,
                "maxXmlAttributes",
                limits.max_xml_attributes,
                format!("more than {} attributes on one element", limits.max_xml_attributes),
            ));
        }
    }
    Ok(())
}

/// Byte offset of `part` in `text` when it is a slice of it (events of a reader over a `&str`
/// borrow from it); an address comparison, nothing is dereferenced.
fn offset_in(text: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    (start.checked_add(part.len())? <= text.len()).then_some(start)
}
