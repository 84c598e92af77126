//! email-no-unsubscribe and sms-no-opt-out: consent requirements of marketing messages.

use serde_json::Value;

use super::{Context, Report};
use crate::model::StepType;
use crate::{RuleInfo, Severity};

pub(crate) const EMAIL_NO_UNSUBSCRIBE: RuleInfo = RuleInfo {
    id: "email-no-unsubscribe",
    severity: Severity::High,
    title: "Email without unsubscribe link",
    description: "Marketing email must carry an unsubscribe link (CAN-SPAM, GDPR); config.unsubscribeLink \
                  must be true.",
    check: check_email,
};

pub(crate) const SMS_NO_OPT_OUT: RuleInfo = RuleInfo {
    id: "sms-no-opt-out",
    severity: Severity::High,
    title: "SMS without opt-out wording",
    description: "Marketing texts must tell recipients how to opt out: config.text or config.message must \
                  contain \"stop\", \"opt out\", \"opt-out\" or \"unsubscribe\" (any case, as whole words).",
    check: check_sms,
};

/// Whole words only, so "nonstop" or "stopwatch" do not pass for "stop".
const OPT_OUT_WORDS: [&str; 4] = ["stop", "opt out", "opt-out", "unsubscribe"];

fn check_email(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::SendEmail) {
        if step.config_value("unsubscribeLink").and_then(Value::as_bool) != Some(true) {
            out.push(
                &EMAIL_NO_UNSUBSCRIBE,
                Some(i),
                format!("Email \"{}\" does not include an unsubscribe link", step.id),
                "Set config.unsubscribeLink to true.",
            );
        }
    }
}

fn check_sms(ctx: &Context<'_>, out: &mut Report<'_>) {
    for (i, step) in ctx.steps_of(StepType::SendSms) {
        let mut texts = ["text", "message"]
            .into_iter()
            .filter_map(|key| step.config_str(key))
            .peekable();
        let problem = if texts.peek().is_none() {
            "has no text, so it carries no opt-out instructions"
        } else if texts.any(mentions_opt_out) {
            continue;
        } else {
            "does not tell recipients how to opt out"
        };
        out.push(
            &SMS_NO_OPT_OUT,
            Some(i),
            format!("SMS \"{}\" {problem}", step.id),
            "End the text with opt-out wording such as \"Reply STOP to opt out\".",
        );
    }
}

fn mentions_opt_out(text: &str) -> bool {
    let text = text.to_lowercase();
    OPT_OUT_WORDS.iter().any(|word| contains_word(&text, word))
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack.get(..at).and_then(|s| s.chars().next_back());
        let after = haystack.get(at + word.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::{EMAIL_NO_UNSUBSCRIBE, SMS_NO_OPT_OUT, contains_word};
    use crate::rules::testing::{entered, run, step_ids};

    fn step(step_type: &str, config: Value) -> Value {
        entered(json!([{"id": "s1", "type": step_type, "config": config}]))
    }

    #[test]
    fn email_without_true_unsubscribe_link_fires() {
        for config in [
            json!({}),
            json!({"unsubscribeLink": false}),
            json!({"unsubscribeLink": null}),
        ] {
            assert_eq!(
                step_ids(&run(&EMAIL_NO_UNSUBSCRIBE, &step("send_email", config))),
                vec!["s1"]
            );
        }
    }

    #[test]
    fn email_with_unsubscribe_link_is_quiet() {
        assert!(
            run(
                &EMAIL_NO_UNSUBSCRIBE,
                &step("send_email", json!({"unsubscribeLink": true}))
            )
            .is_empty()
        );
        assert!(run(&EMAIL_NO_UNSUBSCRIBE, &step("send_sms", json!({}))).is_empty());
    }

    #[test]
    fn sms_without_opt_out_wording_fires() {
        for config in [
            json!({}),
            json!({"text": "Big sale today!"}),
            json!({"text": "Nonstop deals"}),
            json!({"message": "Get a stopwatch"}),
        ] {
            assert_eq!(
                step_ids(&run(&SMS_NO_OPT_OUT, &step("send_sms", config.clone()))),
                vec!["s1"],
                "{config}"
            );
        }
    }

    #[test]
    fn sms_with_opt_out_wording_is_quiet() {
        for config in [
            json!({"text": "Sale! Reply STOP to end."}),
            json!({"text": "Sale!", "message": "Opt-Out: reply NO"}),
            json!({"message": "to opt out visit our site"}),
            json!({"text": "Text UNSUBSCRIBE anytime"}),
        ] {
            assert!(
                run(&SMS_NO_OPT_OUT, &step("send_sms", config.clone())).is_empty(),
                "{config}"
            );
        }
    }

    #[test]
    fn word_matching_respects_boundaries() {
        assert!(contains_word("reply stop.", "stop"));
        assert!(contains_word("stop", "stop"));
        assert!(!contains_word("stopwatch", "stop"));
        assert!(contains_word("nonstop or stop", "stop"));
    }
}
