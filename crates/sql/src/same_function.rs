//! Whether two function definitions (as `pg_get_functiondef` writes them)
//! are one function as PostgreSQL's parsers read them, where their texts
//! differ by more than tokens: parentheses that change no grouping, how
//! an expression is spaced or cased. The statement around the body is
//! compared as the SQL parser reads it; an SQL body as the SQL parser
//! reads it; a plpgsql body as the plpgsql parser reads it, each of its
//! expressions and statements as the SQL parser reads them. Where either
//! does not parse, or is in another language, they are not the same.

use pg_query::NodeEnum;
use serde_json::Value;

/// Whether definitions `a` and `b` are one function as read: the same
/// trees, and the same tokens but for parentheses (the plpgsql parser's
/// tree leaves out the variable a bare `RETURN x` returns, which the
/// tokens hold).
pub fn same_function(a: &str, b: &str) -> bool {
    let unparenthesized = |text: &str| {
        crate::compare::tokens(text)
            .map(|t| t.into_iter().filter(|t| t != "(" && t != ")").collect::<Vec<_>>())
    };
    matches!((unparenthesized(a), unparenthesized(b)), (Some(x), Some(y)) if x == y)
        && matches!((form(a), form(b)), (Some(x), Some(y)) if x == y)
}

/// A definition as read: the statement with its body left out, and the
/// body, each written back by the deparser.
fn form(definition: &str) -> Option<(String, String)> {
    let mut tree = pg_query::parse(definition, 0).ok()?.protobuf;
    let [raw] = tree.stmts.as_mut_slice() else { return None };
    let Some(NodeEnum::CreateFunctionStmt(f)) = raw.stmt.as_mut()?.node.as_mut() else {
        return None;
    };
    let (mut language, mut body) = (String::new(), None);
    for option in &mut f.options {
        let Some(NodeEnum::DefElem(d)) = option.node.as_mut() else { continue };
        let Some(arg) = d.arg.as_mut().and_then(|a| a.node.as_mut()) else { continue };
        match (d.defname.as_str(), arg) {
            ("language", NodeEnum::String(s)) => language = s.sval.to_ascii_lowercase(),
            // One string for SQL and plpgsql (two for C: object file, symbol).
            ("as", NodeEnum::List(list)) if list.items.len() == 1 => {
                if let Some(NodeEnum::String(s)) = list.items[0].node.as_mut() {
                    body = Some(std::mem::take(&mut s.sval));
                }
            }
            _ => {}
        }
    }
    let head = tree.deparse(pg_query::DeparseOptions::default()).ok()?;
    let body = match (language.as_str(), body) {
        // A body of BEGIN ATOMIC … END is in the statement itself.
        ("sql", None) => String::new(),
        ("sql", Some(body)) => sql(&body)?,
        ("plpgsql", Some(_)) => plpgsql(definition)?,
        _ => return None,
    };
    Some((head, body))
}

/// SQL as the parser reads it, written back.
fn sql(text: &str) -> Option<String> {
    let tree = pg_query::parse(text, 0).ok()?;
    tree.protobuf.deparse(pg_query::DeparseOptions::default()).ok()
}

/// A plpgsql expression or statement as the SQL parser reads it: a
/// statement as it is, an expression as the `SELECT` of it, an
/// assignment's target by name and its value as an expression.
fn expression(query: &str) -> Option<String> {
    if let Some(read) = sql(query) {
        return Some(read);
    }
    if let Some(read) = sql(&format!("SELECT {query}")) {
        return Some(read);
    }
    let (target, value) = query.split_once(":=")?;
    Some(format!("{} := {}", target.trim().to_ascii_lowercase(), sql(&format!("SELECT {value}"))?))
}

/// Whether an expression is one name alone, in parentheses or not.
fn bare_name(query: &str) -> bool {
    let name = query.trim().trim_start_matches('(').trim_end_matches(')').trim();
    !name.is_empty()
        && query.matches('(').count() == query.matches(')').count()
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A plpgsql function's body as its parser reads it, its line numbers
/// left out and its expressions written back by the SQL parser.
fn plpgsql(definition: &str) -> Option<String> {
    let mut tree = pg_query::parse_plpgsql(definition).ok()?;
    normalize(&mut tree)?;
    Some(tree.to_string())
}

fn normalize(v: &mut Value) -> Option<()> {
    match v {
        Value::Object(map) => {
            map.remove("lineno");
            map.remove("location");
            // `RETURN x` of a variable holds no expression in the tree
            // (it names the variable by number, which is not written out),
            // `RETURN (x)` the expression `(x)`: both read as the former,
            // the tokens (compared too) saying which name it is.
            if let Some(Value::Object(ret)) = map.get_mut("PLpgSQL_stmt_return") {
                let bare = ret
                    .get("expr")
                    .and_then(|e| e.pointer("/PLpgSQL_expr/query"))
                    .and_then(Value::as_str)
                    .is_some_and(bare_name);
                if bare {
                    ret.remove("expr");
                }
            }
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), inner) {
                    ("query", Value::String(q)) => *q = expression(q)?,
                    (_, inner) => normalize(inner)?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize(item)?;
            }
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plpgsql_def(body: &str) -> String {
        format!(
            "CREATE OR REPLACE FUNCTION public.total(a integer, b integer)\n RETURNS integer\n \
             LANGUAGE plpgsql\nAS $function$\n{body}\n$function$\n"
        )
    }

    #[test]
    fn parentheses_that_change_no_grouping_make_no_other_function() {
        let a = plpgsql_def("DECLARE t integer;\nBEGIN\n  t := (a + b);\n  IF (t > 10) THEN RETURN t + 1; END IF;\n  RETURN t * 2;\nEND");
        let b = plpgsql_def("declare t integer;\nbegin\n  t := a+b;\n  if t > 10 then return (t + 1); end if;\n  return (t * 2);\nend");
        assert!(same_function(&a, &b));
        // The tree leaves out which variable a bare RETURN returns.
        let x = plpgsql_def("BEGIN IF a > 0 THEN RETURN a; END IF; RETURN b; END");
        let y = plpgsql_def("BEGIN IF a > 0 THEN RETURN b; END IF; RETURN b; END");
        assert!(!same_function(&x, &y));
        // A variable returned in parentheses is the same return.
        let z = plpgsql_def("BEGIN IF a > 0 THEN RETURN (a); END IF; RETURN ((b)); END");
        assert!(same_function(&x, &z));
        let w = plpgsql_def("BEGIN IF a > 0 THEN RETURN (b); END IF; RETURN (b); END");
        assert!(!same_function(&x, &w));
        // Parentheses that group otherwise are another function.
        let c = plpgsql_def("DECLARE t integer;\nBEGIN\n  t := a + b;\n  IF t > 10 THEN RETURN t + 1; END IF;\n  RETURN t * 2 + 1;\nEND");
        assert!(!same_function(&a, &c));
        let d = plpgsql_def("BEGIN RETURN (a + b) * 2; END");
        let e = plpgsql_def("BEGIN RETURN a + b * 2; END");
        assert!(!same_function(&d, &e));
    }

    #[test]
    fn sql_bodies_and_the_statement_around_them_are_read_too() {
        let sql_def = |body: &str, volatility: &str| {
            format!(
                "CREATE OR REPLACE FUNCTION public.twice(x integer)\n RETURNS integer\n LANGUAGE sql\n \
                 {volatility}\nAS $function$ {body} $function$\n"
            )
        };
        assert!(same_function(
            &sql_def("SELECT (x * 2)", "IMMUTABLE"),
            &sql_def("select x*2", "IMMUTABLE")
        ));
        assert!(!same_function(
            &sql_def("SELECT x * 2", "IMMUTABLE"),
            &sql_def("SELECT x * 2", "STABLE")
        ));
        assert!(!same_function(
            &sql_def("SELECT x * 2", "IMMUTABLE"),
            &sql_def("SELECT x * 3", "IMMUTABLE")
        ));
        // Another language, or a body that does not parse, is not judged.
        let c = "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'f'";
        assert!(!same_function(c, c));
        assert!(!same_function(&sql_def("SELEC x", "IMMUTABLE"), &sql_def("SELEC x", "IMMUTABLE")));
    }
}
