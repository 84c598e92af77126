//! Product analytics rules, without I/O: web-vitals ratings and the conversion funnel.

/// The web vitals a client reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vital {
    /// Largest Contentful Paint, milliseconds.
    Lcp,
    /// Interaction to Next Paint, milliseconds.
    Inp,
    /// Cumulative Layout Shift, unitless.
    Cls,
    /// First Contentful Paint, milliseconds.
    Fcp,
    /// Time to First Byte, milliseconds.
    Ttfb,
}

/// How a value rates against its vital's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "kebab-case"))]
pub enum Rating {
    /// At most the "good" threshold.
    Good,
    /// Above "good", at most "poor".
    NeedsImprovement,
    /// Above "poor".
    Poor,
}

impl Rating {
    /// Every rating, best first.
    pub const ALL: [Rating; 3] = [Rating::Good, Rating::NeedsImprovement, Rating::Poor];

    /// As clients and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::NeedsImprovement => "needs-improvement",
            Rating::Poor => "poor",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Rating> {
        Rating::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl Vital {
    /// Every vital.
    pub const ALL: [Vital; 5] = [Vital::Lcp, Vital::Inp, Vital::Cls, Vital::Fcp, Vital::Ttfb];

    /// Its name as web-vitals spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Vital::Lcp => "LCP",
            Vital::Inp => "INP",
            Vital::Cls => "CLS",
            Vital::Fcp => "FCP",
            Vital::Ttfb => "TTFB",
        }
    }

    /// Parses a name (as web-vitals spells it).
    pub fn parse(s: &str) -> Option<Vital> {
        Vital::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The "good" and "poor" thresholds of the web-vitals library (web.dev): a value at or
    /// below the first is good, above the second poor.
    pub fn thresholds(self) -> (f64, f64) {
        match self {
            Vital::Lcp => (2500.0, 4000.0),
            Vital::Inp => (200.0, 500.0),
            Vital::Cls => (0.1, 0.25),
            Vital::Fcp => (1800.0, 3000.0),
            Vital::Ttfb => (800.0, 1800.0),
        }
    }

    /// The rating of `value`; a value equal to a threshold takes the better rating.
    pub fn rate(self, value: f64) -> Rating {
        let (good, poor) = self.thresholds();
        if value <= good {
            Rating::Good
        } else if value <= poor {
            Rating::NeedsImprovement
        } else {
            Rating::Poor
        }
    }
}

/// The nine steps of the photo-effects funnel, in order.
pub const FUNNEL: [&str; 9] = [
    "effect_discovery",
    "effect_viewing",
    "effect_start",
    "image_upload",
    "parameter_setting",
    "processing_start",
    "processing_complete",
    "result_download",
    "result_sharing",
];

/// A step of the photo-effects funnel (spelt as in [`FUNNEL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "snake_case"))]
pub enum FunnelStepName {
    /// Browsing effects.
    EffectDiscovery,
    /// Looking at one effect.
    EffectViewing,
    /// Starting it.
    EffectStart,
    /// Uploading the photo.
    ImageUpload,
    /// Setting its parameters.
    ParameterSetting,
    /// Processing started.
    ProcessingStart,
    /// Processing finished.
    ProcessingComplete,
    /// The result downloaded.
    ResultDownload,
    /// The result shared.
    ResultSharing,
}

impl FunnelStepName {
    /// Every step, in the funnel's order.
    pub const ALL: [FunnelStepName; 9] = [
        FunnelStepName::EffectDiscovery,
        FunnelStepName::EffectViewing,
        FunnelStepName::EffectStart,
        FunnelStepName::ImageUpload,
        FunnelStepName::ParameterSetting,
        FunnelStepName::ProcessingStart,
        FunnelStepName::ProcessingComplete,
        FunnelStepName::ResultDownload,
        FunnelStepName::ResultSharing,
    ];

    /// Its name, as clients send it and the database stores it.
    pub fn as_str(self) -> &'static str {
        FUNNEL[self as usize]
    }
}

/// The position of a funnel step, if it is one.
pub fn funnel_step(step: &str) -> Option<usize> {
    FUNNEL.iter().position(|s| *s == step)
}

/// One step of a computed funnel.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelStep {
    /// Its name.
    pub step: &'static str,
    /// Sessions that reached it (each session counts once per step).
    pub sessions: u64,
    /// Share of the previous step's sessions (1 for the first step; 0 when the previous had none).
    pub from_previous: f64,
    /// Share of the first step's sessions.
    pub from_first: f64,
}

/// A funnel: each step with its conversions, and the step losing the most sessions.
#[derive(Clone, Debug, PartialEq)]
pub struct Funnel {
    /// The nine steps in order.
    pub steps: Vec<FunnelStep>,
    /// The step whose sessions fall furthest short of the previous step's (none when no step
    /// loses any), and how many sessions it loses.
    pub biggest_drop_off: Option<(&'static str, u64)>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The funnel of per-step session counts (in [`FUNNEL`] order).
pub fn funnel(counts: &[u64; 9]) -> Funnel {
    let first = counts[0];
    let mut steps = Vec::with_capacity(9);
    let mut biggest: Option<(&'static str, u64)> = None;
    for (i, &sessions) in counts.iter().enumerate() {
        let from_previous = if i == 0 { 1.0 } else { share(sessions, counts[i - 1]) };
        if i > 0 {
            let lost = counts[i - 1].saturating_sub(sessions);
            if lost > 0 && biggest.is_none_or(|(_, most)| lost > most) {
                biggest = Some((FUNNEL[i], lost));
            }
        }
        steps.push(FunnelStep {
            step: FUNNEL[i],
            sessions,
            from_previous: if i == 0 && first == 0 { 0.0 } else { from_previous },
            from_first: share(sessions, first),
        });
    }
    Funnel {
        steps,
        biggest_drop_off: biggest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_threshold_takes_the_better_rating() {
        for vital in Vital::ALL {
            let (good, poor) = vital.thresholds();
            assert_eq!(vital.rate(good), Rating::Good, "{vital:?}");
            assert_eq!(vital.rate(good * 1.0001), Rating::NeedsImprovement, "{vital:?}");
            assert_eq!(vital.rate(poor), Rating::NeedsImprovement, "{vital:?}");
            assert_eq!(vital.rate(poor * 1.0001), Rating::Poor, "{vital:?}");
            assert_eq!(vital.rate(0.0), Rating::Good);
        }
        assert_eq!(Vital::Lcp.rate(2500.0), Rating::Good);
        assert_eq!(Vital::Lcp.rate(2501.0), Rating::NeedsImprovement);
        assert_eq!(Vital::Cls.rate(0.25), Rating::NeedsImprovement);
        assert_eq!(Vital::Cls.rate(0.26), Rating::Poor);
        assert_eq!(Vital::Ttfb.rate(1800.5), Rating::Poor);
        assert_eq!(Vital::parse("INP"), Some(Vital::Inp));
        assert_eq!(Vital::parse("inp"), None);
    }

    #[test]
    fn funnel_conversions_and_the_biggest_drop_off() {
        let f = funnel(&[1000, 800, 600, 300, 290, 280, 250, 200, 50]);
        assert_eq!(f.steps.len(), 9);
        assert_eq!(f.steps[0].from_previous, 1.0);
        assert_eq!(f.steps[1].from_previous, 0.8);
        assert_eq!(f.steps[3].from_previous, 0.5);
        assert_eq!(f.steps[8].from_first, 0.05);
        assert_eq!(f.biggest_drop_off, Some(("image_upload", 300)));
        let empty = funnel(&[0; 9]);
        assert!(
            empty
                .steps
                .iter()
                .all(|s| s.from_previous == 0.0 && s.from_first == 0.0)
        );
        assert_eq!(empty.biggest_drop_off, None);
        // A later step can have sessions an earlier one missed (a deep link): no negative loss.
        let odd = funnel(&[10, 0, 5, 5, 5, 5, 5, 5, 5]);
        assert_eq!(odd.biggest_drop_off, Some(("effect_viewing", 10)));
        assert_eq!(odd.steps[2].from_previous, 0.0);
        assert_eq!(funnel_step("result_sharing"), Some(8));
        assert_eq!(funnel_step("checkout"), None);
    }
}
