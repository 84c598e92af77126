//! Reading: one streaming pass that checks well-formedness and keeps only what the mapping needs.
//!
//! It strips a byte-order mark, requires UTF-8, refuses a DTD, expands only the predefined
//! entities and character references, and gathers the text of the elements whose text the
//! mapping reads; a problem that stops the pass is located by line, column and byte offset.

use std::fmt;

use quick_xml::events::{BytesRef, Event};
use quick_xml::name::NamespaceResolver;
use quick_xml::reader::Reader;

use super::caps::{Counts, check_caps};
use super::document::Document;
use super::tree::{Frame, close, open};
use crate::model::{InputProblem, Limits, ProblemKind};

/// A problem that stops reading, located by byte offset.
pub(super) struct Stop {
    kind: ProblemKind,
    at: usize,
    message: String,
}

impl Stop {
    /// Not well-formed (or not acceptable) XML.
    fn new(at: usize, message: impl fmt::Display) -> Self {
        Self {
            kind: ProblemKind::Syntax,
            at,
            message: message.to_string(),
        }
    }

    /// Over one of the reader caps of [`Limits`], named as it serialises.
    pub(super) fn cap(at: usize, limit: &str, cap: usize, what: impl fmt::Display) -> Self {
        Self {
            kind: ProblemKind::TooLarge,
            at,
            message: format!("over the limit {limit} = {cap}: {what}"),
        }
    }
}

pub(super) fn read(xml: &[u8], limits: &Limits) -> Result<Document, InputProblem> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (skipped, body) = match xml.strip_prefix(BOM) {
        Some(body) => (BOM.len(), body),
        None => (0, xml),
    };
    let located = |stop: Stop| located_problem(stop.kind, xml, stop.at.saturating_add(skipped), &stop.message);
    let text = std::str::from_utf8(body).map_err(|err| located(Stop::new(err.valid_up_to(), "not UTF-8 text")))?;
    read_events(text, limits).map_err(located)
}

fn read_events(text: &str, limits: &Limits) -> Result<Document, Stop> {
    // A plain reader and a resolver of our own, rather than quick-xml's `NsReader`: that one
    // binds every declaration of a tag before handing the tag over, so the caps could only be
    // checked after the work they are meant to prevent.
    let mut reader = Reader::from_str(text);
    reader.config_mut().enable_all_checks(true);
    let mut resolver = NamespaceResolver::default();
    // In scope never exceeds the document's total, so our own cap always speaks first.
    resolver.set_max_namespace_bindings(limits.max_xml_namespaces);
    let mut counts = Counts::default();
    let mut document = Document::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut seen_root = false;
    let mut captured = String::new();
    let mut capture_level: Option<usize> = None;
    loop {
        let at = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|err| Stop::new(offset(reader.error_position()), format!("not well-formed XML: {err}")))?;
        // Text of a capturing element includes the text of its descendants.
        let capturing = capture_level.is_some();
        match event {
            Event::Start(ref element) | Event::Empty(ref element) => {
                if stack.is_empty() {
                    if seen_root {
                        return Err(Stop::new(at, "not well-formed XML: content after the root element"));
                    }
                    seen_root = true;
                }
                check_caps(text, at, element, stack.len() + 1, limits, &mut counts)?;
                resolver
                    .push(element)
                    .map_err(|err| Stop::new(at, format!("not well-formed XML: {err}")))?;
                let frame = open(&resolver, element, stack.last().copied(), &mut document, &mut captured)
                    .map_err(|message| Stop::new(at, message))?;
                if matches!(event, Event::Empty(_)) {
                    resolver.pop();
                    close(frame, &mut document, &mut captured);
                } else {
                    if frame.captures_text() {
                        capture_level = Some(stack.len());
                    }
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                if let Some(frame) = stack.pop() {
                    resolver.pop();
                    if capture_level == Some(stack.len()) {
                        capture_level = None;
                    }
                    close(frame, &mut document, &mut captured);
                }
            }
            Event::Text(content) => {
                let content = content.xml10_content();
                if stack.is_empty() && !content.trim_matches(is_xml_space).is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: text outside the root element"));
                }
                if capturing {
                    captured.push_str(&content);
                }
            }
            Event::CData(content) => {
                if stack.is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: CDATA outside the root element"));
                }
                if capturing {
                    captured.push_str(&content.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let c = resolve_reference(&reference).map_err(|message| Stop::new(at, message))?;
                if stack.is_empty() {
                    return Err(Stop::new(at, "not well-formed XML: text outside the root element"));
                }
                if capturing {
                    captured.push(c);
                }
            }
            Event::DocType(_) => {
                return Err(Stop::new(
                    at,
                    "DOCTYPE declarations are not accepted: BPMN needs no DTD, and entities are never expanded",
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(Stop::new(
            text.len(),
            format!(
                "not well-formed XML: input ends with {} element(s) not closed",
                stack.len()
            ),
        ));
    }
    if !seen_root {
        return Err(Stop::new(text.len(), "not well-formed XML: no root element"));
    }
    Ok(document)
}

fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

pub(super) fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The character an entity or character reference stands for; only the five predefined entities
/// exist, since DTDs are refused.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, String> {
    let bad = || {
        format!(
            "not well-formed XML: undefined entity or bad character reference \"&{};\"",
            &**reference
        )
    };
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            _ => Err(bad()),
        };
    }
    match &**reference {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(bad()),
    }
}

/// A problem at a byte offset of the original input, with line and column (in characters).
fn located_problem(kind: ProblemKind, input: &[u8], at: usize, message: &str) -> InputProblem {
    let at = at.min(input.len());
    let before = input.get(..at).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |s| s.iter().filter(|&&b| b & 0xC0 != 0x80).count())
        + 1;
    InputProblem {
        kind,
        pointer: String::new(),
        message: format!("{message} (line {line}, column {column}, byte {at})"),
    }
}
