//! BS701: CREATE EXTENSION.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE EXTENSION`. With a database URL the check asks
/// the server: an extension missing from `pg_available_extensions`, or one
/// that needs a superuser the migration role is not, is NO-GO, and so is
/// one already installed that the statement creates without `IF NOT
/// EXISTS`; one installed (with `IF NOT EXISTS`) or available to the role
/// is no finding.
///
/// **Why it hurts:** the extension's files must be installed on the
/// database server, and managed services allow only a list of them (often
/// per plan). Untrusted extensions need a superuser. When either is
/// missing the migration fails at deploy time (`extension "vector" is not
/// available`), typically in production only, where the plan or image
/// differs from development.
///
/// **Instead:** check availability on the target first (`SELECT * FROM
/// pg_available_extensions WHERE name = 'vector'`, or `backstop check` with
/// a database URL), install the package or enable it in the provider's
/// dashboard, and create extensions in their own migration with `IF NOT
/// EXISTS`.
pub const META: Meta = Meta {
    name: "create-extension",
    family: Family::Extensions,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "extension not available on the target",
    mitigation: "Confirm the extension is available (and allowed) on the target server",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreateExtensionStmt(e) = stmt.node else { continue };
        let span = cx.name_token(stmt, &e.extname, stmt.start).unwrap_or(stmt.span());
        out.push(
            Hit::new(
                Code::BS701,
                stmt,
                span,
                format!(
                    "CREATE EXTENSION {} fails unless the server has the extension installed and the role may create it",
                    e.extname
                ),
                format!(
                    "check the target first: SELECT * FROM pg_available_extensions WHERE name = '{}' (backstop check with a database URL does)",
                    e.extname
                ),
            )
            .subject(Subject::Extension {
                name: e.extname.clone(),
                if_not_exists: e.if_not_exists,
            }),
        );
    }
}
