//! `portico analyze FILE...`: the workflow analyser for a customer's CI. Reads JSON workflows
//! and BPMN 2.0 diagrams (by extension, `.json` or `.bpmn`/`.xml`, else by sniffing the first
//! byte), prints the findings as text, JSON or SARIF 2.1.0, and exits 2 when some file could not
//! be analysed, else 1 when some finding is critical, else 0.

use std::{path::PathBuf, process::ExitCode};

use clap::ValueEnum;
use portico_workflow_analyzer::{Analysis, InputProblem, Limits, ProblemKind, Severity, analyze, bpmn, parse, sarif};
use serde_json::json;

/// How the findings are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding, with its fix.
    Text,
    /// The analysis as JSON (one object for one file, else one entry per file).
    Json,
    /// A SARIF 2.1.0 log, for GitHub code scanning and other SARIF viewers.
    Sarif,
}

/// What one file gave.
struct Outcome {
    name: String,
    text: Vec<u8>,
    result: Result<Analysis, Vec<InputProblem>>,
}

/// Analyses `files` and prints the findings in `format`.
pub fn run(files: &[PathBuf], format: Format, max_steps: usize) -> anyhow::Result<ExitCode> {
    let limits = Limits::for_steps(max_steps);
    let outcomes: Vec<Outcome> = files.iter().map(|file| analyse(file, limits)).collect();
    match format {
        Format::Text => print_text(&outcomes),
        Format::Json => print_json(&outcomes)?,
        Format::Sarif => {
            let sources: Vec<sarif::Source<'_>> = outcomes
                .iter()
                .map(|o| sarif::Source {
                    uri: &o.name,
                    text: &o.text,
                    outcome: o.result.as_ref().map_err(Vec::as_slice),
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&sarif::log(&sources, env!("CARGO_PKG_VERSION")))?
            );
        }
    }
    if format != Format::Text {
        // Machine-readable output goes to stdout whole; say on stderr what was not analysed.
        for outcome in &outcomes {
            if let Err(problems) = &outcome.result {
                print_problems(&outcome.name, problems);
            }
        }
    }
    let unusable = outcomes.iter().any(|o| o.result.is_err());
    let critical = outcomes.iter().any(|o| {
        o.result
            .as_ref()
            .is_ok_and(|a| a.issues.iter().any(|f| f.severity == Severity::Critical))
    });
    Ok(if unusable {
        ExitCode::from(2)
    } else if critical {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn analyse(file: &std::path::Path, limits: Limits) -> Outcome {
    let name = file.display().to_string();
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(e) => {
            let problem = InputProblem {
                kind: ProblemKind::Syntax,
                pointer: String::new(),
                message: format!("cannot read the file: {e}"),
            };
            return Outcome {
                name,
                text: Vec::new(),
                result: Err(vec![problem]),
            };
        }
    };
    let parsed = if is_bpmn(file, &text) {
        bpmn::parse(&text, limits)
    } else {
        parse(&text, limits)
    };
    Outcome {
        name,
        result: parsed.map(|workflow| analyze(&workflow)),
        text,
    }
}

/// BPMN by extension, else when the first character past a byte-order mark and white space is
/// `<`.
fn is_bpmn(file: &std::path::Path, text: &[u8]) -> bool {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("bpmn" | "bpmn2" | "xml") => true,
        Some("json") => false,
        _ => {
            let body = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
        }
    }
}

fn print_problems(name: &str, problems: &[InputProblem]) {
    for p in problems {
        let kind = match p.kind {
            ProblemKind::Syntax => "syntax",
            ProblemKind::Schema => "invalid",
            ProblemKind::TooLarge => "too large",
        };
        let at = if p.pointer.is_empty() { "/" } else { p.pointer.as_str() };
        eprintln!("{name}: {kind} at {at}: {}", p.message);
    }
}

fn print_text(outcomes: &[Outcome]) {
    for outcome in outcomes {
        let analysis = match &outcome.result {
            Ok(analysis) => analysis,
            Err(problems) => {
                print_problems(&outcome.name, problems);
                continue;
            }
        };
        println!(
            "{}: health {}/100 ({})",
            outcome.name, analysis.health_score, analysis.grade
        );
        for f in &analysis.issues {
            let at = f.step_id.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
            println!(
                "  {:<8} {}{at}: {}",
                f.severity.to_string().to_uppercase(),
                f.rule,
                f.message
            );
            println!("           fix: {}", f.suggestion);
        }
    }
}

fn print_json(outcomes: &[Outcome]) -> anyhow::Result<()> {
    let value = match outcomes {
        [only] => match &only.result {
            Ok(analysis) => serde_json::to_value(analysis)?,
            Err(problems) => json!({ "file": only.name, "problems": problems }),
        },
        _ => {
            let entries: Vec<serde_json::Value> = outcomes
                .iter()
                .map(|o| match &o.result {
                    Ok(analysis) => json!({ "file": o.name, "analysis": analysis }),
                    Err(problems) => json!({ "file": o.name, "problems": problems }),
                })
                .collect();
            serde_json::Value::Array(entries)
        }
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn file(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portico-analyze-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    const CLEAN_BPMN: &str = r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
      <process id="P"><startEvent id="s" name="Start"/><sequenceFlow id="f" sourceRef="s" targetRef="e"/>
      <endEvent id="e" name="End"/></process></definitions>"#;

    #[test]
    fn exit_codes_tell_ci_what_happened() {
        let clean = file(
            "clean.json",
            r#"{"name": "ok", "triggers": [{"id": "t", "type": "signup", "next": "a"}],
                "steps": [{"id": "a", "type": "add_tag", "config": {"tag": "new"}, "next": null}]}"#,
        );
        assert_eq!(
            run(std::slice::from_ref(&clean), Format::Text, 5000).unwrap(),
            ExitCode::SUCCESS
        );
        let critical = file(
            "critical.json",
            r#"{"name": "no trigger", "triggers": [], "steps": []}"#,
        );
        assert_eq!(
            run(std::slice::from_ref(&critical), Format::Json, 5000).unwrap(),
            ExitCode::FAILURE
        );
        let broken = file("broken.json", "{not json");
        assert_eq!(
            run(std::slice::from_ref(&broken), Format::Text, 5000).unwrap(),
            ExitCode::from(2)
        );
        assert_eq!(
            run(&[PathBuf::from("/nonexistent/workflow.json")], Format::Text, 5000).unwrap(),
            ExitCode::from(2)
        );
        // Several files: the worst outcome decides.
        assert_eq!(
            run(&[clean.clone(), critical.clone()], Format::Sarif, 5000).unwrap(),
            ExitCode::FAILURE
        );
        assert_eq!(
            run(&[critical, broken, clean], Format::Json, 5000).unwrap(),
            ExitCode::from(2)
        );
    }

    #[test]
    fn bpmn_is_read_by_extension_or_by_sniffing() {
        let by_extension = file("order.bpmn", CLEAN_BPMN);
        assert_eq!(run(&[by_extension], Format::Text, 5000).unwrap(), ExitCode::SUCCESS);
        let sniffed = file("order.export", &format!("\u{feff}  {CLEAN_BPMN}"));
        assert_eq!(run(&[sniffed], Format::Sarif, 5000).unwrap(), ExitCode::SUCCESS);
        assert!(is_bpmn(Path::new("a.XML"), b"{"));
        assert!(!is_bpmn(Path::new("a.json"), b"<"));
        assert!(!is_bpmn(Path::new("workflow"), b" {\"steps\": []}"));
        // A diagram without a start event has no trigger: critical, exit 1.
        let no_start = file(
            "no-start.bpmn",
            r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="P"><task id="t" name="t"/></process></definitions>"#,
        );
        assert_eq!(run(&[no_start], Format::Text, 5000).unwrap(), ExitCode::FAILURE);
        let doctype = file("evil.bpmn", "<!DOCTYPE x [<!ENTITY a \"b\">]><definitions/>");
        assert_eq!(run(&[doctype], Format::Json, 5000).unwrap(), ExitCode::from(2));
    }
}
