//! BS205: ADD COLUMN whose default must be computed row by row.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::{NodeEnum, NodeRef};

use crate::context::{runs_after, Alter, Cx, Hit};
use backstop_sql::stmt::{display_table, string_value, type_spec};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD COLUMN` on an existing table with a
/// volatile default (`gen_random_uuid()`, `random()`, `clock_timestamp()`,
/// `nextval(...)`), a `serial` type, an identity column or a `GENERATED ...
/// STORED` expression. A function a migration of the run creates is
/// volatile unless declared `STABLE` or `IMMUTABLE`; one no migration here
/// defines is a lesser finding without a database, and looked up in
/// `pg_proc` with one.
///
/// **Why it hurts:** since PostgreSQL 11 a constant or stable default
/// (`now()`, `'free'`) is stored once in the catalog and the `ADD COLUMN`
/// is instant. A volatile one must be computed for each row, so PostgreSQL
/// rewrites the whole table and its indexes under an ACCESS EXCLUSIVE lock:
/// no reads or writes for the duration, and twice the disk space.
///
/// **Instead:** add the column without a default (or with a constant one),
/// backfill it in batches, then `ALTER COLUMN ... SET DEFAULT` for new rows.
pub const META: Meta = Meta {
    name: "volatile-default",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table rewritten to fill a volatile default",
    mitigation: "Add the column without a volatile default; backfill in batches; then SET DEFAULT",
    phase: Phase::Statements,
};

/// Functions PostgreSQL marks volatile that defaults commonly use.
const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "gen_random_bytes",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "setval",
];

/// Stable or immutable functions common in defaults: no need to ask.
const NOT_VOLATILE: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_setting",
    "lower",
    "upper",
    "md5",
    "concat",
    "to_jsonb",
    "jsonb_build_object",
    "jsonb_build_array",
    "json_build_object",
    "make_interval",
    "to_timestamp",
    "to_char",
    "to_date",
    "date_trunc",
    "date_part",
    "extract",
    "timezone",
    "length",
    "btrim",
    "replace",
    "split_part",
    "substring",
    "string_to_array",
    "array_to_string",
    "jsonb_set",
    "json_build_array",
    "coalesce",
    "format",
];

/// The platform's functions migrations use in defaults, declared STABLE
/// there (Supabase's `auth.uid()` and its kin): no need to ask.
const NOT_VOLATILE_QUALIFIED: &[&str] = &["auth.uid", "auth.jwt", "auth.role", "auth.email"];

const SERIAL: &[&str] = &["serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"];

const HELP: &str = "add the column without a default, backfill it in batches, then ALTER COLUMN ... SET DEFAULT";

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.existing_table_alters() {
        if kind != AlterTableType::AtAddColumn {
            continue;
        }
        let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
        else {
            continue;
        };
        let span = cx.alter_cmd(stmt, Some(rv), k);
        let name = display_table(&table);
        let col = &def.colname;
        let rewrite = |why: String| {
            Hit::new(
                Code::BS205,
                stmt,
                span.clone(),
                format!("ADD COLUMN {col} {why}, so {name} is rewritten under an ACCESS EXCLUSIVE lock"),
                HELP,
            )
            .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok })
        };
        if let Some(tn) = &def.type_name {
            let spec = type_spec(tn, false);
            if SERIAL.contains(&spec.base()) {
                out.push(rewrite(format!("is {}, whose nextval() default fills every row", spec.base())));
                continue;
            }
        }
        let mut defaults = Vec::new();
        defaults.extend(def.raw_default.as_deref());
        let mut special = None;
        for c in def.constraints.iter().filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(c)) => Some(c),
            _ => None,
        }) {
            match c.contype() {
                ConstrType::ConstrDefault => defaults.extend(c.raw_expr.as_deref()),
                ConstrType::ConstrIdentity => special = Some("is an identity column, numbered row by row".to_string()),
                ConstrType::ConstrGenerated => special = Some("is GENERATED ... STORED, computed for every row".to_string()),
                _ => {}
            }
        }
        if let Some(why) = special {
            out.push(rewrite(why));
            continue;
        }
        let mut calls: Vec<String> = Vec::new();
        for expr in defaults.iter().filter_map(|d| d.node.as_ref()) {
            for (node, ..) in expr.nodes() {
                if let NodeRef::FuncCall(f) = node {
                    let parts: Vec<&str> = f.funcname.iter().filter_map(string_value).collect();
                    calls.push(parts.join("."));
                }
            }
        }
        // What the run itself says of each function: the last definition
        // before this statement.
        let defined = |call: &str| {
            let base = call.rsplit('.').next().unwrap_or(call);
            cx.run
                .functions
                .iter()
                .rev()
                .find(|(f, s, name, ..)| {
                    name == base && runs_after((cx.file, stmt.index), (*f, *s), cx.opts.sequential)
                })
                .map(|(_, _, _, volatile, path)| (*volatile, path.as_str()))
        };
        let base = |c: &String| c.rsplit('.').next().unwrap_or(c).to_string();
        if let Some(f) = calls.iter().find(|c| VOLATILE.contains(&base(c).as_str())) {
            out.push(rewrite(format!("has the volatile default {f}(), computed for every row")));
            continue;
        }
        if let Some((f, path)) =
            calls.iter().find_map(|c| defined(c).filter(|(v, _)| *v).map(|(_, p)| (c, p)))
        {
            out.push(rewrite(format!(
                "has the default {f}(), which {path} creates volatile (as every function not declared \
                 STABLE or IMMUTABLE), computed for every row"
            )));
            continue;
        }
        let unknown: Vec<String> = calls
            .iter()
            .filter(|c| {
                defined(c).is_none()
                    && !NOT_VOLATILE.contains(&base(c).as_str())
                    && !NOT_VOLATILE_QUALIFIED.contains(&c.as_str())
            })
            .cloned()
            .collect();
        if !unknown.is_empty() {
            // Only the database knows whether these are volatile; without
            // it the finding says what decides.
            out.push(
                rewrite(format!(
                    "has a default calling {}(), which no migration here defines: if it is volatile \
                     (as every function not declared STABLE or IMMUTABLE), it is computed for every row",
                    unknown.join("(), ")
                ))
                .rated(Probability::Low, Impact::High)
                .subject(Subject::Functions { table: table.clone(), names: unknown }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options, Severity};

    fn bs205(files: &[(&str, &str)]) -> Vec<Severity> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS205).map(|f| f.severity).collect()
    }

    #[test]
    fn a_default_calling_a_function_is_judged_by_what_the_history_says_of_it() {
        let add = "ALTER TABLE items ADD COLUMN code text DEFAULT make_code();";
        let made = |volatility: &str| {
            format!("CREATE FUNCTION make_code() RETURNS text LANGUAGE sql {volatility} AS $$ SELECT 'x' $$;")
        };
        // Not declared: volatile, as PostgreSQL makes it.
        assert_eq!(bs205(&[("1.sql", &made("")), ("2.sql", add)]), [Severity::High]);
        assert_eq!(bs205(&[("1.sql", &made("VOLATILE")), ("2.sql", add)]), [Severity::High]);
        assert_eq!(bs205(&[("1.sql", &made("STABLE")), ("2.sql", add)]), []);
        assert_eq!(bs205(&[("1.sql", &made("IMMUTABLE")), ("2.sql", add)]), []);
        // Defined nowhere here: a lesser finding that says what decides.
        assert_eq!(bs205(&[("1.sql", add)]), [Severity::Medium]);
        // Known built-ins decide alone, and the platform's stable ones.
        assert_eq!(bs205(&[("1.sql", "ALTER TABLE items ADD COLUMN at timestamptz DEFAULT now();")]), []);
        assert_eq!(bs205(&[("1.sql", "ALTER TABLE items ADD COLUMN owner uuid DEFAULT auth.uid();")]), []);
    }
}
