//! `portico analyze FILE.json`: the workflow analyser for a customer's CI.

use std::{path::Path, process::ExitCode};

use portico_workflow_analyzer::{Limits, ProblemKind, Severity, analyze, parse};

/// Analyses `file`; exit 1 on a critical finding, 2 on unusable input.
pub fn run(file: &Path, json: bool, max_steps: usize) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let workflow = match parse(&bytes, Limits::for_steps(max_steps)) {
        Ok(w) => w,
        Err(problems) => {
            for p in &problems {
                let kind = match p.kind {
                    ProblemKind::Syntax => "syntax",
                    ProblemKind::Schema => "invalid",
                    ProblemKind::TooLarge => "too large",
                };
                let at = if p.pointer.is_empty() { "/" } else { p.pointer.as_str() };
                eprintln!("{}: {kind} at {at}: {}", file.display(), p.message);
            }
            return Ok(ExitCode::from(2));
        }
    };
    let analysis = analyze(&workflow);
    if json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    } else {
        println!(
            "{}: health {}/100 ({})",
            file.display(),
            analysis.health_score,
            analysis.grade
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
    let critical = analysis.issues.iter().any(|f| f.severity == Severity::Critical);
    Ok(if critical { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("portico-analyze-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn exit_codes_tell_ci_what_happened() {
        let clean = file(
            "clean.json",
            r#"{"name": "ok", "triggers": [{"id": "t", "type": "signup", "next": "a"}],
                "steps": [{"id": "a", "type": "add_tag", "config": {"tag": "new"}, "next": null}]}"#,
        );
        assert_eq!(run(&clean, false, 5000).unwrap(), ExitCode::SUCCESS);
        let critical = file(
            "critical.json",
            r#"{"name": "no trigger", "triggers": [], "steps": []}"#,
        );
        assert_eq!(run(&critical, true, 5000).unwrap(), ExitCode::FAILURE);
        let broken = file("broken.json", "{not json");
        assert_eq!(run(&broken, false, 5000).unwrap(), ExitCode::from(2));
        assert_eq!(
            run(Path::new("/nonexistent/workflow.json"), false, 5000).unwrap(),
            ExitCode::from(2)
        );
    }
}
