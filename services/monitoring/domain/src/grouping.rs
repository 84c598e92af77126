//! Which events are "the same error": grouping compatible with Sentry's default strategy for
//! server platforms, so a team moving from Sentry sees the groups it knows.
//!
//! In order of precedence:
//! 1. A custom `fingerprint` wins; `{{ default }}` in it expands to the parts computed below,
//!    `{{ type }}`, `{{ message }}` and `{{ transaction }}` to those values.
//! 2. Else the exceptions (a chain in order), each contributing its stack trace and its type;
//!    its value only when no frame contributes. Of a trace, the in-app frames contribute when
//!    there are any, else all frames. A frame contributes its module (or, without one, the
//!    lower-cased base name of its file), its function and its whitespace-collapsed context
//!    line; never its line number, so the same error on another line of the same code, or
//!    from a new release that moved it, stays in its group.
//! 3. Else the message template (`logentry.message` before `logentry.formatted`) with
//!    the variable parts (numbers, UUIDs, hex, IPs, e-mails, URLs, dates) replaced by
//!    placeholders.
//!
//! A frame is in-app when its SDK says `in_app: true` and its path is not under a directory
//! of third-party code (`site-packages`, `dist-packages`, `vendor`, `node_modules`); unset
//! means not in-app.

use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

/// Longest context line that contributes (longer ones are minified or generated code).
const MAX_CONTEXT_LINE: usize = 120;

/// One stack frame, as the SDKs report it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// `module` (Python, Java) or `None`.
    pub module: Option<String>,
    /// `filename`, else `abs_path`.
    pub filename: Option<String>,
    /// `function`.
    pub function: Option<String>,
    /// `context_line`.
    pub context_line: Option<String>,
    /// `in_app` as the SDK set it.
    pub in_app: Option<bool>,
    /// `lineno` (shown, never grouped on).
    pub lineno: Option<u32>,
}

/// One exception of a chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exception {
    /// `type`, e.g. `ZeroDivisionError`.
    pub kind: Option<String>,
    /// `value`, e.g. `division by zero`.
    pub value: Option<String>,
    /// `stacktrace.frames`, oldest call first (as Sentry sends them).
    pub frames: Vec<Frame>,
}

/// What grouping reads of an event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Groupable {
    /// `fingerprint`.
    pub fingerprint: Option<Vec<String>>,
    /// `exception.values` (or the native ingest's single exception).
    pub exceptions: Vec<Exception>,
    /// `logentry.message`, else `logentry.formatted`, else `message`.
    pub message: Option<String>,
    /// `transaction`.
    pub transaction: Option<String>,
}

/// An event's group: the hash and the parts it was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// 32 hex characters.
    pub hash: String,
    /// What contributed, in order (for "why are these grouped" and for tests).
    pub parts: Vec<String>,
}

/// Is this frame the application's own code?
pub fn in_app(frame: &Frame) -> bool {
    frame.in_app == Some(true) && !frame.filename.as_deref().is_some_and(third_party)
}

fn third_party(path: &str) -> bool {
    path.split(['/', '\\'])
        .any(|dir| matches!(dir, "site-packages" | "dist-packages" | "vendor" | "node_modules"))
}

/// The base name of a path, lower-cased.
fn basename(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_lowercase()
}

/// Runs of whitespace as one space, trimmed.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// What one frame contributes (empty when nothing).
fn frame_parts(frame: &Frame) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(module) = nonempty(&frame.module) {
        parts.push(format!("module:{module}"));
    } else if let Some(file) = nonempty(&frame.filename) {
        parts.push(format!("filename:{}", basename(file)));
    }
    // `?` and `<anonymous>` are what SDKs write when they do not know.
    if let Some(function) = nonempty(&frame.function).filter(|f| !matches!(*f, "?" | "<anonymous>")) {
        parts.push(format!("function:{function}"));
    }
    if let Some(line) = frame.context_line.as_deref().map(collapse)
        && !line.is_empty()
        && line.len() <= MAX_CONTEXT_LINE
    {
        parts.push(format!("context-line:{line}"));
    }
    parts
}

/// What a stack trace contributes: its in-app frames when there are any, else all of them.
fn stack_parts(frames: &[Frame]) -> Vec<String> {
    let any_app = frames.iter().any(in_app);
    frames
        .iter()
        .filter(|f| !any_app || in_app(f))
        .flat_map(frame_parts)
        .collect()
}

/// The parts computed without a custom fingerprint.
pub fn default_parts(event: &Groupable) -> Vec<String> {
    if !event.exceptions.is_empty() {
        let mut parts = Vec::new();
        for exception in &event.exceptions {
            let stack = stack_parts(&exception.frames);
            let has_stack = !stack.is_empty();
            parts.extend(stack);
            if let Some(kind) = nonempty(&exception.kind) {
                parts.push(format!("type:{kind}"));
            }
            if !has_stack && let Some(value) = nonempty(&exception.value) {
                parts.push(format!("value:{}", parameterize(value)));
            }
        }
        if !parts.is_empty() {
            return parts;
        }
    }
    match nonempty(&event.message) {
        Some(message) => vec![format!("message:{}", parameterize(message))],
        None => vec!["message:".to_string()],
    }
}

/// The event's group.
pub fn group(event: &Groupable) -> Grouping {
    let parts = match event.fingerprint.as_deref().filter(|f| !f.is_empty()) {
        Some(fingerprint) => {
            let mut parts = Vec::new();
            for entry in fingerprint {
                match entry.trim() {
                    "{{ default }}" | "{{default}}" => parts.extend(default_parts(event)),
                    "{{ type }}" | "{{type}}" => parts.push(format!(
                        "type:{}",
                        event.exceptions.last().and_then(|e| nonempty(&e.kind)).unwrap_or("")
                    )),
                    "{{ message }}" | "{{message}}" => parts.push(format!(
                        "message:{}",
                        nonempty(&event.message).map(parameterize).unwrap_or_default()
                    )),
                    "{{ transaction }}" | "{{transaction}}" => {
                        parts.push(format!("transaction:{}", nonempty(&event.transaction).unwrap_or("")))
                    }
                    _ => parts.push(format!("fingerprint:{entry}")),
                }
            }
            parts
        }
        None => default_parts(event),
    };
    let mut hasher = Sha256::new();
    for part in &parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    Grouping {
        hash: hex::encode(&digest[..16]),
        parts,
    }
}

struct Placeholder {
    pattern: Regex,
    with: &'static str,
}

/// Most specific first: an e-mail holds what looks like a host, a URL an IP, a date numbers.
static PLACEHOLDERS: LazyLock<Vec<Placeholder>> = LazyLock::new(|| {
    [
        (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", "<email>"),
        (r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\x22<>]+", "<url>"),
        (
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            "<uuid>",
        ),
        (
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+\-]\d{2}:?\d{2})?)?\b",
            "<date>",
        ),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b", "<date>"),
        (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "<ip>"),
        (r"(?i)\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{1,4}\b", "<ip>"),
        (r"\b0[xX][0-9a-fA-F]+\b", "<hex>"),
        // Digests and ids: eight or more hex digits mixing digits and letters (see below).
        (r"\b[0-9a-fA-F]{8,}\b", HEX_RUN),
        (r"\b\d+\.\d+\b", "<float>"),
        (r"\b\d+\b", "<int>"),
    ]
    .into_iter()
    .filter_map(|(pattern, with)| Regex::new(pattern).ok().map(|pattern| Placeholder { pattern, with }))
    .collect()
});

/// Marks the pattern whose matches become `<hex>` only when they mix digits and letters (a
/// run of digits alone is a number, of letters alone a word).
const HEX_RUN: &str = "<hex-run>";

/// Replaces the variable parts of a message by placeholders, so `user 41 not found` and
/// `user 7 not found` are one message.
pub fn parameterize(message: &str) -> String {
    let mut out = message.to_string();
    for p in PLACEHOLDERS.iter() {
        if !p.pattern.is_match(&out) {
            continue;
        }
        out = if p.with == HEX_RUN {
            p.pattern
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    let run = &c[0];
                    let mixed = run.bytes().any(|b| b.is_ascii_digit()) && run.bytes().any(|b| b.is_ascii_alphabetic());
                    if mixed { "<hex>".to_string() } else { run.to_string() }
                })
                .into_owned()
        } else {
            p.pattern.replace_all(&out, p.with).into_owned()
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, function: &str, line: &str, app: bool) -> Frame {
        Frame {
            module: Some(module.into()),
            filename: Some(format!("/srv/app/{}.py", module.replace('.', "/"))),
            function: Some(function.into()),
            context_line: Some(line.into()),
            in_app: Some(app),
            lineno: Some(10),
        }
    }

    fn error(kind: &str, value: &str, frames: Vec<Frame>) -> Groupable {
        Groupable {
            exceptions: vec![Exception {
                kind: Some(kind.into()),
                value: Some(value.into()),
                frames,
            }],
            ..Groupable::default()
        }
    }

    #[test]
    fn the_same_stack_with_different_values_and_lines_is_one_group() {
        let a = error(
            "KeyError",
            "'user-41'",
            vec![frame("app.views", "show", "return users[uid]", true)],
        );
        let mut moved = frame("app.views", "show", "    return   users[uid]  ", true);
        moved.lineno = Some(99);
        let b = error("KeyError", "'order-7'", vec![moved]);
        assert_eq!(group(&a), group(&b));
        assert!(
            !group(&a).parts.iter().any(|p| p.starts_with("value:")),
            "{:?}",
            group(&a).parts
        );
    }

    #[test]
    fn different_in_app_stacks_are_two_groups_and_library_frames_do_not_count() {
        let lib = |f: &str| Frame {
            filename: Some("/usr/lib/python3/site-packages/requests/api.py".into()),
            ..frame("requests.api", f, "raise", true)
        };
        let a = error("ValueError", "x", vec![lib("get"), frame("app.a", "one", "f()", true)]);
        let b = error("ValueError", "x", vec![lib("post"), frame("app.b", "two", "g()", true)]);
        assert_ne!(group(&a).hash, group(&b).hash);
        // Only the library frame differs: the same group.
        let c = error("ValueError", "x", vec![lib("post"), frame("app.a", "one", "f()", true)]);
        assert_eq!(group(&a).hash, group(&c).hash);
        assert!(!in_app(&lib("get")));
    }

    #[test]
    fn without_in_app_frames_every_frame_counts_and_without_frames_the_value_does() {
        let a = error("OSError", "x", vec![frame("lib.a", "f", "", false)]);
        let b = error("OSError", "x", vec![frame("lib.b", "f", "", false)]);
        assert_ne!(group(&a).hash, group(&b).hash);
        let unset = Frame {
            in_app: None,
            ..frame("app.c", "f", "", true)
        };
        assert!(!in_app(&unset));
        let bare_a = error("OSError", "disk 3 full", vec![]);
        let bare_b = error("OSError", "disk 4 full", vec![]);
        let bare_c = error("OSError", "permission denied", vec![]);
        assert_eq!(group(&bare_a).hash, group(&bare_b).hash);
        assert_ne!(group(&bare_a).hash, group(&bare_c).hash);
        assert_eq!(group(&bare_a).parts, vec!["type:OSError", "value:disk <int> full"]);
    }

    #[test]
    fn a_frame_without_module_uses_the_file_base_name_lower_cased() {
        let f = Frame {
            filename: Some("src/Components/Cart.JSX".into()),
            function: Some("render".into()),
            in_app: Some(true),
            ..Frame::default()
        };
        assert_eq!(frame_parts(&f), vec!["filename:cart.jsx", "function:render"]);
    }

    #[test]
    fn messages_group_by_their_template() {
        let msg = |m: &str| Groupable {
            message: Some(m.into()),
            ..Groupable::default()
        };
        assert_eq!(
            group(&msg("order 1234 failed for ana@example.com")).hash,
            group(&msg("order 99 failed for bo@example.org")).hash
        );
        assert_ne!(group(&msg("order 1 failed")).hash, group(&msg("order 1 shipped")).hash);
        for (input, expected) in [
            (
                "GET https://api.example.com/v1/x?id=3 took 1.5 s",
                "GET <url> took <float> s",
            ),
            (
                "request 0b4c8f0e-9a7d-4a7e-8f53-3f1f2b1c9d10 from 10.0.0.12",
                "request <uuid> from <ip>",
            ),
            ("at 2026-12-02T01:02:03Z and 01:02:03", "at <date> and <date>"),
            (
                "pointer 0xdeadBEEF, digest 9f86d081884c7d65",
                "pointer <hex>, digest <hex>",
            ),
            ("peer fe80::1ff:fe23:4567:890a left", "peer <ip> left"),
            ("nothing variable here", "nothing variable here"),
        ] {
            assert_eq!(parameterize(input), expected, "{input}");
        }
    }

    #[test]
    fn a_custom_fingerprint_wins_and_default_expands() {
        let mut a = error("DbError", "timeout", vec![frame("app.db", "q", "run()", true)]);
        let mut b = error("HttpError", "502", vec![frame("app.http", "get", "send()", true)]);
        a.fingerprint = Some(vec!["database-unavailable".into()]);
        b.fingerprint = Some(vec!["database-unavailable".into()]);
        assert_eq!(group(&a).hash, group(&b).hash);
        a.fingerprint = Some(vec!["{{ default }}".into(), "tenant-1".into()]);
        let plain = group(&error("DbError", "timeout", vec![frame("app.db", "q", "run()", true)]));
        let with = group(&a);
        assert_eq!(&with.parts[..plain.parts.len()], &plain.parts[..]);
        assert_eq!(with.parts.last().map(String::as_str), Some("fingerprint:tenant-1"));
        assert_eq!(with.hash.len(), 32);
    }

    #[test]
    fn a_chain_contributes_every_exception() {
        let one = error("KeyError", "a", vec![frame("app.x", "f", "d[k]", true)]);
        let mut chained = one.clone();
        chained.exceptions.push(Exception {
            kind: Some("RuntimeError".into()),
            value: Some("wrapped".into()),
            frames: vec![frame("app.y", "g", "raise RuntimeError", true)],
        });
        assert_ne!(group(&one).hash, group(&chained).hash);
    }
}
