//! Where a statement uses an enum value that an earlier statement of the
//! same transaction added. Since PostgreSQL 12, `ALTER TYPE ... ADD VALUE`
//! may run inside a transaction block; what fails is using the new value
//! before that transaction commits ("unsafe use of new value", SQLSTATE
//! 55P04), even when the type itself was created in the same transaction
//! (PostgreSQL 12 and later keep every value `ADD VALUE` adds apart until
//! the commit; only the labels of `CREATE TYPE ... AS ENUM` are usable
//! at once).
//! `migrate` plans its transactions with this: it commits before the first
//! statement that uses a value added in the open transaction, and only
//! then.
//!
//! The rule, read with PostgreSQL's own parser:
//!
//! - A statement uses label `L` when its parse tree holds a string constant
//!   equal to `L`, or an array literal with `L` as an element, anywhere: an
//!   `INSERT` or `UPDATE` value, a `WHERE`, a `DEFAULT`, a `CHECK`, a view's
//!   query, a `BEGIN ATOMIC` body. Without the catalog the constant's type
//!   is unknown, so `'L'` meant for a text column counts as well: the
//!   cautious side, which costs one commit more.
//! - A `DO` block runs at once, and an SQL-language function's body is
//!   parsed and analysed when it is created: a string constant equal to `L`
//!   in them, or in SQL text they build and run, is a use.
//! - The body of a function in another language (PL/pgSQL and the rest) is
//!   text until it runs, so creating it is no use. Running it is: a later
//!   statement that calls it by name, one that writes a table whose trigger
//!   (created earlier in the run) runs it, or, when it was created with
//!   `OR REPLACE` (triggers the database already has may run it), any later
//!   write.
//!
//! Not seen: a function that was in the database before the run, uses `L`
//! in its body and is run by a trigger of a write in the same transaction.
//! That transaction then fails with 55P04 and is rolled back whole.

use pg_query::protobuf::{self, Token};
use pg_query::NodeEnum;
use serde_json::Value;

use crate::facts::{routine_language, EnumValue, RelationName, Routine};
use crate::parse::Statement;
use crate::stmt::same_table;

/// A value added since the last commit, and where (`P` is the caller's
/// idea of a place: a file and line, a migration).
#[derive(Debug, Clone)]
pub struct Added<P> {
    pub value: EnumValue,
    pub at: P,
}

/// How a statement uses a new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// Byte offset, in the statement's text, of what uses it.
    pub offset: usize,
    /// What uses it, in words.
    pub how: String,
}

/// What a run of statements has done so far that bears on new enum values:
/// values added since the last commit, and routines and triggers it
/// created (those outlive a commit).
#[derive(Debug, Clone)]
pub struct Transaction<'s, P> {
    added: Vec<Added<P>>,
    routines: Vec<(&'s Statement, Routine)>,
    triggers: Vec<(RelationName, String)>,
}

impl<P> Default for Transaction<'_, P> {
    fn default() -> Self {
        Transaction { added: Vec::new(), routines: Vec::new(), triggers: Vec::new() }
    }
}

impl<'s, P> Transaction<'s, P> {
    /// The values added since the last commit, in order.
    pub fn added(&self) -> &[Added<P>] {
        &self.added
    }

    /// Takes in what `stmt` does: adds a value, or creates a routine whose
    /// body runs later, or a trigger.
    pub fn record(&mut self, stmt: &'s Statement, at: P) {
        let facts = &stmt.facts;
        if let Some(value) = &facts.adds_enum_value {
            self.added.push(Added { value: value.clone(), at });
        }
        if let Some(routine) = &facts.defines_routine {
            self.routines.push((stmt, routine.clone()));
        }
        if let Some(trigger) = &facts.trigger {
            self.triggers.push(trigger.clone());
        }
    }

    /// A COMMIT: the values added so far may be used from now on.
    pub fn commit(&mut self) {
        self.added.clear();
    }

    /// The first value added since the last commit that `stmt` uses, and how.
    pub fn uses(&self, stmt: &Statement) -> Option<(&Added<P>, Use)> {
        self.added.iter().find_map(|a| self.use_of(stmt, &a.value.label).map(|u| (a, u)))
    }

    fn use_of(&self, stmt: &Statement, label: &str) -> Option<Use> {
        if let Some(found) = uses_now(&stmt.sql, label) {
            return Some(found);
        }
        let tainted: Vec<&Routine> = self
            .routines
            .iter()
            .filter(|(def, _)| routine_body_uses(&def.sql, label))
            .map(|(_, r)| r)
            .collect();
        if tainted.is_empty() {
            return None;
        }
        let runs = |name: &str| tainted.iter().any(|r| r.name == name);
        if let Some((name, offset)) = called(&stmt.sql).into_iter().find(|(n, _)| runs(n)) {
            let how = format!("a call of {name}(), whose body uses '{label}' when it runs");
            return Some(Use { offset, how });
        }
        let table = stmt.facts.writes_table.as_ref()?;
        let shown = crate::stmt::display_table(table);
        if let Some((_, f)) = self.triggers.iter().find(|(t, f)| same_table(t, table) && runs(f)) {
            let how =
                format!("a write to {shown}, whose trigger runs {f}(), whose body uses '{label}'");
            return Some(Use { offset: 0, how });
        }
        tainted.iter().find(|r| r.replace).map(|r| Use {
            offset: 0,
            how: format!(
                "a write to {shown} after {}() was replaced with a body that uses '{label}' \
                 (a trigger the database already has may run it)",
                r.name
            ),
        })
    }
}

/// Whether `text` may hold a string constant equal to `label`: it holds
/// the label as written (quotes doubled or not), or escapes that could
/// spell it.
fn may_hold(text: &str, label: &str) -> bool {
    text.contains(label)
        || (label.contains('\'') && text.contains(&label.replace('\'', "''")))
        || text.contains('\\')
        || text.to_ascii_lowercase().contains("uescape")
}

/// The one statement `sql` parses to.
fn parse_one(sql: &str) -> Option<NodeEnum> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    parsed.protobuf.stmts.into_iter().next()?.stmt?.node
}

/// A string constant equal to `label` (or an array literal holding it).
fn is_label(constant: &str, label: &str) -> bool {
    constant == label
        || constant
            .strip_prefix('{')
            .and_then(|c| c.strip_suffix('}'))
            .is_some_and(|items| items.split(',').any(|i| i.trim().trim_matches('"') == label))
}

/// A use of `label` by `sql` when it runs: a constant in its parse tree,
/// or in the body of a `DO` block or an SQL-language function.
fn uses_now(sql: &str, label: &str) -> Option<Use> {
    if !may_hold(sql, label) {
        return None;
    }
    let Some(node) = parse_one(sql) else {
        // Text the parser rejects does not run either.
        return None;
    };
    let tree = serde_json::to_value(&node).ok()?;
    if let Some(offset) = constant_in(&tree, label) {
        return Some(Use { offset, how: format!("the string constant '{label}'") });
    }
    let offset = sql.find(label).unwrap_or(0);
    match &node {
        NodeEnum::DoStmt(d) => body_of(&d.args)
            .filter(|body| body_uses(body, label, 0))
            .map(|_| Use { offset, how: format!("a DO block whose code uses '{label}'") }),
        NodeEnum::CreateFunctionStmt(f) if routine_language(f) == "sql" => body_of(&f.options)
            .filter(|body| uses_now(body, label).is_some() || body_uses(body, label, 0))
            .map(|_| Use {
                offset,
                how: format!(
                    "an SQL function whose body, checked when it is created, uses '{label}'"
                ),
            }),
        _ => None,
    }
}

/// Whether the routine `sql` defines has `label` in its body.
fn routine_body_uses(sql: &str, label: &str) -> bool {
    if !may_hold(sql, label) {
        return false;
    }
    match parse_one(sql) {
        Some(NodeEnum::CreateFunctionStmt(f)) => {
            body_of(&f.options).is_some_and(|body| body_uses(&body, label, 0))
        }
        _ => false,
    }
}

/// The `AS '...'` of a `DO` block or a function.
fn body_of(options: &[protobuf::Node]) -> Option<String> {
    options.iter().find_map(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname == "as" => {
            match d.arg.as_ref().and_then(|a| a.node.as_ref())? {
                NodeEnum::String(s) => Some(s.sval.clone()),
                NodeEnum::List(l) => l.items.first().and_then(|i| match &i.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    })
}

/// Whether code (a PL/pgSQL body, an SQL function's body) holds a string
/// constant equal to `label`, or runs SQL text that does (dynamic SQL,
/// followed a few levels deep). PL/pgSQL is read with PostgreSQL's SQL
/// scanner, which it shares; each constant is decoded by the parser.
fn body_uses(code: &str, label: &str, depth: usize) -> bool {
    if !may_hold(code, label) {
        return false;
    }
    let Ok(tokens) = crate::parse::scan(code) else {
        // Code that cannot be scanned: cautious, by its text.
        return code.contains(label);
    };
    tokens
        .iter()
        .filter(|t| t.token == Token::Sconst as i32 || t.token == Token::Usconst as i32)
        .filter_map(|t| code.get(t.start as usize..t.end as usize))
        .filter(|raw| may_hold(raw, label))
        .any(|raw| {
            let constant = decode(raw).unwrap_or_else(|| raw.to_string());
            is_label(&constant, label)
                || (depth < 3 && constant.contains(label) && body_uses(&constant, label, depth + 1))
        })
}

/// The value of a string constant as written (`'it''s'`, `E'\n'`,
/// `$x$...$x$`), decoded by the parser.
fn decode(raw: &str) -> Option<String> {
    let tree = serde_json::to_value(parse_one(&format!("SELECT {raw}"))?).ok()?;
    let mut found = None;
    walk(&tree, &mut |key, v| {
        if key == "AConst" && found.is_none() {
            found = v.pointer("/val/Sval/sval").and_then(Value::as_str).map(str::to_string);
        }
    });
    found
}

/// Calls `f` with every tagged node of a parse tree as JSON (`{"AConst": {...}}`).
fn walk(v: &Value, f: &mut impl FnMut(&str, &Value)) {
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

/// The location of the first string constant in `tree` equal to `label`.
fn constant_in(tree: &Value, label: &str) -> Option<usize> {
    let mut found = None;
    walk(tree, &mut |key, v| {
        if key != "AConst" || found.is_some() {
            return;
        }
        let text = v.pointer("/val/Sval/sval").and_then(Value::as_str);
        if text.is_some_and(|t| is_label(t, label)) {
            found = Some(location(v));
        }
    });
    found
}

fn location(v: &Value) -> usize {
    v.get("location").and_then(Value::as_i64).map_or(0, |l| l.max(0) as usize)
}

/// The functions `sql` calls, by name, with where.
fn called(sql: &str) -> Vec<(String, usize)> {
    let Some(node) = parse_one(sql) else { return Vec::new() };
    let Ok(tree) = serde_json::to_value(&node) else { return Vec::new() };
    let mut out = Vec::new();
    let mut take = |call: &Value| {
        let name = call
            .get("funcname")
            .and_then(Value::as_array)
            .and_then(|parts| parts.last())
            .and_then(|last| last.pointer("/node/String/sval"))
            .and_then(Value::as_str);
        if let Some(name) = name {
            out.push((name.to_string(), location(call)));
        }
    };
    if let Some(call) = tree.pointer("/CallStmt/funccall") {
        take(call);
    }
    walk(&tree, &mut |key, v| {
        if key == "FuncCall" {
            take(v);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::split;

    /// The first statement of `later` that uses a value `earlier` added,
    /// with how, as one transaction would meet them.
    fn first_use(earlier: &str, later: &str) -> Option<(usize, String)> {
        let before = split(earlier).unwrap();
        let after = split(later).unwrap();
        let mut tx: Transaction<'_, ()> = Transaction::default();
        for s in &before {
            tx.record(s, ());
        }
        for (i, s) in after.iter().enumerate() {
            if let Some((_, u)) = tx.uses(s) {
                return Some((i, u.how));
            }
            tx.record(s, ());
        }
        None
    }

    const ADD: &str = "ALTER TYPE mood ADD VALUE 'meh';";

    #[test]
    fn values_defaults_checks_views_and_atomic_bodies_use_the_label() {
        for sql in [
            "UPDATE people SET mood = 'meh' WHERE mood IS NULL",
            "INSERT INTO people (mood) VALUES ('ok'), ('meh')",
            "ALTER TABLE people ALTER COLUMN mood SET DEFAULT 'meh'",
            "ALTER TABLE people ADD CONSTRAINT c CHECK (mood <> E'm\\x65h')",
            "CREATE VIEW sad AS SELECT * FROM people WHERE mood = 'meh'::mood",
            "SELECT '{ok,meh}'::mood[]",
            "CREATE FUNCTION f() RETURNS mood LANGUAGE sql BEGIN ATOMIC SELECT 'meh'::mood; END",
        ] {
            let found = first_use(ADD, sql);
            assert_eq!(found.map(|f| f.0), Some(0), "{sql}");
        }
    }

    #[test]
    fn a_label_that_is_only_a_name_or_another_string_is_no_use() {
        for sql in [
            "ALTER TYPE mood ADD VALUE 'meh2' AFTER 'meh'",
            "COMMENT ON TYPE mood IS 'meh'",
            "UPDATE people SET note = 'meh and more'",
            "CREATE TABLE meh (id int)",
        ] {
            assert_eq!(first_use(ADD, sql), None, "{sql}");
        }
    }

    #[test]
    fn a_plpgsql_body_uses_the_label_only_when_it_runs() {
        let define = "CREATE FUNCTION cheer() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                      BEGIN IF NEW.mood = 'meh' THEN NEW.mood := 'ok'; END IF; RETURN NEW; END $$;";
        assert_eq!(first_use(ADD, define), None, "creating it runs nothing");
        let later = format!(
            "{define}\nCREATE TRIGGER t BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION cheer();\n\
             INSERT INTO other VALUES (1);\nINSERT INTO people (id) VALUES (1);"
        );
        let (at, how) = first_use(ADD, &later).expect("the insert fires the trigger");
        assert_eq!(at, 3, "{how}");
        assert!(how.contains("trigger runs cheer()"), "{how}");
        let call = format!("{define}\nSELECT cheer();");
        assert_eq!(first_use(ADD, &call).map(|f| f.0), Some(1));
    }

    #[test]
    fn do_blocks_and_sql_function_bodies_use_it_at_once_dynamic_sql_too() {
        for sql in [
            "DO $$ BEGIN UPDATE people SET mood = 'meh'; END $$",
            "DO $$ BEGIN EXECUTE 'UPDATE people SET mood = ''meh'''; END $$",
            "CREATE FUNCTION f() RETURNS mood LANGUAGE sql AS $$ SELECT 'meh'::mood $$",
        ] {
            assert_eq!(first_use(ADD, sql).map(|f| f.0), Some(0), "{sql}");
        }
        assert_eq!(first_use(ADD, "DO $$ BEGIN RAISE NOTICE 'fine'; END $$"), None);
    }

    #[test]
    fn a_value_added_to_a_type_of_the_same_transaction_is_still_new_and_a_commit_clears() {
        // PostgreSQL 12+ refuses it too (55P04): found on a real server by
        // the rehearsal of a long history.
        let created = format!("CREATE TYPE mood AS ENUM ('ok');\n{ADD}");
        assert_eq!(first_use(&created, "SELECT 'meh'::mood").map(|f| f.0), Some(0));
        // The labels CREATE TYPE itself lists are usable at once.
        assert_eq!(first_use("CREATE TYPE mood AS ENUM ('meh');", "SELECT 'meh'::mood"), None);
        let before = split(ADD).unwrap();
        let mut tx: Transaction<'_, ()> = Transaction::default();
        tx.record(&before[0], ());
        tx.commit();
        assert!(tx.added().is_empty());
    }
}
