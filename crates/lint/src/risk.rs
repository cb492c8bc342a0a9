//! The risk scale of a check: probability × impact = severity, on the
//! four steps a risk matrix uses.

use serde::{Deserialize, Serialize};

/// How likely the risk is to materialise, as a risk matrix says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probability {
    Low = 1,
    Medium = 2,
    High = 3,
    /// Certain: the statement does it every time (or the database says so).
    Certain = 4,
}

/// How bad it is when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    Low = 1,
    Medium = 2,
    High = 3,
    /// Loss of protected data or a migration that cannot succeed.
    Critical = 4,
}

/// Probability × impact, in four steps. Ordered from low to critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Severity = probability × impact on 1–4 scales: 12 and above is
    /// critical, 6–9 high, 2–4 medium, 1 low. So a certain loss of
    /// something critical is critical, a medium chance of a high impact is
    /// high, and a low chance of a low impact is low.
    pub fn of(probability: Probability, impact: Impact) -> Severity {
        match probability as u8 * impact as u8 {
            12.. => Severity::Critical,
            6..=11 => Severity::High,
            2..=5 => Severity::Medium,
            _ => Severity::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Every severity, most severe first.
    pub const DESCENDING: [Severity; 4] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!("unknown severity {s:?}; use critical, high, medium or low")),
        }
    }
}

impl Probability {
    pub fn as_str(self) -> &'static str {
        match self {
            Probability::Low => "low",
            Probability::Medium => "medium",
            Probability::High => "high",
            Probability::Certain => "certain",
        }
    }
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::Low => "low",
            Impact::Medium => "medium",
            Impact::High => "high",
            Impact::Critical => "critical",
        }
    }
}
