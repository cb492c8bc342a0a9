//! BS702: a migration that uses what a platform creates before any migration.

use std::ops::Range;

use pg_query::protobuf::{ScanToken, Token};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use crate::stmt::Stmt;

/// **What it finds:** a statement that uses what the Supabase platform
/// creates in every project's database before the first migration: its
/// roles (`anon`, `authenticated`, `service_role`), the `auth` schema and
/// its functions (`auth.uid()`, `auth.jwt()`), the `extensions` schema and
/// the `supabase_realtime` publication, unless the migration creates it
/// first. Offline it is a note; with a database URL the check asks the
/// server, and a missing one is NO-GO, named with the statement's place.
///
/// **Why it hurts:** the statement fails on any database that lacks them:
/// a rehearsal copy restored without the platform's roles, a throwaway or
/// CI database, a self-hosted server. The error (`role "authenticated"
/// does not exist`, `schema "auth" does not exist`) comes from deep inside
/// a run and says nothing of the platform.
///
/// **Instead:** run the migration against the Supabase project's database,
/// or prepare the database that stands in for it first: create the roles
/// (NOLOGIN), the `auth` schema with `auth.uid()` and the `extensions`
/// schema, as the platform has them.
pub const META: Meta = Meta {
    name: "platform-dependency",
    family: Family::Extensions,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "a platform's role or schema missing on the target",
    mitigation: "Run against the platform's database, or create its roles and schemas first where a database stands in for it",
    phase: Phase::Statements,
};

/// The platform's roles, by name.
const ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];
/// The platform's schemas that migrations name.
const SCHEMAS: [&str; 2] = ["auth", "extensions"];
/// The platform's publication for realtime changes.
const PUBLICATION: &str = "supabase_realtime";

/// One use of a platform object: its kind, name and place in the file.
struct Use {
    kind: &'static str,
    name: String,
    span: Range<usize>,
}

/// A platform object's first use in a file, and how many more follow.
struct First<'s, 'a> {
    key: (&'static str, String),
    stmt: &'s Stmt<'a>,
    span: Range<usize>,
    more: usize,
}

/// Each platform object once per file, at its first use, with how many
/// more uses follow: a pulled schema grants to `anon` hundreds of times,
/// and one note (or, live, one NO-GO) per role says all there is to say.
pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let mut created: Vec<(&'static str, String)> = Vec::new();
    let mut first: Vec<First<'_, '_>> = Vec::new();
    for stmt in &cx.stmts {
        created.extend(creates(stmt));
        for u in uses(cx, stmt) {
            let key = (u.kind, u.name.clone());
            let made = |k: &(&str, String)| {
                *k == key || (u.kind == "function" && k.0 == "schema" && u.name.starts_with(&format!("{}.", k.1)))
            };
            if created.iter().any(made) {
                continue;
            }
            match first.iter_mut().find(|f| f.key == key) {
                Some(f) => f.more += 1,
                None => first.push(First { key, stmt, span: u.span, more: 0 }),
            }
        }
    }
    for First { key: (kind, name), stmt, span, more } in first {
        let what = match kind {
            "function" => format!("function {name}()"),
            kind => format!("{kind} {name}"),
        };
        let also = match more {
            0 => String::new(),
            1 => " (and 1 more use in this file)".to_string(),
            n => format!(" (and {n} more uses in this file)"),
        };
        out.push(
            Hit::new(
                Code::BS702,
                stmt,
                span,
                format!("uses the Supabase platform's {what}{also}, which the migration does not create"),
                "run it against the Supabase project's database; where another database stands in for it (a rehearsal copy, CI), create the platform's roles and schemas there first",
            )
            .subject(Subject::Platform { kind, name }),
        );
    }
}

/// What a statement creates of the platform's objects.
fn creates(stmt: &Stmt<'_>) -> Vec<(&'static str, String)> {
    match stmt.node {
        NodeEnum::CreateRoleStmt(r) => vec![("role", r.role.clone())],
        NodeEnum::CreateSchemaStmt(s) => vec![("schema", s.schemaname.clone())],
        NodeEnum::CreatePublicationStmt(p) => vec![("publication", p.pubname.clone())],
        NodeEnum::CreateFunctionStmt(f) => {
            let parts: Vec<String> =
                f.funcname.iter().filter_map(crate::stmt::string_value).map(str::to_string).collect();
            match parts.as_slice() {
                [schema, name] => vec![("function", format!("{schema}.{name}"))],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// The platform objects a statement names, from its tokens (so names in
/// strings and comments do not count).
fn uses(cx: &Cx<'_>, stmt: &Stmt<'_>) -> Vec<Use> {
    let tokens: Vec<&ScanToken> = cx.tokens(stmt).collect();
    let text = |t: &ScanToken| cx.input.text.get(t.start as usize..t.end as usize).unwrap_or("");
    let ident = |t: &ScanToken| -> Option<String> {
        let raw = text(t);
        if let Some(quoted) = raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            return Some(quoted.replace("\"\"", "\""));
        }
        (t.token == Token::Ident as i32).then(|| raw.to_ascii_lowercase())
    };
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Some(name) = ident(t) else { continue };
        let dot_after = tokens.get(i + 1).is_some_and(|n| text(n) == ".");
        let dot_before = i > 0 && text(tokens[i - 1]) == ".";
        let span = t.start as usize..t.end as usize;
        if dot_before {
            continue;
        }
        if ROLES.contains(&name.as_str()) {
            out.push(Use { kind: "role", name, span });
        } else if name == PUBLICATION {
            out.push(Use { kind: "publication", name, span });
        } else if SCHEMAS.contains(&name.as_str()) {
            let after_schema = i > 0 && text(tokens[i - 1]).eq_ignore_ascii_case("schema");
            let member = tokens.get(i + 2).filter(|_| dot_after).and_then(|m| ident(m));
            let called = tokens.get(i + 3).is_some_and(|p| text(p) == "(");
            match member {
                Some(member) if called => {
                    let end = tokens[i + 2].end as usize;
                    out.push(Use { kind: "function", name: format!("{name}.{member}"), span: span.start..end });
                }
                Some(_) => out.push(Use { kind: "schema", name, span }),
                None if after_schema => out.push(Use { kind: "schema", name, span }),
                None => {}
            }
        }
    }
    out
}
