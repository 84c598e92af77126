//! Health score and grade: a fixed penalty per finding, so a score is explainable by its findings.

use crate::{Finding, Grade, Severity};

pub(crate) const fn weight(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 25,
        Severity::High => 10,
        Severity::Medium => 5,
        Severity::Low => 2,
        Severity::Info => 0,
    }
}

pub(crate) fn health_score(findings: &[Finding]) -> u8 {
    // Saturating: a workflow with millions of findings must not wrap around to a good score.
    let penalty = findings
        .iter()
        .fold(0u32, |sum, f| sum.saturating_add(weight(f.severity)));
    u8::try_from(100u32.saturating_sub(penalty)).unwrap_or(0)
}

pub(crate) const fn grade(score: u8) -> Grade {
    match score {
        90.. => Grade::Excellent,
        75.. => Grade::Good,
        50.. => Grade::Fair,
        25.. => Grade::HighRisk,
        _ => Grade::Critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity) -> Finding {
        Finding {
            rule: "test",
            severity,
            title: "test",
            message: String::new(),
            step_id: None,
            suggestion: String::new(),
        }
    }

    #[test]
    fn score_subtracts_weights_and_floors_at_zero() {
        assert_eq!(health_score(&[]), 100);
        let mixed = [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ]
        .map(finding);
        assert_eq!(health_score(&mixed), 100 - 25 - 10 - 5 - 2);
        assert_eq!(health_score(&[Severity::Critical; 4].map(finding)), 0);
        assert_eq!(health_score(&[Severity::Critical; 5].map(finding)), 0);
    }

    #[test]
    fn grade_boundaries() {
        let cases = [
            (100, Grade::Excellent),
            (90, Grade::Excellent),
            (89, Grade::Good),
            (75, Grade::Good),
            (74, Grade::Fair),
            (50, Grade::Fair),
            (49, Grade::HighRisk),
            (25, Grade::HighRisk),
            (24, Grade::Critical),
            (0, Grade::Critical),
        ];
        for (score, expected) in cases {
            assert_eq!(grade(score), expected, "{score}");
        }
    }
}
