//! BS501: a new table with an owner column but no row level security, in a
//! project that uses row level security.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit, OwnerTable};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, same_table, Stmt};
use crate::RelationName;

/// **What it finds:** `CREATE TABLE` of a table with an owner column (by
/// default `user_id`, `tenant_id` or `owner_id`; set `[check]
/// owner_columns`) that no migration of the run puts under row level
/// security (and that the run does not drop again), in a project that
/// uses it: some migration of the run enables it on another table, or
/// (with a database URL) some table of the database has it. A project that enables row level security nowhere
/// gets one low note for all such tables instead: its rows are kept apart
/// by the application, and a high finding per table would only be noise.
///
/// **Why it hurts:** an owner column says the rows belong to different
/// users. Where the project relies on RLS, a table without it is the one
/// door left open: every role with `SELECT` on it sees every user's rows;
/// on Supabase-style setups the API role has that by default, so one
/// crafted request lists everyone's data.
///
/// **Instead:** in the same migration `ALTER TABLE t ENABLE ROW LEVEL
/// SECURITY;` and `CREATE POLICY t_own ON t USING (user_id = ...)`, then
/// prove isolation with a cross-user test (`backstop verify`).
pub const META: Meta = Meta {
    name: "rls-missing",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "per-user rows readable by every user",
    mitigation: "Enable row level security and add policies in the same migration",
    phase: Phase::Statements,
};

/// The table a `CREATE TABLE` makes and its owner column, when it has one.
pub(crate) fn owner_table(stmt: &Stmt<'_>, owner_columns: &[String]) -> Option<(RelationName, String)> {
    let NodeEnum::CreateStmt(c) = stmt.node else { return None };
    let rv = c.relation.as_ref()?;
    if c.partbound.is_some() || rv.relpersistence == "t" {
        return None;
    }
    let owner = c.table_elts.iter().find_map(|e| match e.node.as_ref() {
        Some(NodeEnum::ColumnDef(col)) if owner_columns.contains(&col.colname) => {
            Some(col.colname.clone())
        }
        _ => None,
    })?;
    Some((Cx::rel(rv), owner))
}

/// Tables by name, the first few and how many more.
fn some_tables(tables: &[&OwnerTable]) -> String {
    let names: Vec<String> = tables.iter().take(4).map(|o| display_table(&o.table)).collect();
    match tables.len() {
        n if n > names.len() => format!("{} and {} more", names.join(", "), n - names.len()),
        _ => names.join(", "),
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let run = cx.run;
    let enabled = |t: &RelationName| run.rls_enabled.iter().any(|e| same_table(e, t));
    // Whether the run itself shows that the project uses row level security.
    let uses_rls = !run.rls_enabled.is_empty();
    // A table the run drops again (a work table) holds no one's rows after it.
    let dropped_later =
        |o: &OwnerTable| run.dropped_later((o.file, o.stmt), &o.table, cx.opts.sequential);
    let open: Vec<&OwnerTable> =
        run.owner_tables.iter().filter(|o| !enabled(&o.table) && !dropped_later(o)).collect();
    for o in open.iter().filter(|o| o.file == cx.file) {
        let Some(stmt) = cx.stmts.get(o.stmt) else { continue };
        let NodeEnum::CreateStmt(c) = stmt.node else { continue };
        let at = c.relation.as_ref().map_or_else(|| cx.head(stmt, 2), |rv| cx.token_at(stmt, rv.location));
        let name = display_table(&o.table);
        let hit = Hit::new(
            Code::BS501,
            stmt,
            at.clone(),
            format!(
                "{name} has an owner column ({}) but row level security is never enabled on it: every role that can read it sees every user's rows",
                o.column
            ),
            format!(
                "add ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; and CREATE POLICY {0}_own ON {name} USING ({1} = ...);",
                o.table.name, o.column
            ),
        );
        if uses_rls {
            out.push(hit);
            continue;
        }
        // Only the database can tell whether the project uses RLS
        // elsewhere: a probe, which a live check confirms or drops.
        out.push(hit.subject(Subject::RowSecurity { table: o.table.clone() }).latent());
        if std::ptr::eq(*o, open[0]) {
            out.push(project_note(stmt, at, &open));
        }
    }
}

/// The one note for a project that enables row level security nowhere.
fn project_note(stmt: &Stmt<'_>, at: std::ops::Range<usize>, open: &[&OwnerTable]) -> Hit {
    Hit::new(
        Code::BS501,
        stmt,
        at,
        format!(
            "{} new table(s) have an owner column ({}) and no migration enables row level security on any table: \
             rows are kept apart only by the application",
            open.len(),
            some_tables(open)
        ),
        "nothing to do if only your application's server reads the database; if users reach it directly \
         (Supabase, PostgREST, a shared database role), enable row level security with a policy on each",
    )
    .subject(Subject::RowSecurity { table: open[0].table.clone() })
    .rated(Probability::Low, Impact::Low)
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Finding, Input, Options, Severity, Subject};

    fn bs501(files: &[(&str, &str)]) -> (Vec<Finding>, Vec<Finding>) {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        let of = |all: Vec<Finding>| all.into_iter().filter(|f| f.code == Code::BS501).collect();
        (of(report.findings), of(report.probes))
    }

    const TWO: [(&str, &str); 2] = [
        ("1.sql", "CREATE TABLE notes (id int, user_id int);"),
        ("2.sql", "CREATE TABLE files (id int, owner_id int);\nCREATE TABLE tags (id int);"),
    ];

    #[test]
    fn a_project_that_enables_rls_nowhere_gets_one_low_note() {
        let (findings, probes) = bs501(&TWO);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let note = &findings[0];
        assert_eq!((note.severity, note.file.as_str(), note.line), (Severity::Low, "1.sql", 1));
        assert!(note.message.starts_with("2 new table(s) have an owner column (notes, files)"), "{}", note.message);
        // Each table stays a probe: a database with RLS makes it a finding.
        let tables: Vec<_> = probes.iter().map(|p| p.subject.clone()).collect();
        assert!(
            matches!(&tables[..], [Some(Subject::RowSecurity { table: a }), Some(Subject::RowSecurity { table: b })] if a.name == "notes" && b.name == "files"),
            "{tables:?}"
        );
        assert!(probes.iter().all(|p| p.severity == Severity::High));
    }

    #[test]
    fn a_project_that_uses_rls_gets_a_high_finding_per_table_without_it() {
        let mut files = TWO.to_vec();
        files.push(("3.sql", "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;"));
        let (findings, probes) = bs501(&files);
        let at: Vec<_> = findings.iter().map(|f| (f.severity, f.file.as_str())).collect();
        assert_eq!(at, [(Severity::High, "2.sql")]);
        assert!(findings[0].message.starts_with("files has an owner column (owner_id)"));
        assert!(probes.is_empty());
    }

    #[test]
    fn a_table_a_later_migration_drops_is_not_reported() {
        let mut files = TWO.to_vec();
        files.push(("3.sql", "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\nDROP TABLE files;"));
        let (findings, probes) = bs501(&files);
        assert!(findings.is_empty() && probes.is_empty(), "{findings:?} {probes:?}");
        // Judged file by file, a later file's drop is not this file's.
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options { sequential: false, ..Options::default() });
        assert!(report.findings.iter().any(|f| f.code == Code::BS501), "{:?}", report.findings);
    }

    #[test]
    fn an_ignore_covers_the_probe_and_is_not_unused() {
        let sql = "-- backstop:ignore BS501 read through the app only\nCREATE TABLE notes (id int, user_id int);";
        let inputs = [Input::file("1.sql", sql)];
        let report = check(&inputs, &Options::default());
        assert!(report.findings.iter().all(|f| f.code != Code::BS001), "{:?}", report.findings);
        assert!(report.findings.iter().all(|f| f.suppressed.is_some()));
        assert!(report.probes.iter().all(|f| f.suppressed.is_some()));
    }
}
