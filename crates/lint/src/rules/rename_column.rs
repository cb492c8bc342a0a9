//! BS302: renaming a column of an existing table.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Origin, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... RENAME COLUMN` on a table the
/// migration did not create.
///
/// **Why it hurts:** the running application still selects, inserts and
/// filters by the old name; its queries fail with `column does not exist`
/// from the moment the migration commits until new code is everywhere.
/// ORMs that cache the schema fail even later, at their next restart.
///
/// **Instead:** add the new column, write both from the application,
/// backfill, switch reads, and drop the old column in a later release (or
/// keep a generated column / view under the old name meanwhile).
pub const META: Meta = Meta {
    name: "rename-column",
    family: Family::Compatibility,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "running code breaks on a renamed column",
    mitigation: "Add the new column and migrate readers before removing the old name",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::RenameStmt(r) = stmt.node else { continue };
        if r.rename_type() != ObjectType::ObjectColumn {
            continue;
        }
        let Some(rv) = &r.relation else { continue };
        let table = Cx::rel(rv);
        // No running code knows a table or a column the batch made, or a
        // name an earlier rename of the batch gave the column.
        let made = matches!(cx.column_origin(stmt.index, &table, &r.subname), Origin::Created { .. })
            || cx.batch.renamed_to(cx.file, stmt.index, &table, Some(&r.subname)).is_some();
        if made || cx.is_new(stmt.index, &table) {
            continue;
        }
        out.push(
            Hit::new(
                Code::BS302,
                stmt,
                stmt.span(),
                format!(
                    "renaming {}.{} to {} breaks every query of the running application that uses the old name",
                    display_table(&table),
                    r.subname,
                    r.newname
                ),
                "add the new column, write both, backfill, switch reads, drop the old column in a later release",
            )
            .subject(Subject::Table { table, missing_ok: r.missing_ok }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    #[test]
    fn a_name_an_earlier_rename_gave_is_known_to_no_running_code() {
        let first = "ALTER TABLE customers RENAME COLUMN name TO full_name;";
        let back = "ALTER TABLE customers RENAME COLUMN full_name TO name;";
        let inputs = [Input::file("1.sql", first), Input::file("2.sql", back)];
        let report = check(&inputs, &Options::default());
        let found: Vec<&str> =
            report.findings.iter().filter(|f| f.code == Code::BS302).map(|f| f.file.as_str()).collect();
        assert_eq!(found, ["1.sql"]);
    }
}
