//! BS301: renaming an existing table.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::context::{runs_after, Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... RENAME TO` of a table (or view) the
/// migration did not create, unless the same migration creates a view
/// under the old name; a view made by the next migration leaves a lesser
/// finding for the time between the two (one made further on is named in
/// the finding, which stays as high). A name an earlier rename
/// of the run gave the table is known to no running code and no finding.
///
/// **Why it hurts:** the application that is running while the migration
/// commits still names the old table: every one of its queries fails with
/// `relation does not exist` until the new code is deployed everywhere,
/// and a rollback of the code alone does not bring the name back.
///
/// **Instead:** expand and contract: rename, then create a view with the
/// old name (`CREATE VIEW old AS SELECT * FROM new`, simple views are
/// updatable) in the same migration; drop the view once no deployed code
/// uses the old name.
pub const META: Meta = Meta {
    name: "rename-table",
    family: Family::Compatibility,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "running code breaks on a renamed table",
    mitigation: "Keep the old name as a view until no deployed code uses it",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::RenameStmt(r) = stmt.node else { continue };
        if !matches!(r.rename_type(), ObjectType::ObjectTable | ObjectType::ObjectView) {
            continue;
        }
        let Some(rv) = &r.relation else { continue };
        let table = Cx::rel(rv);
        if cx.is_new(stmt.index, &table)
            || cx.batch.renamed_to(cx.file, stmt.index, &table, None).is_some()
        {
            continue;
        }
        // Expand and contract: a view keeps the old name working.
        let kept = cx.stmts[stmt.index + 1..].iter().any(|s| match s.node {
            NodeEnum::ViewStmt(v) => {
                v.view.as_ref().is_some_and(|v| backstop_sql::stmt::same_table(&Cx::rel(v), &table))
            }
            _ => false,
        });
        if kept {
            continue;
        }
        let old = display_table(&table);
        let later_view = cx.run.views.iter().find(|(f, s, v, _)| {
            *f != cx.file
                && runs_after((*f, *s), (cx.file, stmt.index), cx.opts.sequential)
                && backstop_sql::stmt::same_table(v, &table)
        });
        let mut hit = Hit::new(
            Code::BS301,
            stmt,
            stmt.span(),
            format!("renaming {old} to {} breaks every query of the running application that names {old}", r.newname),
            format!("in the same migration CREATE VIEW {old} AS SELECT * FROM {}; drop the view once no deployed code uses the old name", r.newname),
        );
        if let Some((file, _, _, path)) = later_view {
            hit.message = format!(
                "renaming {old} to {} breaks the running application's queries that name {old} until \
                 {} makes the view {old}: each migration commits on its own, and a deploy that stops \
                 between them leaves the old name missing",
                r.newname, path
            );
            hit.help = format!("move CREATE VIEW {old} into the migration that renames it");
            // The very next migration: the two ship together, and only a
            // deploy stopped between them leaves the name missing. One
            // further off may ship in a later release.
            if *file == cx.file + 1 {
                hit = hit.rated(Probability::Low, Impact::High);
            }
        }
        out.push(hit.subject(Subject::Table { table, missing_ok: r.missing_ok }));
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options, Severity};

    fn bs301(files: &[(&str, &str)]) -> Vec<Severity> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS301).map(|f| f.severity).collect()
    }

    #[test]
    fn a_rename_is_judged_with_the_later_migrations_of_the_run() {
        let rename = "ALTER TABLE customers RENAME TO clients;";
        let view = "CREATE VIEW customers AS SELECT * FROM clients;";
        assert_eq!(bs301(&[("1.sql", rename)]), [Severity::High]);
        assert_eq!(bs301(&[("1.sql", &format!("{rename}\n{view}"))]), []);
        // The view a later migration makes: the time between the two.
        assert_eq!(bs301(&[("1.sql", rename), ("2.sql", view)]), [Severity::Medium]);
        let between = [("1.sql", rename), ("2.sql", "SELECT 1;"), ("3.sql", view)];
        assert_eq!(bs301(&between), [Severity::High]);
        // Renamed back later: the second rename is of a name no running
        // code knows.
        let back = "ALTER TABLE clients RENAME TO customers;";
        assert_eq!(bs301(&[("1.sql", rename), ("2.sql", back)]), [Severity::High]);
    }
}
