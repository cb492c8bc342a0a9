//! Statements that put an object back as an earlier definition had it,
//! read from two of `pg_dump`'s definitions of the same object (before
//! and now) through the real parser: a foreign data wrapper's, server's,
//! user mapping's or foreign table's options, a publication's settings, a
//! text search configuration's mappings, a domain's default, `NOT NULL`
//! and named checks, a composite type's attributes; the `DROP` of a user mapping
//! from its `CREATE`, the `DETACH` of a partition from its `ATTACH`. Each answers `None` when the statements are not of
//! its kind or cannot be put back in place.

use pg_query::protobuf::{self, Node};
use pg_query::NodeEnum;

use crate::rewrite::{ident, literal, one, qualified};

/// A role as `CREATE USER MAPPING FOR` names it.
fn role(r: &Option<protobuf::RoleSpec>) -> Option<String> {
    let r = r.as_ref()?;
    Some(match r.roletype() {
        protobuf::RoleSpecType::RolespecCurrentUser => "CURRENT_USER".into(),
        protobuf::RoleSpecType::RolespecSessionUser => "SESSION_USER".into(),
        protobuf::RoleSpecType::RolespecCurrentRole => "CURRENT_ROLE".into(),
        protobuf::RoleSpecType::RolespecPublic => "PUBLIC".into(),
        _ => ident(&r.rolename),
    })
}

/// `DROP USER MAPPING IF EXISTS FOR … SERVER …` of a `CREATE USER MAPPING`.
pub fn drop_user_mapping(sql: &str) -> Option<String> {
    match one(sql)? {
        NodeEnum::CreateUserMappingStmt(m) => Some(format!(
            "DROP USER MAPPING IF EXISTS FOR {} SERVER {}",
            role(&m.user)?,
            ident(&m.servername)
        )),
        _ => None,
    }
}

fn range_var(r: &protobuf::RangeVar) -> String {
    qualified(&r.schemaname, &r.relname)
}

/// `ALTER TABLE parent DETACH PARTITION child` of pg_dump's `ALTER TABLE
/// ONLY parent ATTACH PARTITION child FOR VALUES …`.
pub fn detach_of(sql: &str) -> Option<String> {
    let NodeEnum::AlterTableStmt(a) = one(sql)? else { return None };
    let (_, cmd, kind) = crate::stmt::alter_cmds(&a).next()?;
    if kind != protobuf::AlterTableType::AtAttachPartition {
        return None;
    }
    let NodeEnum::PartitionCmd(p) = cmd.def.as_deref()?.node.as_ref()? else { return None };
    Some(format!(
        "ALTER TABLE {} DETACH PARTITION {}",
        range_var(a.relation.as_ref()?),
        range_var(p.name.as_ref()?)
    ))
}

/// Generic options (`OPTIONS (host 'x')`) as (name, value) pairs.
fn generic(options: &[Node]) -> Vec<(String, String)> {
    options
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::DefElem(d) => {
                let value = d.arg.as_deref().and_then(crate::stmt::string_value).unwrap_or("");
                Some((d.defname.clone(), value.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// `OPTIONS (DROP …, SET …, ADD …)` that turns `now` into `was`, or
/// nothing when they are the same.
fn options_clause(now: &[(String, String)], was: &[(String, String)]) -> Option<String> {
    let mut items = Vec::new();
    for (k, _) in now.iter().filter(|(k, _)| !was.iter().any(|(w, _)| w == k)) {
        items.push(format!("DROP {}", ident(k)));
    }
    for (k, v) in was {
        match now.iter().find(|(n, _)| n == k) {
            Some((_, nv)) if nv == v => {}
            Some(_) => items.push(format!("SET {} {}", ident(k), literal(v))),
            None => items.push(format!("ADD {} {}", ident(k), literal(v))),
        }
    }
    (!items.is_empty()).then(|| format!(" OPTIONS ({})", items.join(", ")))
}

/// A qualified name of a `List` of `String`s (`public.handler`).
fn names(list: &[Node]) -> String {
    list.iter().filter_map(crate::stmt::string_value).map(ident).collect::<Vec<_>>().join(".")
}

/// An FDW's `HANDLER`/`VALIDATOR` function, or `None` for none.
fn function_option(options: &[Node], which: &str) -> Option<String> {
    options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname == which => match d.arg.as_deref()?.node.as_ref()? {
            NodeEnum::List(l) => Some(names(&l.items)),
            _ => None,
        },
        _ => None,
    })
}

/// The `ALTER` that gives a foreign data wrapper, server, user mapping or
/// foreign table (named as `now` names it) the options and settings
/// `before` gave it; `None` when they are not the same kind of object or
/// differ in what `ALTER` cannot change (a foreign table's server).
pub fn options_back(before: &str, now: &str) -> Option<String> {
    match (one(before)?, one(now)?) {
        (NodeEnum::CreateFdwStmt(b), NodeEnum::CreateFdwStmt(a)) => {
            let mut sql = format!("ALTER FOREIGN DATA WRAPPER {}", ident(&a.fdwname));
            for which in ["handler", "validator"] {
                let (was, is) = (
                    function_option(&b.func_options, which),
                    function_option(&a.func_options, which),
                );
                if was != is {
                    let keyword = which.to_ascii_uppercase();
                    match was {
                        Some(f) => sql.push_str(&format!(" {keyword} {f}")),
                        None => sql.push_str(&format!(" NO {keyword}")),
                    }
                }
            }
            let clause = options_clause(&generic(&a.options), &generic(&b.options));
            sql.push_str(&clause.unwrap_or_default());
            Some(sql)
        }
        (NodeEnum::CreateForeignServerStmt(b), NodeEnum::CreateForeignServerStmt(a)) => {
            let mut sql = format!("ALTER SERVER {}", ident(&a.servername));
            if b.version != a.version {
                let version =
                    if b.version.is_empty() { "NULL".into() } else { literal(&b.version) };
                sql.push_str(&format!(" VERSION {version}"));
            }
            let clause = options_clause(&generic(&a.options), &generic(&b.options));
            sql.push_str(&clause.unwrap_or_default());
            (b.fdwname == a.fdwname && b.servertype == a.servertype).then_some(sql)
        }
        (NodeEnum::CreateUserMappingStmt(b), NodeEnum::CreateUserMappingStmt(a)) => {
            let clause = options_clause(&generic(&a.options), &generic(&b.options))?;
            Some(format!(
                "ALTER USER MAPPING FOR {} SERVER {}{clause}",
                role(&a.user)?,
                ident(&a.servername)
            ))
        }
        (NodeEnum::CreateForeignTableStmt(b), NodeEnum::CreateForeignTableStmt(a)) => {
            let table = a.base_stmt.as_ref()?.relation.as_ref()?;
            if b.servername != a.servername {
                return None;
            }
            let clause = options_clause(&generic(&a.options), &generic(&b.options))?;
            Some(format!("ALTER FOREIGN TABLE {}{clause}", range_var(table)))
        }
        _ => None,
    }
}

/// The storage parameters (`WITH (fillfactor = 70)`) of an index's
/// definition (`CREATE INDEX`, or a primary key, unique or exclusion
/// constraint pg_dump adds by `ALTER TABLE`), taken out of it: the rest
/// of the definition, deparsed, and the parameters.
fn index_storage(sql: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut node = one(sql)?;
    let options = match &mut node {
        NodeEnum::IndexStmt(i) => std::mem::take(&mut i.options),
        NodeEnum::AlterTableStmt(a) => {
            let [cmd] = &mut a.cmds[..] else { return None };
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_mut() else { return None };
            let Some(NodeEnum::Constraint(c)) = cmd.def.as_deref_mut()?.node.as_mut() else {
                return None;
            };
            std::mem::take(&mut c.options)
        }
        _ => return None,
    };
    let options = options
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::DefElem(d) => {
                let value = match d.arg.as_deref()?.node.as_ref()? {
                    NodeEnum::String(s) => s.sval.clone(),
                    NodeEnum::Integer(i) => i.ival.to_string(),
                    NodeEnum::Float(f) => f.fval.clone(),
                    NodeEnum::Boolean(b) => b.boolval.to_string(),
                    _ => return None,
                };
                Some((d.defname.clone(), value))
            }
            _ => None,
        })
        .collect();
    Some((node.deparse(pg_query::DeparseOptions::default()).ok()?, options))
}

/// `ALTER INDEX … RESET (…)` and `SET (…)` that give index `index` the
/// storage parameters `before` (its definition) gave it, when `before`
/// and `now` differ in nothing else; `None` otherwise.
pub fn index_storage_back(before: &str, now: &str, index: &str) -> Option<Vec<String>> {
    let (b, was) = index_storage(before)?;
    let (a, is) = index_storage(now)?;
    if a != b {
        return None;
    }
    let mut out = Vec::new();
    let reset: Vec<String> = is
        .iter()
        .filter(|(k, _)| !was.iter().any(|(w, _)| w == k))
        .map(|(k, _)| ident(k))
        .collect();
    if !reset.is_empty() {
        out.push(format!("ALTER INDEX {index} RESET ({})", reset.join(", ")));
    }
    let set: Vec<String> = was
        .iter()
        .filter(|item| !is.contains(item))
        .map(|(k, v)| format!("{} = {}", ident(k), literal(v)))
        .collect();
    if !set.is_empty() {
        out.push(format!("ALTER INDEX {index} SET ({})", set.join(", ")));
    }
    Some(out)
}

/// A publication's settings as `ALTER PUBLICATION … SET (…)`, each one
/// `before` does not give at its default; `None` unless both are the same
/// kind of publication (for all tables, or not).
pub fn publication_back(before: &str, now: &str) -> Option<String> {
    let (NodeEnum::CreatePublicationStmt(b), NodeEnum::CreatePublicationStmt(a)) =
        (one(before)?, one(now)?)
    else {
        return None;
    };
    if b.for_all_tables != a.for_all_tables {
        return None;
    }
    let was = generic(&b.options);
    let defaults = [
        ("publish", "insert, update, delete, truncate"),
        ("publish_via_partition_root", "false"),
        ("publish_generated_columns", "none"),
    ];
    let mut items = Vec::new();
    for (key, _) in generic(&a.options).iter().chain(was.iter()) {
        if items.iter().any(|(k, _): &(String, String)| k == key) {
            continue;
        }
        let back = match was.iter().find(|(k, _)| k == key) {
            Some((_, v)) => v.clone(),
            None => defaults.iter().find(|(k, _)| k == key)?.1.to_string(),
        };
        items.push((key.clone(), back));
    }
    let set: Vec<String> =
        items.iter().map(|(k, v)| format!("{} = {}", ident(k), literal(v))).collect();
    (!set.is_empty())
        .then(|| format!("ALTER PUBLICATION {} SET ({})", ident(&a.pubname), set.join(", ")))
}

/// The first of pg_dump's statements `sql` that `pick` takes.
fn first_of<T>(sql: &str, pick: impl Fn(NodeEnum) -> Option<T>) -> Option<T> {
    let tree = pg_query::parse(sql, 0).ok()?;
    tree.protobuf.stmts.into_iter().find_map(|s| pick(s.stmt?.node?))
}

/// The `CREATE DOMAIN` among pg_dump's statements of a domain.
fn create_domain(sql: &str) -> Option<protobuf::CreateDomainStmt> {
    first_of(sql, |n| match n {
        NodeEnum::CreateDomainStmt(d) => Some(*d),
        _ => None,
    })
}

/// A domain's parts `ALTER DOMAIN` can change: its default, whether it is
/// `NOT NULL`, and its named checks, each by name with the `ALTER DOMAIN
/// … ADD` that makes it (deparsed, so also what two are compared by).
struct DomainParts {
    default: Option<Node>,
    not_null: bool,
    checks: Vec<(String, String)>,
}

fn domain_parts(d: &protobuf::CreateDomainStmt) -> Option<DomainParts> {
    let mut parts = DomainParts { default: None, not_null: false, checks: Vec::new() };
    for c in &d.constraints {
        let Some(NodeEnum::Constraint(con)) = c.node.as_ref() else { return None };
        match con.contype() {
            protobuf::ConstrType::ConstrDefault => parts.default = con.raw_expr.as_deref().cloned(),
            protobuf::ConstrType::ConstrNotnull => parts.not_null = true,
            protobuf::ConstrType::ConstrNull => {}
            protobuf::ConstrType::ConstrCheck if !con.conname.is_empty() => {
                let text = alter_domain(&d.domainname, "C", "", Some(c.clone()))?;
                parts.checks.push((con.conname.clone(), text));
            }
            _ => return None,
        }
    }
    Some(parts)
}

/// `ALTER DOMAIN` of `name`, of kind `subtype` (PostgreSQL's letters:
/// `T` default, `N`/`O` drop/set NOT NULL, `C`/`X` add/drop a constraint),
/// deparsed.
fn alter_domain(
    name: &[Node],
    subtype: &str,
    constraint: &str,
    def: Option<Node>,
) -> Option<String> {
    let stmt = protobuf::AlterDomainStmt {
        subtype: subtype.to_string(),
        type_name: name.to_vec(),
        name: constraint.to_string(),
        def: def.map(Box::new),
        behavior: protobuf::DropBehavior::DropRestrict as i32,
        missing_ok: false,
    };
    NodeEnum::AlterDomainStmt(Box::new(stmt)).deparse(pg_query::DeparseOptions::default()).ok()
}

/// The statements that give a domain back what `before` (pg_dump's
/// statements of it) gave it, from `now`'s: checks `now` has and `before`
/// has otherwise or not dropped, `NOT NULL` and the default set back,
/// `before`'s checks added. `None` where either is no `CREATE DOMAIN`, or
/// differs in what `ALTER DOMAIN` cannot change (its type, collation, an
/// unnamed check).
pub fn domain_back(before: &str, now: &str) -> Option<Vec<String>> {
    let (b, n) = (create_domain(before)?, create_domain(now)?);
    if b.type_name != n.type_name || b.coll_clause != n.coll_clause {
        return None;
    }
    let (was, is) = (domain_parts(&b)?, domain_parts(&n)?);
    let name = &n.domainname;
    let mut out = Vec::new();
    for (check, _) in is.checks.iter().filter(|c| !was.checks.contains(c)) {
        out.push(alter_domain(name, "X", check, None)?);
    }
    if was.not_null != is.not_null {
        out.push(alter_domain(name, if was.not_null { "O" } else { "N" }, "", None)?);
    }
    if was.default != is.default {
        out.push(alter_domain(name, "T", "", was.default.clone())?);
    }
    for (_, add) in was.checks.iter().filter(|c| !is.checks.contains(c)) {
        out.push(add.clone());
    }
    Some(out)
}

/// The attributes of a composite type: each one's name, and its type and
/// collation as `CREATE TYPE x AS (a <it>)` writes them.
type Attributes = Vec<(String, String)>;

/// A composite type as pg_dump's `CREATE TYPE … AS (…)` among `sql`'s
/// statements gives it: its name, quoted, and its attributes.
fn composite(sql: &str) -> Option<(String, Attributes)> {
    let stmt = first_of(sql, |n| match n {
        NodeEnum::CompositeTypeStmt(c) => Some(c),
        _ => None,
    })?;
    let rv = stmt.typevar.as_ref()?;
    let name = match rv.schemaname.as_str() {
        "" => ident(&rv.relname),
        schema => format!("{}.{}", ident(schema), ident(&rv.relname)),
    };
    let mut attributes = Vec::new();
    for c in &stmt.coldeflist {
        let Some(NodeEnum::ColumnDef(d)) = c.node.as_ref() else { return None };
        let alone = protobuf::CompositeTypeStmt {
            typevar: stmt.typevar.clone(),
            coldeflist: vec![c.clone()],
        };
        let text =
            NodeEnum::CompositeTypeStmt(alone).deparse(pg_query::DeparseOptions::default()).ok()?;
        let (_, tail) = text.split_once('(')?;
        let typed = tail.trim_end().trim_end_matches(')').trim();
        let typed = typed.strip_prefix(&ident(&d.colname))?.trim().to_string();
        attributes.push((d.colname.clone(), typed));
    }
    Some((name, attributes))
}

/// The statements that give a composite type back the attributes
/// `before` (pg_dump's statements of it) gave it, from `now`'s: those
/// `now` added dropped, those whose type changed altered back, those it
/// dropped added back (at the end: where that changes their order, the
/// proof says so). `None` where either is no composite type.
pub fn composite_back(before: &str, now: &str) -> Option<Vec<String>> {
    let ((type_name, was), (_, is)) = (composite(before)?, composite(now)?);
    let mut out = Vec::new();
    let had = |list: &Attributes, a: &str| list.iter().find(|(n, _)| n == a).cloned();
    for (a, _) in is.iter().filter(|(a, _)| had(&was, a).is_none()) {
        out.push(format!("ALTER TYPE {type_name} DROP ATTRIBUTE {}", ident(a)));
    }
    for (a, typed) in &was {
        match had(&is, a) {
            Some((_, now_typed)) if &now_typed != typed => out
                .push(format!("ALTER TYPE {type_name} ALTER ATTRIBUTE {} TYPE {typed}", ident(a))),
            Some(_) => {}
            None => out.push(format!("ALTER TYPE {type_name} ADD ATTRIBUTE {} {typed}", ident(a))),
        }
    }
    Some(out)
}

/// The statements that give a text search configuration the mappings
/// `before` (pg_dump's statements of it) gave it, from `now`'s: every
/// token type `now` maps is dropped, then `before`'s mappings are added.
pub fn ts_mappings_back(before: &[String], now: &[String]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for s in now {
        let NodeEnum::AlterTsconfigurationStmt(mut m) = one(s)? else { continue };
        m.kind = protobuf::AlterTsConfigType::AlterTsconfigDropMapping as i32;
        m.dicts.clear();
        m.missing_ok = true;
        m.replace = false;
        m.r#override = false;
        out.push(
            NodeEnum::AlterTsconfigurationStmt(m)
                .deparse(pg_query::DeparseOptions::default())
                .ok()?,
        );
    }
    for s in before {
        if matches!(one(s)?, NodeEnum::AlterTsconfigurationStmt(_)) {
            out.push(s.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composite_type_gets_back_its_attributes() {
        let before =
            "CREATE TYPE public.pair AS (\n\ta integer,\n\tb text COLLATE pg_catalog.\"C\"\n);";
        let now = "CREATE TYPE public.pair AS (\n\ta bigint,\n\tc text\n);";
        assert_eq!(
            composite_back(before, now).unwrap(),
            [
                "ALTER TYPE public.pair DROP ATTRIBUTE c",
                "ALTER TYPE public.pair ALTER ATTRIBUTE a TYPE int",
                "ALTER TYPE public.pair ADD ATTRIBUTE b text COLLATE pg_catalog.\"C\"",
            ]
        );
        assert!(composite_back(before, before).unwrap().is_empty());
        assert!(composite_back(before, "CREATE TYPE public.pair AS ENUM ('a');").is_none());
    }

    #[test]
    fn a_domain_gets_back_its_default_not_null_and_checks() {
        let before = "CREATE DOMAIN public.pos AS integer DEFAULT 1\n\tCONSTRAINT pos_check CHECK ((VALUE > 0));\nALTER DOMAIN public.pos OWNER TO app;";
        let now = "CREATE DOMAIN public.pos AS integer NOT NULL\n\tCONSTRAINT pos_check CHECK ((VALUE > 1))\n\tCONSTRAINT pos_small CHECK ((VALUE < 1000));";
        assert_eq!(
            domain_back(before, now).unwrap(),
            [
                "ALTER DOMAIN public.pos DROP CONSTRAINT pos_check",
                "ALTER DOMAIN public.pos DROP CONSTRAINT pos_small",
                "ALTER DOMAIN public.pos DROP NOT NULL",
                "ALTER DOMAIN public.pos SET DEFAULT 1",
                "ALTER DOMAIN public.pos ADD CONSTRAINT pos_check CHECK (value > 0)",
            ]
        );
        assert!(domain_back(before, before).unwrap().is_empty());
        // Another base type cannot be put back by ALTER DOMAIN.
        assert!(domain_back(before, "CREATE DOMAIN public.pos AS bigint;").is_none());
    }

    #[test]
    fn options_go_back_key_by_key() {
        assert_eq!(
            options_back(
                "CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (host 'a', port '1')",
                "CREATE SERVER s VERSION '2' FOREIGN DATA WRAPPER w OPTIONS (host 'b', dbname 'x')"
            )
            .unwrap(),
            "ALTER SERVER s VERSION NULL OPTIONS (DROP dbname, SET host 'a', ADD port '1')"
        );
        assert_eq!(
            options_back(
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u')",
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'v')"
            )
            .unwrap(),
            "ALTER USER MAPPING FOR app SERVER s OPTIONS (SET \"user\" 'u')"
        );
        assert_eq!(
            options_back(
                "CREATE FOREIGN DATA WRAPPER w VALIDATOR public.v",
                "CREATE FOREIGN DATA WRAPPER w HANDLER public.h"
            )
            .unwrap(),
            "ALTER FOREIGN DATA WRAPPER w NO HANDLER VALIDATOR public.v"
        );
        assert_eq!(
            detach_of("ALTER TABLE ONLY public.parent ATTACH PARTITION public.child FOR VALUES FROM (1) TO (10)")
                .unwrap(),
            "ALTER TABLE public.parent DETACH PARTITION public.child"
        );
        assert_eq!(
            drop_user_mapping("CREATE USER MAPPING FOR PUBLIC SERVER \"S\" OPTIONS (user 'u')")
                .unwrap(),
            "DROP USER MAPPING IF EXISTS FOR PUBLIC SERVER \"S\""
        );
    }

    #[test]
    fn an_index_gets_its_storage_back_in_place() {
        assert_eq!(
            index_storage_back(
                "CREATE INDEX t_n ON public.t USING btree (n) WITH (fillfactor='70')",
                "CREATE INDEX t_n ON public.t USING btree (n) WITH (deduplicate_items='off')",
                "public.t_n"
            )
            .unwrap(),
            [
                "ALTER INDEX public.t_n RESET (deduplicate_items)",
                "ALTER INDEX public.t_n SET (fillfactor = '70')"
            ]
        );
        let pkey = "ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)";
        assert_eq!(
            index_storage_back(pkey, &format!("{pkey} WITH (fillfactor='60')"), "public.t_pkey")
                .unwrap(),
            ["ALTER INDEX public.t_pkey RESET (fillfactor)"]
        );
        assert_eq!(index_storage_back(pkey, &pkey.replace("(id)", "(id, n)"), "x"), None);
    }

    #[test]
    fn a_publication_and_a_configuration_go_back_in_place() {
        assert_eq!(
            publication_back(
                "CREATE PUBLICATION p WITH (publish = 'insert, update, delete, truncate')",
                "CREATE PUBLICATION p WITH (publish = 'insert', publish_via_partition_root = true)"
            )
            .unwrap(),
            "ALTER PUBLICATION p SET (publish = 'insert, update, delete, truncate', publish_via_partition_root = 'false')"
        );
        let back = ts_mappings_back(
            &["ALTER TEXT SEARCH CONFIGURATION public.c ADD MAPPING FOR asciiword WITH simple".into()],
            &["ALTER TEXT SEARCH CONFIGURATION public.c ADD MAPPING FOR asciiword, word WITH english_stem".into()],
        )
        .unwrap();
        assert_eq!(back.len(), 2, "{back:?}");
        assert!(back[0].contains("DROP MAPPING IF EXISTS FOR asciiword, word"), "{back:?}");
        assert!(back[1].contains("ADD MAPPING FOR asciiword WITH simple"), "{back:?}");
    }
}
