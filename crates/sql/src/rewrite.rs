//! Small rewrites of single DDL statements through the real parser and
//! deparser, for the downs Backstop computes from `pg_dump`'s definitions:
//! `CREATE` to `CREATE OR REPLACE`, a comment cleared, a grant taken back,
//! and questions about a statement (does it change an owner, rows?).
//! Each takes one statement's text and answers `None` when the statement
//! is not of the kind the rewrite is for, or does not parse.

use pg_query::protobuf;
use pg_query::NodeEnum;

/// A name as SQL text: bare when PostgreSQL reads it back unchanged (lower
/// case, no keyword that would be read as one), double-quoted otherwise.
pub fn ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    let keyword = || {
        crate::parse::scan(name).map_or(true, |tokens| {
            tokens.len() != 1
                || !matches!(
                    tokens[0].keyword_kind(),
                    protobuf::KeywordKind::NoKeyword | protobuf::KeywordKind::UnreservedKeyword
                )
        })
    };
    if plain && !keyword() {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A relation's name as SQL: schema-qualified when it was written so.
pub fn relation(r: &crate::facts::RelationName) -> String {
    qualified(r.schema.as_deref().unwrap_or(""), &r.name)
}

/// `schema.name`, each part as [`ident`] writes it; no schema part when
/// `schema` is empty.
pub fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        ident(name)
    } else {
        format!("{}.{}", ident(schema), ident(name))
    }
}

/// A string literal: `'it''s'`.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The one statement `sql` holds, parsed; `None` for none, several, or
/// SQL that does not parse.
pub fn one(sql: &str) -> Option<NodeEnum> {
    let tree = pg_query::parse(sql, 0).ok()?;
    let mut stmts = tree.protobuf.stmts.into_iter();
    let first = stmts.next()?;
    if stmts.next().is_some() {
        return None;
    }
    first.stmt?.node
}

fn deparse(node: NodeEnum) -> Option<String> {
    node.deparse(pg_query::DeparseOptions::default()).ok()
}

/// The statements of `text` (a piece of `pg_dump` output), each without
/// its semicolon; `None` when the text does not parse.
pub fn statements(text: &str) -> Option<Vec<String>> {
    let pieces = pg_query::split_with_parser(text).ok()?;
    Some(
        pieces
            .into_iter()
            .map(|s| s.trim().trim_end_matches(';').trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// `ALTER DATABASE <database> …` (`SET`, `RESET`, `WITH` options) and
/// `ALTER ROLE … IN DATABASE <database> SET …` as a `DO` block that alters
/// the database it runs in: how a copy, whose database has another name,
/// runs what the history says of the target's own (Supabase migrations
/// write `alter database postgres set …`). `None` for any other
/// statement, or one that names another database.
pub fn on_current_database(sql: &str, database: &str) -> Option<String> {
    const MARK: &str = "backstop_current_database";
    // How many words come before the name: `ALTER DATABASE name`, or
    // `ALTER ROLE r IN DATABASE name` (the role is one token).
    let before = match one(sql)? {
        NodeEnum::AlterDatabaseSetStmt(a) if a.dbname == database => 2,
        NodeEnum::AlterDatabaseStmt(a) if a.dbname == database => 2,
        NodeEnum::AlterRoleSetStmt(a) if a.database == database => 5,
        _ => return None,
    };
    // Only the name changes, the rest of the statement runs as written.
    let tokens = crate::parse::scan(sql).ok()?;
    let name = tokens.iter().filter(|t| !crate::parse::is_comment(t.token)).nth(before)?;
    let (from, to) = (name.start as usize, name.end as usize);
    let altered = format!("{}{MARK}{}", &sql[..from], &sql[to..]);
    Some(format!(
        "DO $backstop$ BEGIN EXECUTE replace({}, {}, quote_ident(current_database())); END $backstop$",
        literal(&altered),
        literal(MARK)
    ))
}

/// `CREATE FUNCTION` / `CREATE PROCEDURE` / `CREATE VIEW` as `CREATE OR
/// REPLACE`, so a changed body or query is put back in place, keeping the
/// object's identity and everything that depends on it.
pub fn or_replace(sql: &str) -> Option<String> {
    match one(sql)? {
        NodeEnum::CreateFunctionStmt(mut f) => {
            f.replace = true;
            deparse(NodeEnum::CreateFunctionStmt(f))
        }
        NodeEnum::ViewStmt(mut v) => {
            v.replace = true;
            deparse(NodeEnum::ViewStmt(v))
        }
        _ => None,
    }
}

/// `COMMENT ON … IS '…'` as `COMMENT ON … IS NULL`: the comment removed.
pub fn cleared_comment(sql: &str) -> Option<String> {
    match one(sql)? {
        NodeEnum::CommentStmt(mut c) => {
            c.comment = String::new();
            deparse(NodeEnum::CommentStmt(c))
        }
        _ => None,
    }
}

/// The statement that takes back what `GRANT` gave (a `REVOKE` of the same
/// privileges, columns, objects and grantees), or gives back what `REVOKE`
/// took: applied in reverse order, the inverses of a list of grants lead
/// back to the privileges before it.
pub fn inverse_grant(sql: &str) -> Option<String> {
    match one(sql)? {
        NodeEnum::GrantStmt(mut g) => {
            g.is_grant = !g.is_grant;
            g.grant_option = false;
            g.behavior = protobuf::DropBehavior::DropRestrict as i32;
            deparse(NodeEnum::GrantStmt(g))
        }
        NodeEnum::GrantRoleStmt(mut g) => {
            g.is_grant = !g.is_grant;
            g.opt.clear();
            deparse(NodeEnum::GrantRoleStmt(g))
        }
        // `ALTER DEFAULT PRIVILEGES … GRANT …` and its `REVOKE`.
        NodeEnum::AlterDefaultPrivilegesStmt(mut d) => {
            let g = d.action.as_mut()?;
            g.is_grant = !g.is_grant;
            g.grant_option = false;
            g.behavior = protobuf::DropBehavior::DropRestrict as i32;
            deparse(NodeEnum::AlterDefaultPrivilegesStmt(d))
        }
        _ => None,
    }
}

/// What a default privilege (`sql`: one `ALTER DEFAULT PRIVILEGES …
/// GRANT|REVOKE … ON <kind>s …`) gave or took from an object when it was
/// made, undone on that object alone: `REVOKE SELECT ON TABLE public.t
/// FROM app` for a default grant, the `GRANT` for a default revoke. `kind`
/// is pg_dump's (`TABLE`, `VIEW`, `FUNCTION`, …), `schema` the object's,
/// `object` its SQL name (a function's with its arguments). `None` where
/// the default does not reach it (another kind, another schema).
pub fn default_undone_on(sql: &str, kind: &str, schema: &str, object: &str) -> Option<String> {
    use protobuf::ObjectType as O;
    let NodeEnum::AlterDefaultPrivilegesStmt(d) = one(sql)? else { return None };
    let action = d.action?;
    let (objtype, keyword) = match kind {
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" => (O::ObjectTable, "TABLE"),
        "SEQUENCE" => (O::ObjectSequence, "SEQUENCE"),
        "FUNCTION" | "AGGREGATE" => (O::ObjectFunction, "FUNCTION"),
        "PROCEDURE" => (O::ObjectFunction, "PROCEDURE"),
        "TYPE" | "DOMAIN" => (O::ObjectType, "TYPE"),
        "SCHEMA" => (O::ObjectSchema, "SCHEMA"),
        _ => return None,
    };
    if action.objtype() != objtype {
        return None;
    }
    for option in &d.options {
        let Some(NodeEnum::DefElem(e)) = &option.node else { continue };
        let Some(NodeEnum::List(list)) = e.arg.as_ref().and_then(|a| a.node.as_ref()) else {
            continue;
        };
        let named =
            |n: &protobuf::Node| matches!(&n.node, Some(NodeEnum::String(s)) if s.sval == schema);
        if e.defname == "schemas" && !list.items.iter().any(named) {
            return None;
        }
    }
    let NodeEnum::GrantStmt(mut g) = one(&format!("REVOKE ALL ON {keyword} {object} FROM PUBLIC"))?
    else {
        return None;
    };
    g.is_grant = !action.is_grant;
    g.privileges = action.privileges;
    g.grantees = action.grantees;
    g.grant_option = false;
    deparse(NodeEnum::GrantStmt(g))
}

/// Whether `sql` only sets an object's owner (`ALTER … OWNER TO`).
pub fn is_owner_change(sql: &str) -> bool {
    match one(sql) {
        Some(NodeEnum::AlterOwnerStmt(_)) => true,
        Some(NodeEnum::AlterTableStmt(a)) => {
            !a.cmds.is_empty()
                && a.cmds.iter().all(|c| match &c.node {
                    Some(NodeEnum::AlterTableCmd(cmd)) => {
                        cmd.subtype() == protobuf::AlterTableType::AtChangeOwner
                    }
                    _ => false,
                })
        }
        _ => false,
    }
}

/// `CREATE SEQUENCE name options` as `ALTER SEQUENCE name options`: a
/// sequence's settings put back without recreating it (its value stays).
pub fn sequence_as_alter(sql: &str) -> Option<String> {
    match one(sql)? {
        NodeEnum::CreateSeqStmt(c) => deparse(NodeEnum::AlterSeqStmt(protobuf::AlterSeqStmt {
            sequence: c.sequence,
            options: c.options,
            for_identity: c.for_identity,
            missing_ok: false,
        })),
        // How pg_dump writes an identity's sequence: `ALTER TABLE t ALTER
        // COLUMN c ADD GENERATED … AS IDENTITY (SEQUENCE NAME s START WITH
        // …)`. The column keeps its identity (the down sets its kind); the
        // sequence's options go back on the sequence.
        NodeEnum::AlterTableStmt(a) => {
            let [cmd] = a.cmds.as_slice() else { return None };
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else { return None };
            let Some(NodeEnum::Constraint(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return None;
            };
            let mut name = None;
            let mut options = Vec::new();
            for o in &c.options {
                match o.node.as_ref() {
                    Some(NodeEnum::DefElem(d)) if d.defname == "sequence_name" => {
                        name = d.arg.as_ref().and_then(|a| a.node.clone())
                    }
                    _ => options.push(o.clone()),
                }
            }
            let Some(NodeEnum::List(name)) = name else { return None };
            let parts: Vec<String> = name
                .items
                .iter()
                .filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                    _ => None,
                })
                .collect();
            let (schemaname, relname) = match parts.as_slice() {
                [schema, rel] => (schema.clone(), rel.clone()),
                [rel] => (String::new(), rel.clone()),
                _ => return None,
            };
            let sequence = protobuf::RangeVar {
                schemaname,
                relname,
                inh: true,
                relpersistence: "p".into(),
                ..Default::default()
            };
            deparse(NodeEnum::AlterSeqStmt(protobuf::AlterSeqStmt {
                sequence: Some(sequence),
                options,
                for_identity: true,
                missing_ok: false,
            }))
        }
        _ => None,
    }
}

/// What rows `sql` changes, when it is a data change: `UPDATE public.t`,
/// `DELETE FROM t`, `INSERT INTO t`, `TRUNCATE t`, `COPY t`, `MERGE INTO t`.
pub fn data_change(sql: &str) -> Option<String> {
    let name = |r: &Option<protobuf::RangeVar>| {
        r.as_ref().map(|r| {
            if r.schemaname.is_empty() {
                r.relname.clone()
            } else {
                format!("{}.{}", r.schemaname, r.relname)
            }
        })
    };
    match one(sql)? {
        NodeEnum::UpdateStmt(u) => Some(format!("UPDATE {}", name(&u.relation)?)),
        NodeEnum::DeleteStmt(d) => Some(format!("DELETE FROM {}", name(&d.relation)?)),
        NodeEnum::InsertStmt(i) => Some(format!("INSERT INTO {}", name(&i.relation)?)),
        NodeEnum::MergeStmt(m) => Some(format!("MERGE INTO {}", name(&m.relation)?)),
        NodeEnum::CopyStmt(c) if c.is_from => Some(format!("COPY {}", name(&c.relation)?)),
        NodeEnum::TruncateStmt(t) => {
            let tables: Vec<String> = t
                .relations
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::RangeVar(r)) => name(&Some(r.clone())),
                    _ => None,
                })
                .collect();
            Some(format!("TRUNCATE {}", tables.join(", ")))
        }
        NodeEnum::DoStmt(_) => Some("DO block (its effect on rows cannot be read)".into()),
        _ => None,
    }
}

/// Whether `sql` only sets a session setting (`SET default_tablespace =
/// ''`, `SELECT pg_catalog.set_config(…)`), as pg_dump writes between
/// definitions.
pub fn is_session_setting(sql: &str) -> bool {
    match one(sql) {
        Some(NodeEnum::VariableSetStmt(_)) => true,
        Some(NodeEnum::SelectStmt(_)) => sql.contains("set_config("),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_privilege_is_undone_on_one_object_it_reached() {
        let tables = "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO app, \"the web\"";
        assert_eq!(
            default_undone_on(tables, "VIEW", "public", "public.v").as_deref(),
            Some("REVOKE select, insert ON public.v FROM app, \"the web\"")
        );
        assert_eq!(default_undone_on(tables, "TABLE", "audit", "audit.t"), None);
        assert_eq!(default_undone_on(tables, "SEQUENCE", "public", "public.s"), None);
        let functions = "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC";
        assert_eq!(
            default_undone_on(functions, "FUNCTION", "api", "api.f(a integer)").as_deref(),
            Some("GRANT execute ON FUNCTION api.f(a int) TO public")
        );
        assert_eq!(
            default_undone_on(
                "ALTER DEFAULT PRIVILEGES GRANT USAGE ON TYPES TO app",
                "DOMAIN",
                "public",
                "public.d"
            )
            .as_deref(),
            Some("REVOKE usage ON TYPE public.d FROM app")
        );
    }

    #[test]
    fn names_are_quoted_only_when_they_must_be() {
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("Users"), "\"Users\"");
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident("name"), "name");
        assert_eq!(ident("a b\""), "\"a b\"\"\"");
        assert_eq!(qualified("public", "order"), "public.\"order\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn the_targets_database_becomes_the_one_the_statement_runs_in() {
        let set = on_current_database(
            "alter database postgres set \"app.jwt_exp\" to '3600'",
            "postgres",
        )
        .unwrap();
        assert!(
            set.starts_with(
                "DO $backstop$ BEGIN EXECUTE replace('alter database backstop_current_database set"
            ),
            "{set}"
        );
        assert!(
            set.contains("''3600''") && set.contains("quote_ident(current_database())"),
            "{set}"
        );
        let quoted = on_current_database(
            "ALTER /* it */ DATABASE \"postgres\" WITH CONNECTION LIMIT 5",
            "postgres",
        );
        assert!(quoted.unwrap().contains("ALTER /* it */ DATABASE backstop_current_database WITH"));
        assert_eq!(
            on_current_database("ALTER DATABASE other SET work_mem = '8MB'", "postgres"),
            None
        );
        assert_eq!(on_current_database("ALTER TABLE t ADD COLUMN a int", "postgres"), None);
        let role = on_current_database(
            "ALTER ROLE \"the app\" IN DATABASE postgres SET search_path = app, public",
            "postgres",
        );
        assert!(
            role.unwrap().contains("IN DATABASE backstop_current_database SET search_path"),
            "the role's name is not taken for the database's"
        );
        assert_eq!(
            on_current_database("ALTER ROLE app IN DATABASE other SET x = 1", "postgres"),
            None
        );
        assert_eq!(on_current_database("ALTER ROLE app SET x = 1", "postgres"), None);
    }

    #[test]
    fn an_identitys_sequence_goes_back_as_the_sequences_own_options() {
        let sql = "ALTER TABLE public.t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (\n    SEQUENCE NAME public.t_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n    NO MAXVALUE\n    CACHE 1\n)";
        let alter = sequence_as_alter(sql).unwrap();
        assert!(alter.starts_with("ALTER SEQUENCE public.t_id_seq"), "{alter}");
        assert!(alter.contains("INCREMENT BY 1") || alter.contains("INCREMENT 1"), "{alter}");
        assert!(!alter.contains("SEQUENCE NAME"), "{alter}");
    }

    #[test]
    fn creates_become_replacements() {
        let f = or_replace("CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
            .unwrap();
        assert!(f.starts_with("CREATE OR REPLACE FUNCTION public.f()"), "{f}");
        let v = or_replace("CREATE VIEW public.v AS SELECT 1 AS one").unwrap();
        assert!(v.starts_with("CREATE OR REPLACE VIEW public.v"), "{v}");
        assert_eq!(or_replace("CREATE TABLE t (a int)"), None);
    }

    #[test]
    fn grants_are_taken_back_and_revokes_given_back() {
        assert_eq!(
            inverse_grant(
                "GRANT SELECT, UPDATE (email) ON TABLE public.users TO app WITH GRANT OPTION"
            )
            .unwrap(),
            "REVOKE select, update (email) ON public.users FROM app"
        );
        assert_eq!(
            inverse_grant("REVOKE ALL ON TABLE public.users FROM postgres").unwrap(),
            "GRANT ALL ON public.users TO postgres"
        );
        assert_eq!(
            inverse_grant(
                "ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC"
            )
            .unwrap(),
            "ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public REVOKE select ON TABLES FROM public"
        );
        assert_eq!(inverse_grant("SELECT 1"), None);
    }

    #[test]
    fn comments_owners_sequences_and_data_changes() {
        assert_eq!(
            cleared_comment("COMMENT ON TABLE public.users IS 'people'").unwrap(),
            "COMMENT ON TABLE public.users IS NULL"
        );
        assert!(is_owner_change("ALTER TABLE public.users OWNER TO app"));
        assert!(is_owner_change("ALTER FUNCTION public.f() OWNER TO app"));
        assert!(!is_owner_change("ALTER TABLE public.users ADD COLUMN a int"));
        let s = sequence_as_alter("CREATE SEQUENCE public.s START WITH 5 INCREMENT BY 2 CACHE 1")
            .unwrap();
        assert!(s.starts_with("ALTER SEQUENCE public.s"), "{s}");
        assert_eq!(data_change("UPDATE orders SET a = 1").unwrap(), "UPDATE orders");
        assert_eq!(data_change("TRUNCATE a, public.b").unwrap(), "TRUNCATE a, public.b");
        assert_eq!(data_change("CREATE TABLE t (a int)"), None);
        assert_eq!(statements("SELECT 1; SELECT 2;").unwrap(), ["SELECT 1", "SELECT 2"]);
    }
}
