//! The size guards of a parse: the step cap, and the caps the BPMN reader applies while it reads.

use serde::Serialize;

/// Guards applied while parsing, so oversized documents are refused before any analysis.
///
/// The `max_xml_*` caps apply to [`bpmn::parse`](crate::bpmn::parse) only and are enforced while
/// the XML is read, tag by tag, before anything of the offending tag is resolved or stored; a
/// document over one of them gets a single [`ProblemKind::TooLarge`] problem naming the limit,
/// its cap and the line, column and byte offset where it was exceeded.
///
/// [`ProblemKind::TooLarge`]: crate::ProblemKind::TooLarge
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most steps one workflow may have; more is reported as
    /// [`ProblemKind::TooLarge`](crate::ProblemKind::TooLarge).
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
