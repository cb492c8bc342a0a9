//! BS001: an ignore comment that suppressed nothing.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a `-- backstop:ignore CODE reason` comment that
/// suppressed no finding: the rule no longer fires on the next line, or the
/// comment sits above the wrong statement.
///
/// **Why it hurts:** a stale ignore is a loaded gun. The next change to the
/// statement below it may introduce exactly the risk the comment names, and
/// nobody will hear about it.
///
/// **Instead:** delete the comment, or move it to the line just above the
/// statement it is meant for.
pub const META: Meta = Meta {
    name: "unused-ignore",
    family: Family::Suppression,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "ignore comment that suppresses nothing",
    mitigation: "Remove stale `backstop:ignore` comments",
    phase: Phase::AfterSuppression,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for ig in cx.ignores.iter().filter(|ig| ig.problem.is_none() && !ig.used.get()) {
        let codes: Vec<&str> = ig.codes.iter().map(|c| c.as_str()).collect();
        out.push(Hit {
            code: Code::BS001,
            stmt: None,
            span: ig.span.clone(),
            message: format!("this ignore of {} suppresses nothing", codes.join(", ")),
            help: "remove it, or put it on the line just above the statement it is for".into(),
            subject: None,
            rating: None,
            latent: false,
        });
    }
}
