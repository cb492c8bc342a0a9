//! BS702: a migration that uses what a platform creates before any migration.

use std::ops::Range;

use pg_query::NodeEnum;
use serde_json::Value;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::Stmt;

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
            let in_schema = |k: &(&str, String)| {
                k.0 == "schema" && u.name.starts_with(&format!("{}.", k.1))
            };
            let made = |k: &(&str, String)| *k == key || in_schema(k);
            if created.iter().any(made) || cx.run.platform_made.iter().any(made) {
                continue;
            }
            match first.iter_mut().find(|f| f.key == key) {
                Some(f) => f.more += 1,
                None => first.push(First { key, stmt, span: u.span, more: 0 }),
            }
        }
    }
    for First { key: (kind, name), stmt, span, more } in first {
        let what = describe(kind, &name);
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

/// How a message names a platform object: `function auth.uid()`, `table auth.users`.
pub fn describe(kind: &str, name: &str) -> String {
    match kind {
        "function" => format!("function {name}()"),
        kind => format!("{kind} {name}"),
    }
}

/// What a statement creates of the platform's objects: a project that
/// makes one itself (anywhere in the run) uses its own, not the platform's.
pub(crate) fn creates(stmt: &Stmt<'_>) -> Vec<(&'static str, String)> {
    let two = |names: &[pg_query::protobuf::Node]| -> Option<String> {
        let parts: Vec<&str> = names.iter().filter_map(backstop_sql::stmt::string_value).collect();
        match parts.as_slice() {
            [schema, name] => Some(format!("{schema}.{name}")),
            _ => None,
        }
    };
    match stmt.node {
        NodeEnum::CreateRoleStmt(r) => vec![("role", r.role.clone())],
        NodeEnum::CreateSchemaStmt(s) => vec![("schema", s.schemaname.clone())],
        NodeEnum::CreatePublicationStmt(p) => vec![("publication", p.pubname.clone())],
        NodeEnum::CreateFunctionStmt(f) => two(&f.funcname).map(|n| ("function", n)).into_iter().collect(),
        NodeEnum::CreateStmt(c) => c
            .relation
            .as_ref()
            .filter(|rv| !rv.schemaname.is_empty())
            .map(|rv| ("table", format!("{}.{}", rv.schemaname, rv.relname)))
            .into_iter()
            .collect(),
        NodeEnum::ViewStmt(v) => v
            .view
            .as_ref()
            .filter(|rv| !rv.schemaname.is_empty())
            .map(|rv| ("table", format!("{}.{}", rv.schemaname, rv.relname)))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The platform objects a statement names, read from its parse tree: a
/// table (`REFERENCES auth.users (id)`, `FROM auth.users`), a function
/// call (`auth.uid()`), a type (`extensions.vector`), a role (`TO
/// authenticated`, `SET ROLE anon`), a schema named as such (`GRANT USAGE
/// ON SCHEMA auth`, `CREATE EXTENSION … SCHEMA extensions`) and the
/// realtime publication. A column reference (`auth.email`, where `auth` is
/// a table of the project) names no schema; names in strings, comments
/// and function bodies do not count. Only a statement whose tokens hold
/// one of the platform's names is read whole.
fn uses(cx: &Cx<'_>, stmt: &Stmt<'_>) -> Vec<Use> {
    let names_one = cx.tokens(stmt).any(|t| {
        let raw = cx.input.text.get(t.start as usize..t.end as usize).unwrap_or("");
        let word = raw.trim_matches('"');
        let is = |name: &&str| word.eq_ignore_ascii_case(name);
        ROLES.iter().any(is) || SCHEMAS.iter().any(is) || is(&PUBLICATION)
    });
    if !names_one {
        return Vec::new();
    }
    let mut out = Vec::new();
    match stmt.node {
        NodeEnum::VariableSetStmt(v) if v.name == "role" => {
            for arg in &v.args {
                if let Some(NodeEnum::AConst(c)) = arg.node.as_ref() {
                    if let Some(pg_query::protobuf::a_const::Val::Sval(s)) = &c.val {
                        if ROLES.contains(&s.sval.as_str()) {
                            let span = cx.token_at(stmt, c.location);
                            out.push(Use { kind: "role", name: s.sval.clone(), span });
                        }
                    }
                }
            }
        }
        NodeEnum::AlterPublicationStmt(p) if p.pubname == PUBLICATION => {
            let span = cx.name_token(stmt, PUBLICATION, 0).unwrap_or_else(|| cx.head(stmt, 2));
            out.push(Use { kind: "publication", name: PUBLICATION.into(), span });
        }
        NodeEnum::GrantStmt(g) if g.objtype() == pg_query::protobuf::ObjectType::ObjectSchema => {
            for schema in g.objects.iter().filter_map(backstop_sql::stmt::string_value) {
                if SCHEMAS.contains(&schema) {
                    schema_use(cx, stmt, schema, &mut out);
                }
            }
        }
        NodeEnum::CreateExtensionStmt(e) => {
            for o in &e.options {
                if let Some(NodeEnum::DefElem(d)) = o.node.as_ref() {
                    let schema = d.arg.as_deref().and_then(backstop_sql::stmt::string_value);
                    if let Some(schema) = schema.filter(|s| d.defname == "schema" && SCHEMAS.contains(s)) {
                        schema_use(cx, stmt, schema, &mut out);
                    }
                }
            }
        }
        _ => {}
    }
    if let NodeEnum::GrantStmt(g) = stmt.node {
        // The common case (a pulled schema grants to the platform's roles
        // hundreds of times), read from its fields rather than walked.
        grant_uses(cx, stmt, g, &mut out);
        return out;
    }
    let Ok(tree) = serde_json::to_value(stmt.node) else { return out };
    walk(&tree, &mut |v| {
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default();
        let at = |key: &str| v.get(key).and_then(Value::as_i64).unwrap_or(-1) as i32;
        let two = |key: &str| -> Option<(String, String)> {
            let parts: Vec<&str> = v
                .get(key)?
                .as_array()?
                .iter()
                .filter_map(|p| p.pointer("/node/String/sval").and_then(Value::as_str))
                .collect();
            match parts.as_slice() {
                [schema, name] if SCHEMAS.contains(schema) => Some((schema.to_string(), name.to_string())),
                _ => None,
            }
        };
        // Each node kind by its shape: a relation, a function call, a
        // type name and a role appear both tagged and as plain fields.
        if v.get("relpersistence").is_some() && SCHEMAS.contains(&text("schemaname")) {
            let name = format!("{}.{}", text("schemaname"), text("relname"));
            out.push(Use { kind: "table", name, span: cx.tokens_from(stmt, at("location"), 3) });
        } else if v.get("agg_star").is_some() {
            if let Some((schema, name)) = two("funcname") {
                let span = cx.tokens_from(stmt, at("location"), 3);
                out.push(Use { kind: "function", name: format!("{schema}.{name}"), span });
            }
        } else if v.get("typemod").is_some() {
            if let Some((schema, name)) = two("names") {
                let span = cx.tokens_from(stmt, at("location"), 3);
                out.push(Use { kind: "type", name: format!("{schema}.{name}"), span });
            }
        } else if v.get("roletype").is_some() && ROLES.contains(&text("rolename")) {
            let span = cx.token_at(stmt, at("location"));
            out.push(Use { kind: "role", name: text("rolename").to_string(), span });
        }
    });
    out
}

/// What a `GRANT` or `REVOKE` of privileges on objects names of the
/// platform's: the roles it grants to (or by), the tables and the types
/// of routines' arguments in the platform's schemas. Grants on a schema
/// are read before, as schemas.
fn grant_uses(cx: &Cx<'_>, stmt: &Stmt<'_>, g: &pg_query::protobuf::GrantStmt, out: &mut Vec<Use>) {
    let role = |r: &pg_query::protobuf::RoleSpec, out: &mut Vec<Use>| {
        if ROLES.contains(&r.rolename.as_str()) {
            let span = cx.token_at(stmt, r.location);
            out.push(Use { kind: "role", name: r.rolename.clone(), span });
        }
    };
    for grantee in &g.grantees {
        if let Some(NodeEnum::RoleSpec(r)) = grantee.node.as_ref() {
            role(r, out);
        }
    }
    if let Some(r) = &g.grantor {
        role(r, out);
    }
    for object in &g.objects {
        match object.node.as_ref() {
            Some(NodeEnum::RangeVar(rv)) if SCHEMAS.contains(&rv.schemaname.as_str()) => {
                let name = format!("{}.{}", rv.schemaname, rv.relname);
                out.push(Use { kind: "table", name, span: cx.tokens_from(stmt, rv.location, 3) });
            }
            Some(NodeEnum::ObjectWithArgs(f)) => {
                for arg in &f.objargs {
                    let Some(NodeEnum::TypeName(t)) = arg.node.as_ref() else { continue };
                    let parts: Vec<&str> = t.names.iter().filter_map(backstop_sql::stmt::string_value).collect();
                    if let [schema, name] = parts.as_slice() {
                        if SCHEMAS.contains(schema) {
                            let span = cx.tokens_from(stmt, t.location, 3);
                            out.push(Use { kind: "type", name: format!("{schema}.{name}"), span });
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Every object of a JSON tree, depth first.
fn walk(v: &Value, f: &mut impl FnMut(&Value)) {
    match v {
        Value::Object(map) => {
            f(v);
            map.values().for_each(|inner| walk(inner, f));
        }
        Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
        _ => {}
    }
}

/// A platform schema named as a schema, at its name in the statement.
fn schema_use(cx: &Cx<'_>, stmt: &Stmt<'_>, schema: &str, out: &mut Vec<Use>) {
    let span = cx.name_token(stmt, schema, 0).unwrap_or_else(|| cx.head(stmt, 2));
    out.push(Use { kind: "schema", name: schema.to_string(), span });
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    /// The platform objects BS702 names in a run of files.
    fn named(files: &[&str]) -> Vec<String> {
        let inputs: Vec<Input<'_>> = files.iter().map(|t| Input::file("t.sql", t)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS702).map(|f| f.message.clone()).collect()
    }

    #[test]
    fn a_foreign_key_to_auth_users_is_a_table_not_a_function() {
        let found = named(&["create table profiles (id uuid primary key references auth.users(id));"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("table auth.users"), "{found:?}");
        let insert = named(&["insert into auth.users (id) values ('00000000-0000-0000-0000-000000000001');"]);
        assert!(insert[0].contains("table auth.users"), "{insert:?}");
        let call = named(&["create policy p on t using (owner = auth.uid());"]);
        assert!(call[0].contains("function auth.uid()"), "{call:?}");
    }

    #[test]
    fn a_projects_own_table_named_auth_is_no_platform_use() {
        let found = named(&[
            "create table auth (email text, user_id int);",
            "select auth.email from auth where auth.user_id = 1;",
        ]);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn an_object_another_file_of_the_run_creates_is_the_projects_own() {
        let found = named(&[
            "create schema auth;\ncreate function auth.uid() returns uuid language sql as $$ select null::uuid $$;",
            "create policy p on t using (owner = auth.uid());",
            "create role anon nologin;",
            "grant select on t to anon;",
        ]);
        assert_eq!(found, Vec::<String>::new());
        // Names in strings and function bodies do not count.
        let quoted = named(&["create function f() returns void language plpgsql as $$ begin perform auth.uid(); end $$;\ncomment on table t is 'for anon';"]);
        assert_eq!(quoted, Vec::<String>::new());
    }

    #[test]
    fn roles_schemas_types_and_the_publication_are_named() {
        let found = named(&["grant usage on schema auth to authenticated;\nset role anon;\ncreate extension if not exists pgcrypto schema extensions;\ncreate table v (e extensions.vector(3));\nalter publication supabase_realtime add table v;"]);
        let all = found.join("\n");
        for what in ["schema auth", "role authenticated", "role anon", "schema extensions", "type extensions.vector", "publication supabase_realtime"] {
            assert!(all.contains(what), "{what} missing from {all}");
        }
    }
}
