//! A group's status: open, resolved (until an event of it comes back: a regression) or ignored.

/// A group's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "api", derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema))]
#[cfg_attr(feature = "api", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "api", schema(as = ErrorGroupStatus))]
pub enum GroupStatus {
    /// New, or recurring.
    Open,
    /// Fixed; an event reopens it as a regression.
    Resolved,
    /// Muted: counted, never reopened.
    Ignored,
}

impl GroupStatus {
    /// Every status.
    pub const ALL: [GroupStatus; 3] = [GroupStatus::Open, GroupStatus::Resolved, GroupStatus::Ignored];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Open => "open",
            GroupStatus::Resolved => "resolved",
            GroupStatus::Ignored => "ignored",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<GroupStatus> {
        GroupStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}
