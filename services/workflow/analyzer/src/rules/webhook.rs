//! webhook-no-retry and webhook-insecure-url.
//!
//! A webhook with no usable url at all is reported by webhook-insecure-url: it cannot be called
//! securely, and one rule per concern keeps the catalogue small.

use serde_json::Value;

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const NO_RETRY: RuleInfo = RuleInfo {
    id: "webhook-no-retry",
    severity: Severity::Medium,
    title: "Webhook without retries",
    description: "A webhook without config.retry.maxAttempts of at least 1 loses the call on the first \
                  network error or 5xx.",
    check: check_retry,
};

pub(crate) const INSECURE_URL: RuleInfo = RuleInfo {
    id: "webhook-insecure-url",
    severity: Severity::High,
    title: "Webhook URL is not HTTPS",
    description: "Webhook calls carry contact data; a url whose scheme is not https (compared \
                  case-insensitively), or a missing or malformed url, leaks that data or cannot be called.",
    check: check_url,
};

fn check_retry(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::Webhook) {
        let attempts = step
            .config_value("retry")
            .map(|retry| retry.get("maxAttempts").and_then(Value::as_f64));
        let problem = match attempts {
            None => "has no retry policy".to_owned(),
            Some(None) => "has a retry policy without maxAttempts".to_owned(),
            Some(Some(n)) if n < 1.0 => format!("has retry.maxAttempts {n}, so it never retries"),
            Some(Some(_)) => continue,
        };
        out.push(
            &NO_RETRY,
            Some(i),
            format!("Webhook \"{}\" {problem}", step.id),
            "Set config.retry.maxAttempts to 3 or more.",
        );
    }
}

/// What is wrong with a webhook url, if anything.
enum Url<'a> {
    Missing,
    NotAbsolute(&'a str),
    Insecure(&'a str, &'a str),
    Secure,
}

fn classify(url: Option<&str>) -> Url<'_> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Url::Missing;
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Url::NotAbsolute(url);
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !scheme_ok || host.is_empty() {
        Url::NotAbsolute(url)
    } else if scheme.eq_ignore_ascii_case("https") {
        Url::Secure
    } else {
        Url::Insecure(url, scheme)
    }
}

fn check_url(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::Webhook) {
        let id = &step.id;
        let message = match classify(step.config_str("url")) {
            Url::Secure => continue,
            Url::Missing => format!("Webhook \"{id}\" has no url"),
            Url::NotAbsolute(url) => format!("Webhook \"{id}\" url \"{url}\" is not an absolute URL"),
            Url::Insecure(url, scheme) => format!("Webhook \"{id}\" calls \"{url}\" over {scheme}, not https"),
        };
        out.push(&INSECURE_URL, Some(i), message, "Use an absolute https:// URL.");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::{INSECURE_URL, NO_RETRY};
    use crate::rules::testing::{entered, run, step_ids};

    fn hook(config: Value) -> Value {
        entered(json!([{"id": "s1", "type": "webhook", "config": config}]))
    }

    #[test]
    fn retry_missing_empty_or_below_one_fires() {
        for config in [
            json!({"url": "https://a.example"}),
            json!({"url": "https://a.example", "retry": {}}),
            json!({"url": "https://a.example", "retry": {"maxAttempts": 0}}),
            json!({"url": "https://a.example", "retry": {"maxAttempts": -2}}),
        ] {
            assert_eq!(step_ids(&run(&NO_RETRY, &hook(config.clone()))), vec!["s1"], "{config}");
        }
    }

    #[test]
    fn retry_with_attempts_is_quiet() {
        assert!(
            run(
                &NO_RETRY,
                &hook(json!({"retry": {"maxAttempts": 3, "backoff": "exponential"}}))
            )
            .is_empty()
        );
        assert!(run(&NO_RETRY, &hook(json!({"retry": {"maxAttempts": 1}}))).is_empty());
    }

    #[test]
    fn insecure_missing_and_malformed_urls_fire() {
        for (url, expected) in [
            (json!("http://a.example/hook"), "over http"),
            (json!("ftp://a.example"), "over ftp"),
            (json!("a.example/hook"), "not an absolute URL"),
            (json!("https://"), "not an absolute URL"),
            (json!("  "), "has no url"),
            (Value::Null, "has no url"),
        ] {
            let findings = run(&INSECURE_URL, &hook(json!({"url": url, "retry": {"maxAttempts": 3}})));
            assert_eq!(findings.len(), 1, "{url}");
            assert!(findings[0].message.contains(expected), "{}", findings[0].message);
        }
        assert_eq!(run(&INSECURE_URL, &hook(json!({}))).len(), 1);
    }

    #[test]
    fn https_in_any_case_is_quiet() {
        for url in ["https://a.example/hook", "HTTPS://A.EXAMPLE", " HttpS://a.example?x=1 "] {
            assert!(run(&INSECURE_URL, &hook(json!({"url": url}))).is_empty(), "{url}");
        }
    }
}
