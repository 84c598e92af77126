//! Monitoring's rules, without I/O: reading Sentry envelopes and events, grouping, vitals
//! ratings and the funnel, the alert lifecycle.

pub mod alert;
pub mod analytics;
pub mod envelope;
pub mod event;
pub mod group;
pub mod grouping;

/// The API spells every enum as its `as_str` does: serde's names (what the gateway checks and
/// documents) and the stored and gRPC names (what the service reads) are one set.
#[cfg(all(test, feature = "api"))]
mod api_names {
    use serde::{Serialize, de::DeserializeOwned};

    use super::{alert, analytics, event, group};

    fn same<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Copy>(
        all: &[T],
        name: fn(T) -> &'static str,
    ) {
        for &v in all {
            assert_eq!(
                serde_json::to_value(v).ok(),
                Some(serde_json::Value::from(name(v))),
                "{v:?}"
            );
            assert_eq!(serde_json::from_value::<T>(name(v).into()).ok(), Some(v), "{v:?}");
        }
    }

    #[test]
    fn serde_names_are_the_stored_names() {
        same(&alert::Metric::ALL, alert::Metric::as_str);
        same(&[alert::Condition::Gt, alert::Condition::Lt], alert::Condition::as_str);
        same(
            &[alert::Severity::Warning, alert::Severity::Critical],
            alert::Severity::as_str,
        );
        same(&alert::Status::ALL, alert::Status::as_str);
        same(&event::Level::ALL, event::Level::as_str);
        same(&group::GroupStatus::ALL, group::GroupStatus::as_str);
        same(&analytics::Rating::ALL, analytics::Rating::as_str);
        same(&analytics::FunnelStepName::ALL, analytics::FunnelStepName::as_str);
        assert_eq!(
            analytics::FunnelStepName::ALL.map(analytics::FunnelStepName::as_str),
            analytics::FUNNEL
        );
    }
}
