//! BS107: ALTER COLUMN TYPE to a type that can cut or reject values.

use pg_query::protobuf::AlterTableType;
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{display_table, type_spec};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER COLUMN ... TYPE` to a type with a length or
/// precision (`varchar(50)`, `numeric(10,2)`, `char(2)`), to a smaller
/// integer or float (`smallint`, `integer`, `real`), or with a `USING`
/// conversion.
///
/// **Why it hurts:** values that do not fit are cut, rounded or make the
/// statement fail half-way through a long rewrite: `varchar(50)` rejects
/// longer strings, `numeric(10,2)` rounds, `integer` overflows on ids past
/// 2³¹. A `USING` expression converts every value, and the old ones are
/// gone after COMMIT.
///
/// **Instead:** measure first (`SELECT max(length(col)) FROM t`), keep the
/// wider type and enforce the limit with a `CHECK (...) NOT VALID`
/// constraint, or add a new column, backfill it with the conversion and
/// keep the old one until the new values are checked.
pub const META: Meta = Meta {
    name: "narrowing-type",
    family: Family::DataLoss,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "column type change that can cut values",
    mitigation: "Measure the widest value first; prefer a CHECK constraint over a narrower type",
    phase: Phase::Statements,
};

/// Types whose range is narrower than the usual wider types.
const NARROW: &[&str] = &["int2", "int4", "float4", "smallint", "integer", "int", "real", "char"];

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, cmd, kind, .. } in cx.existing_table_alters() {
        if kind != AlterTableType::AtAlterColumnType {
            continue;
        }
        let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
        else {
            continue;
        };
        let Some(tn) = &def.type_name else { continue };
        let spec = type_spec(tn, def.raw_default.is_some());
        let why = if spec.using {
            "the USING expression converts every value, and the old values are gone after COMMIT"
        } else if !spec.modifiers.is_empty() {
            "values longer or more precise than that are cut, rounded or make the statement fail"
        } else if NARROW.contains(&spec.base()) {
            "values outside its range make the statement fail half-way through"
        } else {
            continue;
        };
        let column = cmd.name.clone();
        out.push(
            Hit::new(
                Code::BS107,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "changing {}.{column} to {}: {why}",
                    display_table(&table),
                    spec.display()
                ),
                format!(
                    "measure first (SELECT max(length({column}::text)) FROM {}); keep the wider type and add a CHECK constraint NOT VALID instead",
                    display_table(&table)
                ),
            )
            .subject(Subject::ColumnType { table: table.clone(), column, new_type: spec }),
        );
    }
}
