//! BS401: CREATE without IF NOT EXISTS, DROP without IF EXISTS.

use pg_query::protobuf::{self, ObjectType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::string_value;

/// **What it finds:** in a no-transaction migration, `CREATE TABLE`,
/// `CREATE INDEX`, `CREATE SCHEMA`, `CREATE SEQUENCE`, `CREATE EXTENSION`
/// without `IF NOT EXISTS`, and `DROP ...` without `IF EXISTS`.
///
/// **Why it hurts:** a no-transaction migration commits statement by
/// statement; when it stops half-way, running it again stops at the first
/// object that already exists (or is already gone). An ordinary migration
/// is not reported: Backstop runs it inside a transaction, so a failure
/// leaves nothing of it behind and a re-run meets the database as it was.
///
/// **Instead:** write `CREATE ... IF NOT EXISTS` and `DROP ... IF EXISTS`
/// in no-transaction migrations, and keep them to one statement each.
pub const META: Meta = Meta {
    name: "missing-if-exists",
    family: Family::Robustness,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "no-transaction migration cannot be re-run after a partial failure",
    mitigation: "Use IF [NOT] EXISTS so a re-run after a partial failure succeeds",
    phase: Phase::Statements,
};

fn object_word(t: ObjectType) -> Option<&'static str> {
    Some(match t {
        ObjectType::ObjectTable => "TABLE",
        ObjectType::ObjectIndex => "INDEX",
        ObjectType::ObjectView => "VIEW",
        ObjectType::ObjectMatview => "MATERIALIZED VIEW",
        ObjectType::ObjectSequence => "SEQUENCE",
        ObjectType::ObjectSchema => "SCHEMA",
        ObjectType::ObjectType => "TYPE",
        ObjectType::ObjectExtension => "EXTENSION",
        ObjectType::ObjectFunction => "FUNCTION",
        ObjectType::ObjectTrigger => "TRIGGER",
        ObjectType::ObjectPolicy => "POLICY",
        _ => return None,
    })
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    // Inside a transaction a partial failure leaves nothing behind.
    for stmt in cx.stmts.iter().filter(|s| !cx.in_transaction(s)) {
        let missing = match stmt.node {
            NodeEnum::CreateStmt(s) if !s.if_not_exists => Some(("CREATE TABLE", "IF NOT EXISTS")),
            NodeEnum::CreateTableAsStmt(s)
                if !s.if_not_exists && s.objtype() == ObjectType::ObjectTable =>
            {
                Some(("CREATE TABLE AS", "IF NOT EXISTS"))
            }
            // An unnamed index cannot say IF NOT EXISTS.
            NodeEnum::IndexStmt(s) if !s.if_not_exists && !s.idxname.is_empty() => {
                Some(("CREATE INDEX", "IF NOT EXISTS"))
            }
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => Some(("CREATE SCHEMA", "IF NOT EXISTS")),
            NodeEnum::CreateSeqStmt(s) if !s.if_not_exists => Some(("CREATE SEQUENCE", "IF NOT EXISTS")),
            NodeEnum::CreateExtensionStmt(s) if !s.if_not_exists => {
                Some(("CREATE EXTENSION", "IF NOT EXISTS"))
            }
            // A function or view this file made again with CREATE OR REPLACE
            // just before is there on a re-run: its DROP cannot fail.
            NodeEnum::DropStmt(s) if !s.missing_ok && !remade_before(cx, stmt.index, s) => {
                object_word(s.remove_type()).map(|w| (w, "IF EXISTS"))
            }
            _ => None,
        };
        let Some((what, clause)) = missing else { continue };
        let (verb, what) = match stmt.node {
            NodeEnum::DropStmt(_) => ("DROP", what),
            _ => ("", what),
        };
        let shown = if verb.is_empty() { what.to_string() } else { format!("{verb} {what}") };
        out.push(
            Hit::new(
                Code::BS401,
                stmt,
                cx.head(stmt, 2),
                format!("{shown} without {clause} fails when this no-transaction migration is run again after a partial failure"),
                format!("write {shown} {clause}"),
            )
        );
    }
}

/// Whether every object `drop` names is a function or view that a statement
/// of this file before `index` makes with `CREATE OR REPLACE` (by name).
fn remade_before(cx: &Cx<'_>, index: usize, drop: &protobuf::DropStmt) -> bool {
    let names_of = |list: &[protobuf::Node]| list.iter().filter_map(string_value).next_back().map(str::to_string);
    let remade: Vec<(ObjectType, String)> = cx.stmts[..index]
        .iter()
        .filter_map(|s| match s.node {
            NodeEnum::CreateFunctionStmt(f) if f.replace => {
                let kind = if f.is_procedure { ObjectType::ObjectProcedure } else { ObjectType::ObjectFunction };
                names_of(&f.funcname).map(|n| (kind, n))
            }
            NodeEnum::ViewStmt(v) if v.replace => v.view.as_ref().map(|r| (ObjectType::ObjectView, r.relname.clone())),
            _ => None,
        })
        .collect();
    let kind = drop.remove_type();
    !drop.objects.is_empty()
        && drop.objects.iter().all(|obj| {
            let name = match obj.node.as_ref() {
                Some(NodeEnum::ObjectWithArgs(o)) => names_of(&o.objname),
                Some(NodeEnum::List(l)) => names_of(&l.items),
                _ => None,
            };
            name.is_some_and(|n| remade.iter().any(|(k, m)| *k == kind && *m == n))
        })
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options, Severity};

    fn bs401(sql: &str) -> Vec<Severity> {
        let report = check(&[Input::file("t.sql", sql)], &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS401).map(|f| f.severity).collect()
    }

    #[test]
    fn silent_in_a_transaction_kept_for_a_no_transaction_migration() {
        let sql = "CREATE TABLE t (id int);\nDROP TABLE old;\nCREATE INDEX t_id ON t (id);";
        assert_eq!(bs401(sql), []);
        let no_tx = "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nDROP INDEX CONCURRENTLY old_idx;";
        assert_eq!(bs401(no_tx), [Severity::Medium, Severity::Medium]);
        let guarded = "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);";
        assert_eq!(bs401(guarded), []);
    }

    #[test]
    fn a_drop_of_what_the_file_just_made_again_is_not_reported() {
        let remade = "-- backstop:no-transaction\nCREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';\nSELECT f();\nDROP FUNCTION f();";
        assert_eq!(bs401(remade), []);
        let other = "-- backstop:no-transaction\nCREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';\nDROP FUNCTION g();";
        assert_eq!(bs401(other), [Severity::Medium]);
        let plain = "-- backstop:no-transaction\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';\nDROP FUNCTION f();";
        assert_eq!(bs401(plain), [Severity::Medium]);
    }
}
