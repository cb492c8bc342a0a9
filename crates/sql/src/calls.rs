//! The functions a statement calls when it runs (`SELECT cron.schedule(…)`,
//! `CALL app.refresh()`, `PERFORM vault.create_secret(…)` in a `DO`
//! block), with the constants they are given: a call of a volatile
//! function changes something no schema picture shows (a job scheduled, a
//! secret stored, a request sent), so a down must undo it, or say it
//! cannot. DDL is left out: a function named in a default or an index
//! runs later, on rows, not when the migration runs.

use pg_query::protobuf::{self, Node};
use pg_query::NodeEnum;
use serde_json::Value;

/// One call: the function's schema (as written) and name, and its
/// arguments, each with its name (`url := …`) and its value when it is a
/// constant (a string's text, a number as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub schema: Option<String>,
    pub name: String,
    pub args: Vec<(Option<String>, Option<String>)>,
}

impl Call {
    /// The argument at `position`, or named `name`.
    pub fn arg(&self, position: usize, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .or_else(|| self.args.get(position).filter(|(n, _)| n.is_none()))
            .and_then(|(_, v)| v.as_deref())
    }

    /// `schema.name`, or `name`.
    pub fn shown(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Why the call reaches outside the database, if it does: pg_net's
    /// `net.http_*` sends an HTTP request, dblink runs SQL elsewhere, the
    /// server-side large object and file functions read or write files
    /// on the server's host. Such a call is never run on a copy: a copy's
    /// server runs on the machine Backstop runs on.
    pub fn reaches_outside(&self) -> Option<&'static str> {
        let name = self.name.as_str();
        if self.schema.as_deref() == Some("net") && name.starts_with("http_") {
            return Some("pg_net sends an HTTP request");
        }
        if name.starts_with("dblink") && name != "dblink_connect" {
            return Some("dblink runs SQL on another database");
        }
        match name {
            "lo_export" | "lo_import" if !self.args.is_empty() => {
                Some("it reads or writes a file on the server's host")
            }
            "pg_file_write" | "pg_file_rename" | "pg_file_unlink" | "pg_file_sync" => {
                Some("it writes a file on the server's host")
            }
            "pg_read_file" | "pg_read_binary_file" | "pg_ls_dir" | "pg_stat_file" => {
                Some("it reads the server host's files")
            }
            _ => None,
        }
    }
}

/// Whether `sql` may call a function when it runs (a `SELECT`, `CALL` or
/// `DO`): the others need not be parsed again (a data migration's
/// `INSERT`s may be megabytes).
pub fn may_call(sql: &str) -> bool {
    let head: String = sql.trim_start().chars().take(6).collect::<String>().to_ascii_lowercase();
    ["select", "call", "do", "with", "("].iter().any(|k| head.starts_with(k))
}

/// Words one of which a statement that reaches outside the database
/// holds: most statements need not be parsed again to know they do not.
const OUTSIDE_WORDS: [&str; 7] =
    ["http_", "dblink", "copy", "lo_export", "lo_import", "pg_file_", "pg_read_"];

/// What in `sql` (one statement) reaches outside the database, if
/// anything does: the first such call, as `schema.name`, or a `COPY` to
/// or from a program or a file on the server's host (also in a `DO`
/// block), as `COPY … PROGRAM` or `COPY … a server file`.
pub fn reaches_outside(sql: &str) -> Option<String> {
    // Only a COPY, or a statement that may call a function (a DO block
    // among them), can: a data migration's INSERTs are not read again.
    let head = sql.trim_start().get(..4).unwrap_or_default();
    if !(may_call(sql) || head.eq_ignore_ascii_case("copy")) {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    if !OUTSIDE_WORDS.iter().any(|w| lower.contains(w)) {
        return None;
    }
    if let Some(copy) = copy_outside(sql) {
        return Some(copy);
    }
    calls(sql).into_iter().find(|c| c.reaches_outside().is_some()).map(|c| c.shown())
}

/// A `COPY` in `sql` that runs a program or reads or writes a file on the
/// server's host (`COPY … TO PROGRAM 'touch …'`, `COPY t FROM '/data'`),
/// where the statement or a `DO` block's statement is one; `STDIN` and
/// `STDOUT` stay between server and client.
fn copy_outside(sql: &str) -> Option<String> {
    let tree = pg_query::parse(sql, 0).ok()?;
    for raw in &tree.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::CopyStmt(c)) if c.is_program => {
                let way = if c.is_from { "FROM" } else { "TO" };
                return Some(format!("COPY … {way} PROGRAM"));
            }
            Some(NodeEnum::CopyStmt(c)) if !c.filename.is_empty() => {
                let way = if c.is_from { "FROM" } else { "TO" };
                return Some(format!("COPY … {way} a server file"));
            }
            Some(NodeEnum::DoStmt(d)) => {
                if let Some(found) = do_queries(d).iter().find_map(|q| copy_outside(q)) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// The calls `sql` (one statement) makes when it runs: those of a
/// `SELECT`, a `CALL`, and the `SELECT`s, `PERFORM`s and `CALL`s of a `DO`
/// block.
pub fn calls(sql: &str) -> Vec<Call> {
    let Ok(tree) = pg_query::parse(sql, 0) else { return Vec::new() };
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::SelectStmt(s)) => collect(&NodeEnum::SelectStmt(s.clone()), &mut out),
            Some(NodeEnum::CallStmt(c)) => {
                if let Some(f) = &c.funccall {
                    out.push(call(f));
                }
            }
            Some(NodeEnum::DoStmt(d)) => out.extend(do_block(d)),
            _ => {}
        }
    }
    out
}

fn call(f: &protobuf::FuncCall) -> Call {
    let names: Vec<&str> = f.funcname.iter().filter_map(crate::stmt::string_value).collect();
    let (schema, name) = match names.as_slice() {
        [.., s, n] => (Some(s.to_string()), n.to_string()),
        [n] => (None, n.to_string()),
        [] => (None, String::new()),
    };
    let args = f
        .args
        .iter()
        .map(|a| match a.node.as_ref() {
            Some(NodeEnum::NamedArgExpr(n)) => {
                (Some(n.name.clone()), n.arg.as_deref().and_then(constant))
            }
            _ => (None, constant(a)),
        })
        .collect();
    Call { schema, name, args }
}

/// A constant's value: a string's text, a number as written, through casts.
fn constant(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
            protobuf::a_const::Val::Ival(i) => Some(i.ival.to_string()),
            protobuf::a_const::Val::Fval(f) => Some(f.fval.clone()),
            protobuf::a_const::Val::Boolval(b) => Some(b.boolval.to_string()),
            protobuf::a_const::Val::Bsval(b) => Some(b.bsval.clone()),
        },
        NodeEnum::TypeCast(c) => c.arg.as_deref().and_then(constant),
        _ => None,
    }
}

/// Every function call in a statement's tree, outermost first.
fn collect(node: &NodeEnum, out: &mut Vec<Call>) {
    for (n, _, _, _) in node.nodes() {
        if let pg_query::NodeRef::FuncCall(f) = n {
            out.push(call(f));
        }
    }
}

/// The calls of a `DO` block's statements, read with the plpgsql parser.
fn do_block(d: &protobuf::DoStmt) -> Vec<Call> {
    do_queries(d).iter().flat_map(|q| calls(q)).collect()
}

/// The statements a `DO` block runs as SQL (its plain statements, and its
/// `PERFORM`s and `CALL`s), each as a statement of its own.
fn do_queries(d: &protobuf::DoStmt) -> Vec<String> {
    let Ok(Some(tree)) = crate::plpgsql::do_tree(d) else { return Vec::new() };
    let mut out = Vec::new();
    crate::plpgsql::walk(&tree, &mut |key, v| {
        let query = match key {
            "PLpgSQL_stmt_execsql" => v.pointer("/sqlstmt/PLpgSQL_expr/query"),
            "PLpgSQL_stmt_perform" | "PLpgSQL_stmt_call" => v.pointer("/expr/PLpgSQL_expr/query"),
            _ => None,
        };
        let Some(query) = query.and_then(Value::as_str) else { return };
        out.push(match key {
            // PERFORM's expression is a SELECT without its keyword.
            "PLpgSQL_stmt_perform"
                if !query.trim_start().to_ascii_lowercase().starts_with("select") =>
            {
                format!("SELECT {query}")
            }
            _ => query.to_string(),
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_and_server_files_reach_outside() {
        let outside = |sql: &str| reaches_outside(sql);
        assert_eq!(
            outside("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'").as_deref(),
            Some("COPY … TO PROGRAM")
        );
        assert_eq!(
            outside("copy t from program 'curl example.com'").as_deref(),
            Some("COPY … FROM PROGRAM")
        );
        assert_eq!(outside("COPY t TO '/tmp/t.csv'").as_deref(), Some("COPY … TO a server file"));
        assert_eq!(
            outside("DO $$ BEGIN COPY t FROM '/srv/seed.csv'; END $$").as_deref(),
            Some("COPY … FROM a server file")
        );
        assert_eq!(outside("SELECT lo_export(16401, '/tmp/blob')").as_deref(), Some("lo_export"));
        assert_eq!(
            outside("SELECT pg_file_write('x', 'y', false)").as_deref(),
            Some("pg_file_write")
        );
        assert_eq!(
            outside("DO $$ BEGIN PERFORM pg_read_file('/etc/hosts'); END $$").as_deref(),
            Some("pg_read_file")
        );
        // Between server and client, or no file at all: not outside.
        assert_eq!(outside("COPY t FROM STDIN"), None);
        assert_eq!(outside("COPY t TO STDOUT"), None);
        assert_eq!(outside("SELECT lo_create(0)"), None);
        assert_eq!(outside("CREATE TABLE copy_of_t (id int)"), None);
    }

    #[test]
    fn calls_are_read_with_their_constants() {
        let c = calls("select cron.schedule('nightly-clean', '0 3 * * *', $$ delete from logs $$)");
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].shown(), "cron.schedule");
        assert_eq!(c[0].arg(0, "job_name"), Some("nightly-clean"));
        let named = calls("SELECT vault.create_secret('s3cret', new_name => 'stripe_key')");
        assert_eq!(named[0].arg(1, "new_name"), Some("stripe_key"));
        let net =
            calls("select net.http_post(url := 'https://example.com', body := '{}'::jsonb) as id");
        assert_eq!(net[0].shown(), "net.http_post");
        let block = calls("do $$ begin perform cron.unschedule('old'); call app.refresh(); end $$");
        let names: Vec<String> = block.iter().map(Call::shown).collect();
        assert_eq!(names, ["cron.unschedule", "app.refresh"]);
        assert_eq!(calls("create table t (id int default nextval('s'))"), []);
    }
}
