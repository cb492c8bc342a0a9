//! Which PostgreSQL a statement needs. The parser knows the newest grammar
//! (PostgreSQL 18), so SQL that an older server rejects parses all the
//! same; this reads the tree for the syntax and features each release
//! added, from the release notes of 15 to 18, and says the oldest major
//! that runs the statement.
//!
//! The tree is walked as its serialized form: every node, however deep
//! (a constraint inside an `ALTER TABLE`, a `JSON_TABLE` inside a view),
//! is seen without a walker that must know every node type.

use pg_query::protobuf::{AlterTableType, ConstrType, MergeMatchKind};
use pg_query::NodeEnum;
use serde_json::{Map, Value};

/// The oldest supported major: needs at or below it are not reported.
pub const OLDEST_SUPPORTED: u32 = 15;

/// One feature a statement uses and the major that brought it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub major: u32,
    /// The feature as written: "`JSON_TABLE`".
    pub what: &'static str,
    /// How the same is written for older servers.
    pub instead: &'static str,
}

impl Need {
    fn new(major: u32, what: &'static str, instead: &'static str) -> Need {
        Need { major, what, instead }
    }
}

/// What `node` (a statement) uses that some major brought, each once,
/// newest first.
pub fn needs(node: &NodeEnum) -> Vec<Need> {
    let Ok(tree) = serde_json::to_value(node) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&tree, &mut out);
    out.sort_by(|a, b| b.major.cmp(&a.major).then(a.what.cmp(b.what)));
    out.dedup();
    out
}

/// The newest need of the statements in `text` (a down file, say); none
/// when it does not parse or needs nothing newer than 15.
pub fn newest_need(text: &str) -> Option<Need> {
    let parsed = pg_query::parse(text, 0).ok()?;
    parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|s| s.stmt.as_ref()?.node.as_ref())
        .flat_map(needs)
        .max_by_key(|n| n.major)
}

fn walk(value: &Value, out: &mut Vec<Need>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if let Value::Object(fields) = inner {
                    if key.starts_with(|c: char| c.is_ascii_uppercase()) {
                        visit(key, fields, out);
                    } else if key == "returning_clause" {
                        // Held by its statement as itself, not as a node.
                        visit("ReturningClause", fields, out);
                    }
                }
                walk(inner, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
        _ => {}
    }
}

fn int(fields: &Map<String, Value>, name: &str) -> i64 {
    fields.get(name).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(fields: &Map<String, Value>, name: &str) -> bool {
    fields.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn text<'v>(fields: &'v Map<String, Value>, name: &str) -> &'v str {
    fields.get(name).and_then(Value::as_str).unwrap_or("")
}

fn list<'v>(fields: &'v Map<String, Value>, name: &str) -> &'v [Value] {
    fields.get(name).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The `defname`s of a list of `DefElem` options.
fn option_names(options: &[Value]) -> Vec<String> {
    options
        .iter()
        .filter_map(|o| o.pointer("/node/DefElem/defname")?.as_str())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether `value` holds a column reference `old.x` or `new.x`.
fn names_old_or_new(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, inner)| {
            if key == "ColumnRef" {
                let fields = inner.get("fields").and_then(Value::as_array);
                let first = fields
                    .filter(|f| f.len() > 1)
                    .and_then(|f| f[0].pointer("/node/String/sval"))
                    .and_then(Value::as_str);
                if matches!(first.map(str::to_ascii_lowercase).as_deref(), Some("old" | "new")) {
                    return true;
                }
            }
            names_old_or_new(inner)
        }),
        Value::Array(items) => items.iter().any(names_old_or_new),
        _ => false,
    }
}

fn visit(kind: &str, f: &Map<String, Value>, out: &mut Vec<Need>) {
    let mut need = |major, what, instead| out.push(Need::new(major, what, instead));
    match kind {
        "MergeStmt" => {
            need(15, "`MERGE`", "`INSERT … ON CONFLICT` or an `UPDATE` and an `INSERT`");
            let returning = f.get("returning_clause").map(|r| !list(r.as_object().unwrap_or(&Map::new()), "exprs").is_empty());
            if returning == Some(true) {
                need(17, "`MERGE … RETURNING`", "a `MERGE` without `RETURNING`, then a `SELECT`");
            }
        }
        "MergeWhenClause" if int(f, "match_kind") == MergeMatchKind::MergeWhenNotMatchedBySource as i64 => need(
            17,
            "`MERGE … WHEN NOT MATCHED BY SOURCE`",
            "a separate `DELETE`/`UPDATE` of the rows the source lacks",
        ),
        "Constraint" => constraint(f, &mut need),
        "RangeSubselect" if f.get("alias").is_none_or(Value::is_null) => need(
            16,
            "a subquery in `FROM` without an alias",
            "an alias after the subquery: `FROM (SELECT …) AS s`",
        ),
        "JsonObjectConstructor" | "JsonArrayConstructor" | "JsonArrayQueryConstructor"
        | "JsonObjectAgg" | "JsonArrayAgg" => need(
            16,
            "the SQL/JSON constructors (`JSON_OBJECT`, `JSON_ARRAY`, `JSON_OBJECTAGG`, `JSON_ARRAYAGG`)",
            "`json_build_object`, `json_build_array`, `json_object_agg`, `json_agg`",
        ),
        "JsonIsPredicate" => need(16, "`IS JSON`", "a cast to `json` inside a function that catches the error"),
        "JsonTable" => need(17, "`JSON_TABLE`", "`jsonb_to_recordset` or `jsonb_path_query` in `FROM`"),
        "JsonFuncExpr" => need(
            17,
            "`JSON_QUERY`, `JSON_VALUE` or `JSON_EXISTS`",
            "`jsonb_path_query_first`, `jsonb_path_exists` and the `->>` operator",
        ),
        "JsonParseExpr" | "JsonScalarExpr" | "JsonSerializeExpr" => {
            need(17, "`JSON()`, `JSON_SCALAR()` or `JSON_SERIALIZE()`", "casts to and from `json`")
        }
        "AccessPriv" if text(f, "priv_name").eq_ignore_ascii_case("maintain") => need(
            17,
            "the `MAINTAIN` privilege",
            "table ownership (or membership in the owner's role) for VACUUM, ANALYZE, REINDEX and REFRESH",
        ),
        "GrantRoleStmt" => {
            let opts = option_names(list(f, "opt"));
            if opts.iter().any(|o| o == "inherit" || o == "set") {
                need(16, "`GRANT role … WITH INHERIT/SET`", "the role's own `INHERIT`/`NOINHERIT` setting");
            }
        }
        "AlterTableCmd" if int(f, "subtype") == AlterTableType::AtSetExpression as i64 => need(
            17,
            "`ALTER COLUMN … SET EXPRESSION`",
            "dropping the generated column and adding it again",
        ),
        "CopyStmt" => {
            let opts = option_names(list(f, "options"));
            if opts.iter().any(|o| o == "reject_limit") {
                need(18, "`COPY … REJECT_LIMIT`", "a `COPY` without it");
            }
            if opts.iter().any(|o| o == "on_error" || o == "log_verbosity") {
                need(17, "`COPY … ON_ERROR`/`LOG_VERBOSITY`", "a staging table and a filtering `INSERT`");
            }
            if opts.iter().any(|o| o == "default") {
                need(16, "`COPY … DEFAULT`", "a staging table and an `INSERT` that fills the defaults");
            }
        }
        "ViewStmt" if option_names(list(f, "options")).iter().any(|o| o == "security_invoker") => {
            need(15, "`security_invoker` views", "a function with `SECURITY INVOKER`")
        }
        "ReturningClause"
            if !list(f, "options").is_empty()
                || names_old_or_new(f.get("exprs").unwrap_or(&Value::Null)) =>
        {
            need(18, "`OLD`/`NEW` in `RETURNING`", "a CTE that reads the rows before the change")
        }
        _ => {}
    }
}

fn constraint(f: &Map<String, Value>, need: &mut impl FnMut(u32, &'static str, &'static str)) {
    let contype = int(f, "contype");
    if flag(f, "nulls_not_distinct") {
        need(15, "`UNIQUE NULLS NOT DISTINCT`", "a unique index on `coalesce(col, sentinel)`");
    }
    if contype == ConstrType::ConstrGenerated as i64 && text(f, "generated_kind") == "v" {
        need(
            18,
            "a virtual generated column (`GENERATED ALWAYS AS (…)` without `STORED`)",
            "`GENERATED ALWAYS AS (…) STORED`",
        );
    }
    if contype == ConstrType::ConstrNotnull as i64 && !list(f, "keys").is_empty() {
        need(
            18,
            "a named `NOT NULL` table constraint (`ADD CONSTRAINT … NOT NULL col`)",
            "`ALTER COLUMN col SET NOT NULL`",
        );
    }
    if flag(f, "without_overlaps") || flag(f, "fk_with_period") || flag(f, "pk_with_period") {
        need(
            18,
            "temporal keys (`WITHOUT OVERLAPS`, `PERIOD`)",
            "an exclusion constraint with `&&`",
        );
    }
    let enforceable =
        contype == ConstrType::ConstrCheck as i64 || contype == ConstrType::ConstrForeign as i64;
    if enforceable && !flag(f, "is_enforced") {
        need(18, "`NOT ENFORCED` constraints", "a `NOT VALID` constraint, or none");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest(sql: &str) -> Option<u32> {
        newest_need(sql).map(|n| n.major)
    }

    #[test]
    fn each_releases_syntax_is_known_by_its_major() {
        let cases: &[(&str, Option<u32>)] = &[
            ("CREATE TABLE t (id int NOT NULL, v text)", None),
            ("SELECT * FROM (SELECT 1) AS s", None),
            ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", Some(15)),
            ("CREATE TABLE u (e text UNIQUE NULLS NOT DISTINCT)", Some(15)),
            ("CREATE VIEW v WITH (security_invoker = true) AS SELECT 1", Some(15)),
            ("SELECT * FROM (SELECT 1)", Some(16)),
            ("CREATE VIEW v AS SELECT x FROM (SELECT 1 AS x)", Some(16)),
            ("SELECT JSON_OBJECT('a': 1)", Some(16)),
            ("SELECT '{}' IS JSON", Some(16)),
            ("GRANT admins TO alice WITH INHERIT TRUE", Some(16)),
            ("COPY t FROM STDIN (DEFAULT '\\D')", Some(16)),
            (
                "SELECT * FROM JSON_TABLE('[1]'::jsonb, '$[*]' COLUMNS (v int PATH '$')) AS j",
                Some(17),
            ),
            ("SELECT JSON_VALUE('{\"a\":1}'::jsonb, '$.a')", Some(17)),
            ("GRANT MAINTAIN ON t TO ops", Some(17)),
            ("ALTER TABLE t ALTER COLUMN g SET EXPRESSION AS (a * 2)", Some(17)),
            ("COPY t FROM STDIN (ON_ERROR ignore)", Some(17)),
            (
                "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.id",
                Some(17),
            ),
            (
                "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE",
                Some(17),
            ),
            ("ALTER TABLE t ADD CONSTRAINT t_v_nn NOT NULL v", Some(18)),
            ("CREATE TABLE t (a int, g int GENERATED ALWAYS AS (a * 2))", Some(18)),
            ("CREATE TABLE t (a int, g int GENERATED ALWAYS AS (a * 2) STORED)", None),
            ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT ENFORCED", Some(18)),
            ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", None),
            ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id)", None),
            ("UPDATE t SET a = 1 RETURNING old.a, new.a", Some(18)),
            ("UPDATE t SET a = 1 RETURNING a", None),
            ("COPY t FROM STDIN (ON_ERROR ignore, REJECT_LIMIT 5)", Some(18)),
        ];
        for (sql, want) in cases {
            assert_eq!(newest(sql), *want, "{sql}: {:?}", newest_need(sql));
        }
    }

    #[test]
    fn a_statement_says_each_need_once_newest_first() {
        let parsed = pg_query::parse(
            "MERGE INTO t USING (SELECT 1 AS id) ON true WHEN NOT MATCHED BY SOURCE THEN DELETE RETURNING old.id",
            0,
        )
        .unwrap();
        let node = parsed.protobuf.stmts[0].stmt.as_ref().unwrap().node.as_ref().unwrap();
        let majors: Vec<u32> = needs(node).iter().map(|n| n.major).collect();
        assert_eq!(majors, [18, 17, 17, 16, 15]);
    }
}
