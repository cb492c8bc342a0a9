//! BS002: an ignore comment that cannot take effect.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a `-- backstop:ignore` comment without a rule code,
/// with an unknown code, without a reason, or aimed at a critical finding.
///
/// **Why it hurts:** the comment looks like it silences a finding, but it
/// does not: a reason is required so that the next reader knows why the
/// risk was acceptable, and critical findings (a protected table dropped,
/// a migration certain to fail) are never silenced by a comment.
///
/// **Instead:** write `-- backstop:ignore BS101 archived to meetings.csv
/// first` on the line above the statement. Accept a critical risk at
/// deploy time with `backstop migrate --accept-risk CODE`, which is audited.
pub const META: Meta = Meta {
    name: "invalid-ignore",
    family: Family::Suppression,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "ignore comment without effect",
    mitigation: "Fix the `backstop:ignore` comment: a known code and a reason",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for ig in &cx.ignores {
        if let Some(problem) = &ig.problem {
            out.push(Hit {
                code: Code::BS002,
                stmt: None,
                span: ig.span.clone(),
                message: format!("this backstop:ignore comment {problem}"),
                help: "write `-- backstop:ignore CODE reason` on the line above the statement"
                    .into(),
                subject: None,
                rating: None,
                latent: false,
            });
        }
    }
}
