//! BS601: a foreign key whose referencing columns have no index.

use pg_query::protobuf::{self, AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::stmt::{Stmt, alter_cmds, display_table, same_table, string_value};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use crate::RelationName;

/// **What it finds:** a `FOREIGN KEY` (or `REFERENCES`) whose referencing
/// columns are not the leading columns of an index created in the same
/// migration. A partial index does not count. For a table that already
/// exists, a database URL lets the check look at its existing indexes.
///
/// **Why it hurts:** PostgreSQL indexes the referenced key, not the
/// referencing columns. Every `DELETE` (or key `UPDATE`) on the referenced
/// table must find the referencing rows: without an index that is a
/// sequential scan of the referencing table for each row deleted, and `ON
/// DELETE CASCADE` holds locks on it meanwhile. Joins on the key are slow
/// too. It grows with the table, so it shows up months later.
///
/// **Instead:** `CREATE INDEX ... ON child (parent_id)` in the same
/// migration (for a new table), or `CONCURRENTLY` in a no-transaction
/// migration for an existing one.
pub const META: Meta = Meta {
    name: "fk-without-index",
    family: Family::Performance,
    probability: Probability::Low,
    impact: Impact::Medium,
    risk: "foreign key without an index on its columns",
    mitigation: "Index the referencing columns of every foreign key",
    phase: Phase::Statements,
};

struct Index {
    table: RelationName,
    columns: Vec<String>,
    partial: Option<String>,
}

struct ForeignKey<'s> {
    table: RelationName,
    columns: Vec<String>,
    referenced: String,
    stmt: &'s Stmt<'s>,
    location: i32,
}

fn names(nodes: &[protobuf::Node]) -> Vec<String> {
    nodes.iter().filter_map(string_value).map(str::to_string).collect()
}

fn constraints(nodes: &[protobuf::Node]) -> impl Iterator<Item = &protobuf::Constraint> {
    nodes.iter().filter_map(|n| match n.node.as_ref() {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

fn referenced(c: &protobuf::Constraint) -> String {
    c.pktable.as_ref().map(|p| display_table(&Cx::rel(p))).unwrap_or_default()
}

/// Keys of PRIMARY KEY / UNIQUE constraints, and FKs, of one column or table.
fn from_constraint<'s>(
    c: &protobuf::Constraint,
    table: &RelationName,
    column: Option<&str>,
    stmt: &'s Stmt<'s>,
    indexes: &mut Vec<Index>,
    fks: &mut Vec<ForeignKey<'s>>,
) {
    let cols = |list: &[protobuf::Node]| match column {
        Some(col) => vec![col.to_string()],
        None => names(list),
    };
    match c.contype() {
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique => {
            indexes.push(Index { table: table.clone(), columns: cols(&c.keys), partial: None })
        }
        ConstrType::ConstrForeign => fks.push(ForeignKey {
            table: table.clone(),
            columns: cols(&c.fk_attrs),
            referenced: referenced(c),
            stmt,
            location: c.location,
        }),
        _ => {}
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let mut indexes: Vec<Index> = Vec::new();
    let mut fks: Vec<ForeignKey<'_>> = Vec::new();
    for stmt in &cx.stmts {
        match stmt.node {
            NodeEnum::CreateStmt(c) => {
                let Some(rv) = &c.relation else { continue };
                let table = Cx::rel(rv);
                for elt in &c.table_elts {
                    match elt.node.as_ref() {
                        Some(NodeEnum::ColumnDef(col)) => {
                            for k in constraints(&col.constraints) {
                                from_constraint(k, &table, Some(&col.colname), stmt, &mut indexes, &mut fks);
                            }
                        }
                        Some(NodeEnum::Constraint(k)) => {
                            from_constraint(k, &table, None, stmt, &mut indexes, &mut fks)
                        }
                        _ => {}
                    }
                }
            }
            NodeEnum::IndexStmt(i) => {
                let Some(rv) = &i.relation else { continue };
                let mut columns = Vec::new();
                for p in &i.index_params {
                    match p.node.as_ref() {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => columns.push(e.name.clone()),
                        _ => break,
                    }
                }
                let partial = i.where_clause.is_some().then(|| i.idxname.clone());
                indexes.push(Index { table: Cx::rel(rv), columns, partial });
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                let table = Cx::rel(rv);
                for (_, cmd, kind) in alter_cmds(a) {
                    match (kind, cmd.def.as_ref().and_then(|d| d.node.as_ref())) {
                        (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(k))) => {
                            from_constraint(k, &table, None, stmt, &mut indexes, &mut fks)
                        }
                        (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(col))) => {
                            for k in constraints(&col.constraints) {
                                from_constraint(k, &table, Some(&col.colname), stmt, &mut indexes, &mut fks);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    for fk in fks {
        if fk.columns.is_empty() {
            continue;
        }
        let leading = |ix: &Index| {
            ix.columns.len() >= fk.columns.len()
                && fk.columns.iter().all(|c| ix.columns[..fk.columns.len()].contains(c))
        };
        let on_table: Vec<&Index> =
            indexes.iter().filter(|ix| same_table(&ix.table, &fk.table) && leading(ix)).collect();
        if on_table.iter().any(|ix| ix.partial.is_none()) {
            continue;
        }
        let table = display_table(&fk.table);
        let cols = fk.columns.join(", ");
        let mut message = format!(
            "foreign key {table}({cols}) → {} has no index on {table}({cols}): each DELETE on {} scans {table}",
            fk.referenced, fk.referenced
        );
        if let Some(partial) = on_table.iter().find_map(|ix| ix.partial.as_deref()) {
            message.push_str(&format!("; the partial index {partial} does not serve it"));
        }
        let new = cx.is_new(fk.stmt.index, &fk.table) || matches!(fk.stmt.node, NodeEnum::CreateStmt(_));
        let mut hit = Hit::new(
            Code::BS601,
            fk.stmt,
            cx.clause_at(fk.stmt, fk.location),
            message,
            format!("CREATE INDEX ON {table} ({cols})"),
        );
        if !new {
            hit = hit.subject(Subject::ForeignKey { table: fk.table.clone(), columns: fk.columns.clone() });
        }
        out.push(hit);
    }
}
