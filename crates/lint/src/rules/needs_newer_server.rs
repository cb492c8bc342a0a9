//! BS305: syntax or a feature the server's PostgreSQL does not have yet.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::versions::needs;

/// **What it finds:** a statement whose syntax or feature came with a newer
/// PostgreSQL than the server's: a subquery in `FROM` without an alias
/// (16), `JSON_TABLE` and `MERGE … RETURNING` (17), `ADD CONSTRAINT …
/// NOT NULL col` and virtual generated columns (18), and the others of the
/// release notes. The server's version comes from the database with live
/// facts, or from `[check] server_version` offline; without either the
/// rule is silent.
///
/// **Why it hurts:** Backstop's parser knows the newest grammar, so the
/// file parses here and in review, and a rehearsal on a newer local
/// PostgreSQL passes it; the production server answers `syntax error at or
/// near …` or `… does not exist` at deploy time. In a down file it waits
/// until the rollback that needs it.
///
/// **Instead:** write it the way the server's version accepts (each
/// finding names the older form), or upgrade the server first and set
/// `[check] server_version` to match.
pub const META: Meta = Meta {
    name: "needs-newer-server",
    family: Family::Compatibility,
    probability: Probability::Certain,
    impact: Impact::Critical,
    risk: "the statement fails on the server's PostgreSQL version",
    mitigation: "Write it for the server's version, or upgrade the server first",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let Some(server) = cx.opts.server_major else { return };
    for stmt in &cx.stmts {
        for need in needs(stmt.node).into_iter().filter(|n| n.major > server) {
            out.push(Hit::new(
                Code::BS305,
                stmt,
                stmt.span(),
                format!(
                    "{} needs PostgreSQL {}; the server is PostgreSQL {server}: the statement fails there",
                    need.what, need.major
                ),
                format!(
                    "write it for PostgreSQL {server} ({}), or upgrade the server to {} first",
                    need.instead, need.major
                ),
            ));
        }
    }
}
