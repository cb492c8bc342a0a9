//! What a history is written on: the names its statements use (every
//! identifier, and those written as a qualifier, `auth.` in `auth.uid()`,
//! function bodies included) and what it creates itself (schemas, roles,
//! extensions, publications, relations, types and functions, and the
//! triggers, policies, rules and indexes it attaches to tables). A replay
//! starts from what the target has of the first and not of the second.
//! And where a statement reaches beyond the database it runs in (roles,
//! `ALTER SYSTEM`, tablespaces, other databases, subscriptions).

use std::collections::BTreeSet;

use pg_query::protobuf::{self, Token};
use pg_query::NodeEnum;

/// The names a history uses and the objects it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Every identifier, lower-cased (quoted ones as written).
    pub names: BTreeSet<String>,
    /// Identifiers written before a `.`: schemas, or tables in a column
    /// reference; a schema is used when its name is here.
    pub qualifiers: BTreeSet<String>,
    /// Made by the history (`IF NOT EXISTS` ones are not: they may be the
    /// platform's, and are then taken from the target).
    pub created_schemas: BTreeSet<String>,
    pub created_roles: BTreeSet<String>,
    pub created_extensions: BTreeSet<String>,
    /// Extensions made with `IF NOT EXISTS`: the platform's when it had
    /// them before the history began, else the history's.
    pub maybe_created_extensions: BTreeSet<String>,
    pub created_publications: BTreeSet<String>,
    /// Relations, types and functions: `(schema or "", name)`.
    pub created_objects: BTreeSet<(String, String)>,
    /// Triggers, policies and rules by `(table, name)`; indexes by `("", name)`.
    pub attached: BTreeSet<(String, String)>,
}

impl Refs {
    /// Adds one statement of the history.
    pub fn add(&mut self, sql: &str) {
        self.scan(sql, 0);
        let Ok(tree) = pg_query::parse(sql, 0) else { return };
        for raw in &tree.protobuf.stmts {
            if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                self.created(node);
            }
        }
    }

    /// Identifiers and qualifiers of `sql`, and of the bodies in it (a
    /// function's, a `DO` block's), one level down.
    fn scan(&mut self, sql: &str, depth: u8) {
        let Ok(tokens) = crate::parse::scan(sql) else { return };
        let text =
            |t: &protobuf::ScanToken| sql.get(t.start as usize..t.end as usize).unwrap_or("");
        for (i, t) in tokens.iter().enumerate() {
            let raw = text(t);
            if t.token == Token::Sconst as i32 && raw.starts_with('$') && depth == 0 {
                // A dollar-quoted body: `$tag$ … $tag$`.
                if let Some(open) = raw[1..].find('$') {
                    let tag_len = open + 2;
                    if raw.len() >= 2 * tag_len {
                        self.scan(&raw[tag_len..raw.len() - tag_len], depth + 1);
                    }
                }
                continue;
            }
            let name = if t.token == Token::Ident as i32 {
                match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None => raw.to_ascii_lowercase(),
                }
            } else if raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !raw.is_empty()
            {
                // Unreserved keywords are names too (`name`, `version`).
                raw.to_ascii_lowercase()
            } else {
                continue;
            };
            if tokens.get(i + 1).is_some_and(|n| text(n) == ".") {
                self.qualifiers.insert(name.clone());
            }
            self.names.insert(name);
        }
    }

    fn created(&mut self, node: &NodeEnum) {
        let rv = |r: &Option<protobuf::RangeVar>| {
            r.as_ref().map(|r| (r.schemaname.clone(), r.relname.clone()))
        };
        let parts = |names: &[protobuf::Node]| -> Option<(String, String)> {
            let p: Vec<&str> = names.iter().filter_map(crate::stmt::string_value).collect();
            match p.as_slice() {
                [name] => Some((String::new(), name.to_string())),
                [schema, name] => Some((schema.to_string(), name.to_string())),
                _ => None,
            }
        };
        let object = match node {
            // `IF NOT EXISTS` is written for what may be there already (a
            // platform's schema or extension): it is not the history's own.
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => {
                self.created_schemas.insert(s.schemaname.clone());
                None
            }
            NodeEnum::CreateRoleStmt(r) => {
                self.created_roles.insert(r.role.clone());
                None
            }
            NodeEnum::CreateExtensionStmt(e) if !e.if_not_exists => {
                self.created_extensions.insert(e.extname.clone());
                None
            }
            NodeEnum::CreateExtensionStmt(e) => {
                self.maybe_created_extensions.insert(e.extname.clone());
                None
            }
            NodeEnum::CreatePublicationStmt(p) => {
                self.created_publications.insert(p.pubname.clone());
                None
            }
            NodeEnum::CreateStmt(c) => rv(&c.relation),
            NodeEnum::ViewStmt(v) => rv(&v.view),
            NodeEnum::CreateSeqStmt(s) => rv(&s.sequence),
            NodeEnum::CreateTableAsStmt(c) => c.into.as_ref().and_then(|i| rv(&i.rel)),
            NodeEnum::CompositeTypeStmt(c) => rv(&c.typevar),
            NodeEnum::CreateEnumStmt(e) => parts(&e.type_name),
            NodeEnum::CreateDomainStmt(d) => parts(&d.domainname),
            NodeEnum::CreateFunctionStmt(f) => parts(&f.funcname),
            NodeEnum::CreateTrigStmt(t) => {
                let table = rv(&t.relation).map(|(_, n)| n).unwrap_or_default();
                self.attached.insert((table, t.trigname.clone()));
                None
            }
            NodeEnum::CreatePolicyStmt(p) => {
                let table = rv(&p.table).map(|(_, n)| n).unwrap_or_default();
                self.attached.insert((table, p.policy_name.clone()));
                None
            }
            NodeEnum::RuleStmt(r) => {
                let table = rv(&r.relation).map(|(_, n)| n).unwrap_or_default();
                self.attached.insert((table, r.rulename.clone()));
                None
            }
            NodeEnum::IndexStmt(i) => {
                self.attached.insert((String::new(), i.idxname.clone()));
                None
            }
            _ => None,
        };
        if let Some(o) = object {
            self.created_objects.insert(o);
        }
    }

    /// Whether the history creates `(schema, name)` (with or without the schema).
    pub fn creates(&self, schema: &str, name: &str) -> bool {
        self.created_objects.contains(&(schema.to_string(), name.to_string()))
            || self.created_objects.contains(&(String::new(), name.to_string()))
    }
}

/// Where a statement reaches beyond the database it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// It changes what every database of the server shares (roles, their
    /// settings and memberships, `ALTER SYSTEM`, other databases): a copy
    /// on the target's server would change production.
    Server(String),
    /// It cannot be rehearsed anywhere without reaching outside (a
    /// tablespace's directory on the server's host, a subscription that
    /// connects to another server).
    Outside(String),
}

/// Whether `sql` creates, changes, drops or comments on an extension:
/// where PostgreSQL asks for a superuser (an untrusted extension) and a
/// managed platform lets its database's owner through hooks of its own.
pub fn on_extension(sql: &str) -> bool {
    use protobuf::ObjectType;
    let Ok(tree) = pg_query::parse(sql, 0) else { return false };
    tree.protobuf.stmts.iter().filter_map(|s| s.stmt.as_ref()?.node.as_ref()).any(|n| match n {
        NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::AlterExtensionStmt(_)
        | NodeEnum::AlterExtensionContentsStmt(_) => true,
        NodeEnum::DropStmt(d) => d.remove_type() == ObjectType::ObjectExtension,
        NodeEnum::CommentStmt(c) => c.objtype() == ObjectType::ObjectExtension,
        _ => false,
    })
}

/// Where `sql` (one statement) reaches beyond its database, if it does. A
/// `DO` block is read too; a dynamic `EXECUTE` in one may do anything and
/// counts as reaching the server.
pub fn reach(sql: &str) -> Option<Reach> {
    let tree = pg_query::parse(sql, 0).ok()?;
    let node = tree.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    reach_of(node)
}

fn reach_of(node: &NodeEnum) -> Option<Reach> {
    let server = |what: &str| Some(Reach::Server(what.to_string()));
    match node {
        NodeEnum::CreateRoleStmt(_) => server("CREATE ROLE"),
        NodeEnum::AlterRoleStmt(_) => server("ALTER ROLE"),
        NodeEnum::AlterRoleSetStmt(_) => server("ALTER ROLE … SET"),
        NodeEnum::DropRoleStmt(_) => server("DROP ROLE"),
        NodeEnum::GrantRoleStmt(_) => server("GRANT or REVOKE of a role"),
        NodeEnum::AlterSystemStmt(_) => server("ALTER SYSTEM"),
        NodeEnum::CreatedbStmt(_) => server("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => server("DROP DATABASE"),
        NodeEnum::AlterDatabaseStmt(_) => server("ALTER DATABASE"),
        NodeEnum::AlterDatabaseSetStmt(_) => server("ALTER DATABASE … SET"),
        NodeEnum::ReassignOwnedStmt(_) => server("REASSIGN OWNED"),
        NodeEnum::RenameStmt(r)
            if matches!(
                r.rename_type(),
                protobuf::ObjectType::ObjectRole
                    | protobuf::ObjectType::ObjectDatabase
                    | protobuf::ObjectType::ObjectTablespace
            ) =>
        {
            server("a rename of a role, database or tablespace")
        }
        NodeEnum::CommentStmt(c)
            if matches!(
                c.objtype(),
                protobuf::ObjectType::ObjectRole
                    | protobuf::ObjectType::ObjectDatabase
                    | protobuf::ObjectType::ObjectTablespace
            ) =>
        {
            server("a comment on a role, database or tablespace")
        }
        NodeEnum::CreateTableSpaceStmt(_) => {
            Some(Reach::Outside("CREATE TABLESPACE names a directory on the server's host".into()))
        }
        NodeEnum::DropTableSpaceStmt(_) | NodeEnum::AlterTableSpaceOptionsStmt(_) => {
            Some(Reach::Outside("a tablespace lives on the server's host".into()))
        }
        NodeEnum::CreateSubscriptionStmt(_) | NodeEnum::AlterSubscriptionStmt(_) => {
            Some(Reach::Outside("a subscription connects to another server and changes it".into()))
        }
        NodeEnum::DoStmt(d) => do_reach(d),
        _ => None,
    }
}

/// A `DO` block's statements, read with the plpgsql parser; an `EXECUTE`
/// of a constant string is read as the statement it holds.
fn do_reach(d: &protobuf::DoStmt) -> Option<Reach> {
    let tree = match crate::plpgsql::do_tree(d) {
        Ok(Some(tree)) => tree,
        Ok(None) => return None,
        Err(_) => return Some(Reach::Server("a DO block whose plpgsql does not parse".into())),
    };
    let in_do = |r: Reach| match r {
        Reach::Server(w) => Reach::Server(format!("{w} in a DO block")),
        other => other,
    };
    let mut found = None;
    walk(&tree, &mut |key, v| {
        if found.is_some() {
            return;
        }
        match key {
            "PLpgSQL_stmt_execsql" => {
                let q = v.pointer("/sqlstmt/PLpgSQL_expr/query").and_then(|q| q.as_str());
                found = q.and_then(reach).map(in_do);
            }
            "PLpgSQL_stmt_dynexecute" => {
                found = match crate::plpgsql::constant_execute(v) {
                    Some(sql) => reach(&sql).map(in_do),
                    None => {
                        Some(Reach::Server("a DO block's EXECUTE of SQL built at run time".into()))
                    }
                };
            }
            _ => {}
        }
    });
    found
}

fn walk(v: &serde_json::Value, f: &mut impl FnMut(&str, &serde_json::Value)) {
    match v {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                f(key, inner);
                walk(inner, f);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_on_extensions_are_told_from_the_rest() {
        for sql in [
            "create extension if not exists dblink with schema extensions",
            "ALTER EXTENSION postgis UPDATE",
            "DROP EXTENSION IF EXISTS pg_net",
            "comment on extension pg_trgm is 'fuzzy'",
        ] {
            assert!(on_extension(sql), "{sql}");
        }
        for sql in
            ["DROP TABLE extensions", "CREATE SCHEMA extensions", "SELECT 'create extension'"]
        {
            assert!(!on_extension(sql), "{sql}");
        }
    }

    #[test]
    fn a_supabase_history_uses_the_platforms_schemas_and_creates_its_own() {
        let mut r = Refs::default();
        for sql in [
            "create table public.profiles (id uuid references auth.users (id), avatar text)",
            "create function public.handle_new_user() returns trigger language plpgsql security definer as $$ begin insert into public.profiles (id) values (new.id); perform storage.foldername('x'); return new; end $$",
            "create trigger on_auth_user_created after insert on auth.users for each row execute function public.handle_new_user()",
            "create policy \"avatar read\" on storage.objects for select using (bucket_id = 'avatars')",
            "create schema app",
            "create schema if not exists extensions",
            "create extension if not exists vector with schema extensions",
            "create extension citext",
            "create index profiles_avatar_idx on public.profiles (avatar)",
        ] {
            r.add(sql);
        }
        for q in ["auth", "storage", "public"] {
            assert!(r.qualifiers.contains(q), "{q} in {:?}", r.qualifiers);
        }
        assert!(
            r.names.contains("extensions")
                && r.names.contains("uuid")
                && r.names.contains("avatar")
        );
        assert!(r.created_schemas.contains("app"));
        // What may be there already is not the history's own.
        assert!(!r.created_schemas.contains("extensions"));
        assert!(
            r.created_extensions.contains("citext") && !r.created_extensions.contains("vector")
        );
        assert!(r.creates("public", "profiles") && r.creates("public", "handle_new_user"));
        assert!(r.attached.contains(&("users".into(), "on_auth_user_created".into())));
        assert!(r.attached.contains(&("objects".into(), "avatar read".into())));
        assert!(r.attached.contains(&(String::new(), "profiles_avatar_idx".into())));
    }

    #[test]
    fn statements_that_reach_the_server_or_outside_are_told() {
        for sql in [
            "create role app_reader nologin",
            "alter role app set search_path = app, public",
            "grant app_reader to authenticated",
            "alter system set work_mem = '64MB'",
            "do $$ begin if not exists (select from pg_roles where rolname = 'x') then create role x; end if; end $$",
            "do $$ begin execute 'create role y'; end $$",
            "do $$ begin execute format('alter table %I rename column a to b', 't'); end $$",
        ] {
            assert!(matches!(reach(sql), Some(Reach::Server(_))), "{sql}: {:?}", reach(sql));
        }
        for sql in [
            "create tablespace fast location '/mnt/fast'",
            "create subscription s connection 'host=prod' publication p",
        ] {
            assert!(matches!(reach(sql), Some(Reach::Outside(_))), "{sql}");
        }
        for sql in [
            "create table t (id int)",
            "grant select on t to anon",
            "do $$ begin update t set id = 1; end $$",
            // A constant EXECUTE is the statement it holds, not SQL built at run time.
            "do $$ begin if exists (select 1 from pg_attribute where attname = 'a') then \
             execute 'alter table t rename column a to b'; end if; end $$",
        ] {
            assert_eq!(reach(sql), None, "{sql}");
        }
    }
}
