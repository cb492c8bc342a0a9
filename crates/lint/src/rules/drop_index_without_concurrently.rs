//! BS210: DROP INDEX without CONCURRENTLY on an index the run did not make.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::context::{runs_after, Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, object_name};

/// **What it finds:** `DROP INDEX` without `CONCURRENTLY` of an index that
/// no earlier statement of the run created (an index the run made, or one
/// on a table it made, blocks no one).
///
/// **Why it hurts:** a plain `DROP INDEX` takes an ACCESS EXCLUSIVE lock
/// on the index's table. The drop itself is quick, but the lock waits for
/// every query already running on the table, and every read and write
/// queues behind it meanwhile; in a migration transaction it is held
/// until COMMIT.
///
/// **Instead:** `DROP INDEX CONCURRENTLY` in its own migration whose first
/// line is `-- backstop:no-transaction` (CONCURRENTLY cannot run in a
/// transaction): it waits for the queries that use the index without
/// blocking anyone.
pub const META: Meta = Meta {
    name: "drop-index-without-concurrently",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::Low,
    risk: "reads and writes queue behind the drop's lock",
    mitigation: "Drop the index CONCURRENTLY in a no-transaction migration",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::DropStmt(d) = stmt.node else { continue };
        if d.remove_type() != ObjectType::ObjectIndex || d.concurrent {
            continue;
        }
        for index in d.objects.iter().filter_map(object_name) {
            // Made earlier in the run, by name, or on a table the run made.
            let made = cx.run.indexes.iter().any(|i| {
                runs_after((cx.file, stmt.index), (i.file, i.stmt), cx.opts.sequential)
                    && i.name.as_deref() == Some(index.name.as_str())
                    && (index.schema.is_none() || i.table.schema == index.schema)
            });
            if made {
                continue;
            }
            let name = display_table(&index);
            out.push(Hit::new(
                Code::BS210,
                stmt,
                cx.head(stmt, 2),
                format!(
                    "DROP INDEX {name} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its \
                     table: reads and writes queue behind it until the drop commits"
                ),
                format!(
                    "use DROP INDEX CONCURRENTLY {name} in its own migration whose first line is \
                     `-- backstop:no-transaction`"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs210(files: &[(&str, &str)]) -> usize {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        check(&inputs, &Options::default()).findings.iter().filter(|f| f.code == Code::BS210).count()
    }

    #[test]
    fn a_plain_drop_of_an_index_the_run_did_not_make_is_named() {
        assert_eq!(bs210(&[("1.sql", "DROP INDEX users_email_idx;")]), 1);
        assert_eq!(bs210(&[("1.sql", "DROP INDEX CONCURRENTLY users_email_idx;")]), 0);
        let made = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);";
        assert_eq!(bs210(&[("1.sql", made), ("2.sql", "DROP INDEX users_email_idx;")]), 0);
        // Another index's making does not cover it.
        let other = "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);";
        assert_eq!(bs210(&[("1.sql", other), ("2.sql", "DROP INDEX users_email_idx;")]), 1);
    }
}
