//! BS506: a policy that admits every row to every role, on a table whose
//! rows belong to users.

use pg_query::protobuf::{self, a_const::Val, RoleSpecType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, same_table};

/// **What it finds:** a permissive `CREATE POLICY` for every role (no `TO`,
/// or `TO PUBLIC`) whose condition is `true` (`USING (true)`, or `WITH
/// CHECK (true)` for `INSERT`), on a table with an owner column (`[check]
/// owner_columns`): one the run creates, or (with a database URL) one the
/// server's table has.
///
/// **Why it hurts:** permissive policies are OR-ed: one that admits every
/// row makes every other policy of the table moot. On a table whose rows
/// belong to users, every role that can reach the table reads (or writes)
/// every user's rows: the data exposure row level security was there to
/// prevent. Copied from a "public read" example, it often goes unnoticed.
///
/// **Instead:** tie the condition to the owner (`USING (user_id =
/// auth.uid())`, or your session's user), or name the roles it is for
/// (`TO service_role`). A table that is meant to be readable by everyone
/// says so: `-- backstop:ignore BS506 <why>`.
pub const META: Meta = Meta {
    name: "policy-admits-all",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "every user's rows readable by every user",
    mitigation: "Tie the policy to the row's owner, or name the roles it is for",
    phase: Phase::Statements,
};

/// Whether `node` is the constant `true` (`true`, `'t'::boolean`).
fn is_true(node: Option<&protobuf::Node>) -> bool {
    match node.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::AConst(c)) => matches!(&c.val, Some(Val::Boolval(b)) if b.boolval),
        Some(NodeEnum::TypeCast(t)) => {
            let to_bool = t.type_name.as_ref().is_some_and(|tn| {
                tn.names.iter().filter_map(backstop_sql::stmt::string_value).any(|n| n == "bool")
            });
            let text = t.arg.as_ref().and_then(|a| match a.node.as_ref() {
                Some(NodeEnum::AConst(c)) => match &c.val {
                    Some(Val::Sval(s)) => Some(s.sval.to_lowercase()),
                    _ => None,
                },
                _ => None,
            });
            to_bool && matches!(text.as_deref(), Some("t" | "true" | "on" | "yes" | "1"))
        }
        _ => false,
    }
}

/// Whether the policy is for every role: no `TO`, or `TO PUBLIC`.
fn for_everyone(p: &protobuf::CreatePolicyStmt) -> bool {
    p.roles.iter().all(|r| match r.node.as_ref() {
        Some(NodeEnum::RoleSpec(s)) => s.roletype() == RoleSpecType::RolespecPublic,
        _ => false,
    })
}

/// The condition that admits every row, as written: `USING (true)` or
/// `WITH CHECK (true)`.
fn admits_all(p: &protobuf::CreatePolicyStmt) -> Option<&'static str> {
    if !p.permissive || !for_everyone(p) {
        return None;
    }
    match p.cmd_name.as_str() {
        "insert" if is_true(p.with_check.as_deref()) => Some("WITH CHECK (true)"),
        "insert" => None,
        _ if is_true(p.qual.as_deref()) => Some("USING (true)"),
        _ => None,
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreatePolicyStmt(p) = stmt.node else { continue };
        let (Some(rv), Some(condition)) = (p.table.as_ref(), admits_all(p)) else { continue };
        let table = Cx::rel(rv);
        let name = display_table(&table);
        let owner = cx.run.owner_tables.iter().find(|o| same_table(&o.table, &table));
        let column = owner.map_or_else(|| "an owner column".to_string(), |o| o.column.clone());
        let hit = Hit::new(
            Code::BS506,
            stmt,
            cx.head(stmt, 3),
            format!(
                "policy {} on {name} admits every row to every role ({condition}), and {name} has \
                 {column}: every user reads every other user's rows",
                p.policy_name
            ),
            format!(
                "tie it to the owner ({} = <the session's user>) or name the roles it is for \
                 (TO ...); if {name} is meant to be public, say so: -- backstop:ignore BS506 <why>",
                owner.map_or("user_id", |o| o.column.as_str())
            ),
        );
        if owner.is_some() {
            out.push(hit);
        } else if !cx.is_new(stmt.index, &table) {
            // Only the server shows the existing table's columns.
            let columns = cx.opts.owner_columns.clone();
            out.push(hit.subject(Subject::OwnerColumns { table, columns }).latent());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options, Subject};

    fn bs506(sql: &str) -> (usize, usize) {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        let of = |all: &[crate::Finding]| all.iter().filter(|f| f.code == Code::BS506).count();
        (of(&report.findings), of(&report.probes))
    }

    const NOTES: &str = "CREATE TABLE notes (id int, user_id int);\n";

    #[test]
    fn a_policy_of_true_for_everyone_on_an_owner_table_is_named() {
        for policy in [
            "CREATE POLICY notes_read ON notes FOR SELECT USING (true);",
            "CREATE POLICY notes_all ON notes USING ('t'::boolean);",
            "CREATE POLICY notes_add ON notes FOR INSERT TO PUBLIC WITH CHECK (true);",
        ] {
            assert_eq!(bs506(&format!("{NOTES}{policy}")), (1, 0), "{policy}");
        }
    }

    #[test]
    fn a_policy_tied_to_the_owner_or_to_named_roles_or_restrictive_is_not() {
        for policy in [
            "CREATE POLICY notes_read ON notes FOR SELECT USING (user_id = 1);",
            "CREATE POLICY notes_svc ON notes FOR SELECT TO service_role USING (true);",
            "CREATE POLICY notes_r ON notes AS RESTRICTIVE FOR SELECT USING (true);",
            "CREATE POLICY notes_add ON notes FOR INSERT WITH CHECK (user_id = 1);",
        ] {
            assert_eq!(bs506(&format!("{NOTES}{policy}")), (0, 0), "{policy}");
        }
        // A new table with no owner column is public by design.
        let tags = "CREATE TABLE tags (id int, name text);\nCREATE POLICY tags_read ON tags USING (true);";
        assert_eq!(bs506(tags), (0, 0));
    }

    #[test]
    fn an_existing_table_is_left_to_the_database() {
        let sql = "CREATE POLICY posts_read ON posts FOR SELECT USING (true);";
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        let probe = report.probes.iter().find(|f| f.code == Code::BS506).expect("a probe");
        assert!(matches!(&probe.subject, Some(Subject::OwnerColumns { table, .. }) if table.name == "posts"));
    }
}
