//! BS205: ADD COLUMN whose default must be computed row by row.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::{NodeEnum, NodeRef};

use crate::context::{Alter, Cx, Hit};
use crate::stmt::{display_table, string_value, type_spec};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD COLUMN` on an existing table with a
/// volatile default (`gen_random_uuid()`, `random()`, `clock_timestamp()`,
/// `nextval(...)`), a `serial` type, an identity column or a `GENERATED ...
/// STORED` expression. With a database URL, defaults calling other
/// functions are looked up in `pg_proc`.
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
];

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
        let volatile = calls.iter().find(|c| {
            let base = c.rsplit('.').next().unwrap_or(c);
            VOLATILE.contains(&base)
        });
        if let Some(f) = volatile {
            out.push(rewrite(format!("has the volatile default {f}(), computed for every row")));
        } else if calls.iter().any(|c| !NOT_VOLATILE.contains(&c.rsplit('.').next().unwrap_or(c))) {
            // Only the database knows whether these are volatile.
            out.push(
                rewrite(format!("has a default calling {}(), which rewrites the table if it is volatile", calls.join("(), ")))
                    .subject(Subject::Functions { table: table.clone(), names: calls.clone() })
                    .latent(),
            );
        }
    }
}
