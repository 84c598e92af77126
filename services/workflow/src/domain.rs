//! The service's rules, without I/O: what each tier sees, the hourly quota window, the content
//! hash results are cached by, and history cursors.

use portico_proto::workflow::v1 as pb;
use portico_workflow_analyzer::{Analysis, Workflow};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Findings a free caller sees.
pub const FREE_VISIBLE_FINDINGS: usize = 3;

/// Length of a quota window.
pub const HOUR_MS: i64 = 3_600_000;

/// Bumped whenever the analyser's output for a given workflow may change, so cached results
/// from an older analyser are not served.
pub const RESULT_VERSION: &str = concat!("r2-", env!("CARGO_PKG_VERSION"));

/// A plan tier, as the gateway reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    /// From the wire; an unset tier is treated as free.
    pub fn from_proto(value: i32) -> Tier {
        match pb::Tier::try_from(value).unwrap_or(pb::Tier::Free) {
            pb::Tier::Pro => Tier::Pro,
            pb::Tier::Enterprise => Tier::Enterprise,
            pb::Tier::Free | pb::Tier::Unspecified => Tier::Free,
        }
    }
}

/// Analyses per hour by tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// `PORTICO_QUOTA_ANALYSES_FREE_PER_HOUR` (default 10).
    pub free: u32,
    /// `PORTICO_QUOTA_ANALYSES_PRO_PER_HOUR` (default 100).
    pub pro: u32,
    /// `PORTICO_QUOTA_ANALYSES_ENTERPRISE_PER_HOUR` (default 1000).
    pub enterprise: u32,
}

impl Quotas {
    /// The hourly allowance of `tier`.
    pub fn for_tier(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }
}

/// The clock hour `now_ms` falls in: `(start, end)` in Unix milliseconds.
pub fn window(now_ms: i64) -> (i64, i64) {
    let start = now_ms - now_ms.rem_euclid(HOUR_MS);
    (start, start + HOUR_MS)
}

/// Whole seconds until `end`, at least 1 (for `Retry-After`).
pub fn retry_after_secs(now_ms: i64, end_ms: i64) -> u64 {
    u64::try_from((end_ms - now_ms + 999) / 1000).unwrap_or(1).max(1)
}

/// SHA-256 (hex) of the canonical form of what the analyser reads: triggers and steps in the
/// model's field order, object keys sorted (serde_json's map is ordered by key), no
/// insignificant whitespace. Display name and description do not change the findings and are
/// left out, so renaming a workflow still hits the cache. Serialised straight from the typed
/// model into the hasher, with no intermediate copy.
pub fn content_hash(workflow: &Workflow) -> String {
    let mut hasher = HashWriter(Sha256::new());
    hasher.0.update(RESULT_VERSION.as_bytes());
    hasher.0.update([0]);
    // Writing into a hasher cannot fail, and the model holds nothing unserialisable.
    // The findings a BPMN document comes with (bpmnlint's rules) are part of the result too.
    let _ = serde_json::to_writer(&mut hasher, &(&workflow.triggers, &workflow.steps, &workflow.findings));
    hex::encode(hasher.0.finalize())
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One finding as stored and cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFinding {
    pub rule: String,
    pub severity: String,
    pub title: String,
    pub message: String,
    pub step_id: Option<String>,
    pub suggestion: String,
}

/// The analyser's full result, as stored in history and in the result cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Computed {
    pub health_score: u8,
    pub grade: String,
    pub issues: Vec<StoredFinding>,
    pub steps: u32,
    pub triggers: u32,
    pub branches: u32,
    pub max_depth: u32,
}

impl From<Analysis> for Computed {
    fn from(a: Analysis) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Computed {
            health_score: a.health_score,
            grade: a.grade.as_str().to_string(),
            issues: a
                .issues
                .into_iter()
                .map(|f| StoredFinding {
                    rule: f.rule.to_string(),
                    severity: f.severity.as_str().to_string(),
                    title: f.title.to_string(),
                    message: f.message,
                    step_id: f.step_id,
                    suggestion: f.suggestion,
                })
                .collect(),
            steps: count(a.stats.steps),
            triggers: count(a.stats.triggers),
            branches: count(a.stats.branches),
            max_depth: count(a.stats.max_depth),
        }
    }
}

/// The wire form of a stored severity.
pub fn severity_to_proto(name: &str) -> pb::Severity {
    match name {
        "critical" => pb::Severity::Critical,
        "high" => pb::Severity::High,
        "medium" => pb::Severity::Medium,
        "low" => pb::Severity::Low,
        "info" => pb::Severity::Info,
        _ => pb::Severity::Unspecified,
    }
}

/// What `tier` may see of a result: the findings shown, the count hidden, and the upgrade
/// prompt for free callers. Findings are stored most severe first, so the first ones shown to
/// a free caller are the most severe.
pub fn gate(tier: Tier, computed: &Computed, quotas: &Quotas) -> (Vec<pb::Finding>, u32, Option<pb::Upgrade>) {
    let shown = match tier {
        Tier::Free => FREE_VISIBLE_FINDINGS.min(computed.issues.len()),
        Tier::Pro | Tier::Enterprise => computed.issues.len(),
    };
    let issues = computed.issues[..shown]
        .iter()
        .map(|f| pb::Finding {
            rule: f.rule.clone(),
            severity: severity_to_proto(&f.severity) as i32,
            title: f.title.clone(),
            message: f.message.clone(),
            step_id: f.step_id.clone(),
            suggestion: f.suggestion.clone(),
        })
        .collect();
    let hidden = u32::try_from(computed.issues.len() - shown).unwrap_or(u32::MAX);
    let upgrade = (tier == Tier::Free).then(|| pb::Upgrade {
        plan: "pro".to_string(),
        message: if hidden > 0 {
            format!(
                "{hidden} more finding{} hidden on the free plan. Pro shows every finding with its fix and allows {} analyses per hour (free: {}).",
                if hidden == 1 { " is" } else { "s are" },
                quotas.pro,
                quotas.free
            )
        } else {
            format!(
                "Pro shows every finding with its fix and allows {} analyses per hour (free: {}).",
                quotas.pro, quotas.free
            )
        },
        url: "/v1/billing/plans".to_string(),
    });
    (issues, hidden, upgrade)
}

/// The cursor that continues a history listing after `id`: the id itself (as Stripe's
/// `starting_after`), so any analysis id a client holds is a valid place to resume.
pub fn encode_cursor(id: &str) -> String {
    id.to_string()
}

/// The analysis id a cursor continues after; `None` when it is not an id.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    uuid::Uuid::parse_str(cursor.trim()).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use portico_workflow_analyzer::{Limits, analyze, parse};

    use super::*;

    fn workflow(json: &str) -> Workflow {
        parse(json.as_bytes(), Limits::default()).unwrap()
    }

    #[test]
    fn the_hash_ignores_key_order_whitespace_and_name_but_not_the_graph() {
        let a = workflow(
            r#"{"name":"A","triggers":[{"id":"t","type":"x","next":"s"}],
                "steps":[{"id":"s","type":"webhook","config":{"url":"https://h","retry":{"maxAttempts":3}}}]}"#,
        );
        let b = workflow(
            r#"{"steps":[{"config":{"retry":{"maxAttempts":3},"url":"https://h"},"type":"webhook","id":"s"}],
                "triggers":[{"next":"s","type":"x","id":"t"}],"name":"B"}"#,
        );
        let c = workflow(
            r#"{"triggers":[{"id":"t","type":"x","next":"s"}],
                "steps":[{"id":"s","type":"webhook","config":{"url":"http://h","retry":{"maxAttempts":3}}}]}"#,
        );
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(content_hash(&a).len(), 64);
    }

    #[test]
    fn windows_are_clock_hours_and_retry_after_rounds_up() {
        assert_eq!(window(HOUR_MS * 5 + 17), (HOUR_MS * 5, HOUR_MS * 6));
        assert_eq!(window(HOUR_MS * 5), (HOUR_MS * 5, HOUR_MS * 6));
        assert_eq!(retry_after_secs(HOUR_MS * 6 - 1500, HOUR_MS * 6), 2);
        assert_eq!(retry_after_secs(HOUR_MS * 6, HOUR_MS * 6), 1);
    }

    fn computed(n: usize) -> Computed {
        let mut steps = String::new();
        for i in 0..n {
            // Only s0 is reachable: one unreachable-step finding per other step.
            steps.push_str(&format!(r#"{{"id":"s{i}","type":"add_tag","config":{{"tag":"x"}}}},"#));
        }
        let json = format!(
            r#"{{"triggers":[{{"id":"t","type":"x","next":"s0"}}],"steps":[{}]}}"#,
            steps.trim_end_matches(',')
        );
        analyze(&workflow(&json)).into()
    }

    #[test]
    fn free_callers_see_the_three_most_severe_and_a_count_of_the_rest() {
        let c = computed(5);
        let total = c.issues.len();
        assert!(total > 3, "{total}");
        let quotas = Quotas {
            free: 10,
            pro: 100,
            enterprise: 1000,
        };
        let (shown, hidden, upgrade) = gate(Tier::Free, &c, &quotas);
        assert_eq!(shown.len(), 3);
        assert_eq!(hidden as usize, total - 3);
        assert_eq!(shown[0].rule, c.issues[0].rule);
        assert_eq!(shown[0].severity, severity_to_proto(&c.issues[0].severity) as i32);
        let upgrade = upgrade.unwrap();
        assert_eq!(upgrade.plan, "pro");
        assert!(upgrade.message.contains("100 analyses per hour"), "{}", upgrade.message);
        for tier in [Tier::Pro, Tier::Enterprise] {
            let (shown, hidden, upgrade) = gate(tier, &c, &quotas);
            assert_eq!((shown.len(), hidden), (total, 0));
            assert!(upgrade.is_none());
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_foreign_values() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(decode_cursor(&encode_cursor(&id)), Some(id));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(&encode_cursor("'; drop table analyses; --")), None);
    }
}
