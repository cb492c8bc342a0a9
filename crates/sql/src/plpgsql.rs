//! A `DO` block's plpgsql, read with PostgreSQL's own plpgsql parser:
//! what the data changes and the transaction facts of a statement need.

use pg_query::protobuf;
use pg_query::NodeEnum;
use serde_json::Value;

/// A `DO` block's plpgsql as PostgreSQL's own plpgsql parser reads it:
/// `Err` says why it cannot be read (another language, a parse error),
/// `Ok(None)` that the block has no body.
pub fn do_tree(d: &protobuf::DoStmt) -> Result<Option<Value>, String> {
    let mut body = None;
    let mut language = "plpgsql".to_string();
    for arg in &d.args {
        if let Some(NodeEnum::DefElem(e)) = arg.node.as_ref() {
            let value = match e.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(NodeEnum::String(v)) => Some(v.sval.as_str()),
                _ => None,
            };
            match (e.defname.as_str(), value) {
                ("as", Some(v)) => body = Some(v.to_string()),
                ("language", Some(v)) => language = v.to_ascii_lowercase(),
                _ => {}
            }
        }
    }
    let Some(body) = body else { return Ok(None) };
    if language != "plpgsql" {
        return Err(format!("in {language}"));
    }
    let mut tag = "do_body".to_string();
    while body.contains(&format!("${tag}$")) {
        tag.push('_');
    }
    let function = format!(
        "CREATE FUNCTION pg_temp.backstop_do() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}$"
    );
    pg_query::parse_plpgsql(&function).map(Some).map_err(|_| "its plpgsql does not parse".into())
}

/// Whether a `DO` block's plpgsql has a `COMMIT` or `ROLLBACK` of its own,
/// which PostgreSQL runs only when the block is not inside a transaction
/// block.
pub fn do_block_ends_transactions(d: &protobuf::DoStmt) -> bool {
    let Ok(Some(tree)) = do_tree(d) else { return false };
    let mut ends = false;
    walk(&tree, &mut |key, _| {
        ends |= matches!(key, "PLpgSQL_stmt_commit" | "PLpgSQL_stmt_rollback");
    });
    ends
}

/// The SQL statements a `DO` block runs as written (not those it builds
/// at run time), in its order: an `EXECUTE` of a constant string runs
/// that string, which is read as written too.
pub fn sql_statements(d: &protobuf::DoStmt) -> Vec<String> {
    let Ok(Some(tree)) = do_tree(d) else { return Vec::new() };
    let mut out = Vec::new();
    walk(&tree, &mut |key, v| match key {
        "PLpgSQL_stmt_execsql" => {
            if let Some(q) = v.pointer("/sqlstmt/PLpgSQL_expr/query").and_then(Value::as_str) {
                out.push(q.to_string());
            }
        }
        "PLpgSQL_stmt_dynexecute" => out.extend(constant_execute(v)),
        _ => {}
    });
    out
}

/// The SQL an `EXECUTE` runs where it is one string constant (`EXECUTE
/// 'ALTER TABLE t RENAME COLUMN a TO b'`), as the string holds it; `None`
/// for SQL built at run time (`format(...)`, `||`, a variable).
pub fn constant_execute(dynexecute: &Value) -> Option<String> {
    let expr = dynexecute.pointer("/query/PLpgSQL_expr/query")?.as_str()?;
    let tree = pg_query::parse(&format!("SELECT {expr}"), 0).ok()?;
    let stmt = tree.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::SelectStmt(select) = stmt else { return None };
    let [target] = select.target_list.as_slice() else { return None };
    let Some(NodeEnum::ResTarget(t)) = target.node.as_ref() else { return None };
    match t.val.as_deref()?.node.as_ref()? {
        NodeEnum::AConst(c) => match &c.val {
            Some(protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The constant statements a `DO` block EXECUTEs, where that is all it
/// does: `IF` conditions (which may only read), `EXECUTE` of string
/// constants, `RAISE` and `RETURN`; `None` for a block that does anything
/// else (SQL run as written, loops, SQL built at run time). The block
/// `IF EXISTS (…) THEN EXECUTE 'ALTER TABLE t RENAME COLUMN a TO b'; END
/// IF` gives that `ALTER TABLE`.
pub fn guarded_executes(d: &protobuf::DoStmt) -> Option<Vec<String>> {
    let tree = do_tree(d).ok()??;
    let (mut out, mut other) = (Vec::new(), false);
    walk(&tree, &mut |key, v| match key {
        "PLpgSQL_stmt_dynexecute" => {
            let plain = v.get("into").is_none() && v.get("params").is_none();
            match constant_execute(v).filter(|_| plain) {
                Some(sql) => out.push(sql),
                None => other = true,
            }
        }
        "PLpgSQL_stmt_block" | "PLpgSQL_stmt_if" | "PLpgSQL_stmt_raise" | "PLpgSQL_stmt_return" => {
        }
        k if k.starts_with("PLpgSQL_stmt_") => other = true,
        _ => {}
    });
    (!other && !out.is_empty()).then_some(out)
}

pub fn walk(v: &Value, f: &mut impl FnMut(&str, &Value)) {
    match v {
        Value::Object(map) => {
            for (key, inner) in map {
                f(key, inner);
                walk(inner, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_constant_execute_is_all_a_block_does_or_nothing_is_said() {
        let guarded = "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns \
            WHERE table_name = 't' AND column_name = 'a') THEN \
            EXECUTE 'ALTER TABLE t RENAME COLUMN a TO b'; END IF; END $$";
        assert_eq!(
            of_do(guarded, guarded_executes),
            Some(vec!["ALTER TABLE t RENAME COLUMN a TO b".to_string()])
        );
        for other in [
            "DO $$ BEGIN UPDATE t SET a = 1; EXECUTE 'ALTER TABLE t ADD c int'; END $$",
            "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD c int', 't'); END $$",
            "DO $$ BEGIN FOR i IN 1..2 LOOP EXECUTE 'SELECT 1'; END LOOP; END $$",
            "DO $$ BEGIN RAISE NOTICE 'x'; END $$",
        ] {
            assert_eq!(of_do(other, guarded_executes), None, "{other}");
        }
    }

    /// `f` of the `DO` block `sql` is.
    fn of_do<T>(sql: &str, f: impl Fn(&protobuf::DoStmt) -> T) -> T {
        let tree = pg_query::parse(sql, 0).unwrap();
        match tree.protobuf.stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::DoStmt(d)) => f(d),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_do_block_that_commits_is_told_from_one_that_does_not() {
        let ends = |sql: &str| of_do(sql, do_block_ends_transactions);
        assert!(ends("do $$ begin update t set a = 1; commit; end $$"));
        assert!(ends("do $$ begin if true then rollback; end if; end $$"));
        assert!(!ends("do $$ begin update t set a = 1; end $$"));
        assert!(!ends("do language plpython3u $$ plpy.commit() $$"));
    }

    #[test]
    fn a_constant_execute_is_read_as_the_statement_it_holds() {
        let statements = |sql: &str| of_do(sql, sql_statements);
        let constant =
            "do $$ begin if exists (select 1 from pg_attribute where attname = 'a') then \
                        execute 'alter table t rename column a to b'; end if; end $$";
        assert_eq!(statements(constant), ["alter table t rename column a to b"]);
        let built =
            "do $$ begin execute format('alter table %I rename column a to b', 't'); end $$";
        assert!(statements(built).is_empty());
        let joined = "do $$ begin execute 'alter table ' || 't' || ' rename column a to b'; end $$";
        assert!(statements(joined).is_empty());
    }
}
