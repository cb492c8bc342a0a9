//! The statements a computed down is made of, one builder per kind of
//! change: dropping what an up created, renaming back, putting a column
//! back as it was. Definitions to recreate come from `pg_dump` as they
//! are; these builders only write the statements pg_dump has no entry for.

use super::catalog::{Column, Table};
use super::toc::Entry;
use backstop_sql::rewrite::{ident as quote_ident, qualified as qualified_name};

/// `schema.name`, quoted as needed.
fn qualified(e: &Entry, name: &str) -> String {
    qualified_name(&e.schema, name)
}

/// A function's name and its argument list: `f(a integer)` → (`f`,
/// `(a integer)`).
fn function_parts(name: &str) -> (&str, &str) {
    match name.find('(') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, "()"),
    }
}

/// The name a `GRANT` gives `e` by: qualified, a function's with its
/// arguments, a schema's alone.
pub(super) fn grant_name(e: &Entry) -> String {
    match e.kind.as_str() {
        "SCHEMA" => quote_ident(&e.name),
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => {
            let (name, args) = function_parts(&e.name);
            format!("{}{args}", qualified(e, name))
        }
        _ => qualified(e, &e.name),
    }
}

/// The statement that removes `e`, an object the up created; `None` for
/// kinds that go with their parent or that Backstop cannot remove.
pub(super) fn drop_of(e: &Entry) -> Option<String> {
    let simple =
        |keyword: &str| Some(format!("DROP {keyword} IF EXISTS {}", qualified(e, &e.name)));
    let member = |what: &str| {
        let (table, member) = e.table_and_member()?;
        Some(match what {
            "CONSTRAINT" => format!(
                "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
                qualified(e, table),
                quote_ident(member)
            ),
            other => {
                format!("DROP {other} IF EXISTS {} ON {}", quote_ident(member), qualified(e, table))
            }
        })
    };
    match e.kind.as_str() {
        "TABLE" | "FOREIGN TABLE" => simple(&e.kind),
        "VIEW" => simple("VIEW"),
        "MATERIALIZED VIEW" => simple("MATERIALIZED VIEW"),
        "SEQUENCE" if e.sql.starts_with("ALTER TABLE") => None,
        "SEQUENCE" => simple("SEQUENCE"),
        "INDEX" => simple("INDEX"),
        "TYPE" => simple("TYPE"),
        "DOMAIN" => simple("DOMAIN"),
        "COLLATION" => simple("COLLATION"),
        "CONVERSION" => simple("CONVERSION"),
        "TEXT SEARCH CONFIGURATION" | "TEXT SEARCH DICTIONARY" => simple(&e.kind),
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => {
            let (name, args) = function_parts(&e.name);
            Some(format!("DROP {} IF EXISTS {}{args}", e.kind, qualified(e, name)))
        }
        "SCHEMA" => Some(format!("DROP SCHEMA IF EXISTS {}", quote_ident(&e.name))),
        "EXTENSION" => Some(format!("DROP EXTENSION IF EXISTS {}", quote_ident(&e.name))),
        "PUBLICATION" => Some(format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&e.name))),
        "EVENT TRIGGER" => Some(format!("DROP EVENT TRIGGER IF EXISTS {}", quote_ident(&e.name))),
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" => member("CONSTRAINT"),
        "TRIGGER" => member("TRIGGER"),
        "POLICY" => member("POLICY"),
        "RULE" => member("RULE"),
        "COMMENT" => backstop_sql::rewrite::statements(&e.sql)?
            .first()
            .and_then(|s| backstop_sql::rewrite::cleared_comment(s)),
        "SEQUENCE OWNED BY" => {
            Some(format!("ALTER SEQUENCE {} OWNED BY NONE", qualified(e, &e.name)))
        }
        "PUBLICATION TABLE" => {
            // `pub table`: the publication, then the table.
            let (publication, table) = e.name.split_once(' ')?;
            Some(format!(
                "ALTER PUBLICATION {} DROP TABLE {}",
                quote_ident(publication),
                qualified(e, table)
            ))
        }
        _ => None,
    }
}

/// Kinds whose definition is part of a table's columns or flags, which the
/// catalog comparison puts back for a table that stays.
pub(super) fn part_of_table(e: &Entry) -> bool {
    matches!(e.kind.as_str(), "DEFAULT" | "ROW SECURITY")
        || (e.kind == "SEQUENCE" && e.sql.starts_with("ALTER TABLE"))
}

/// Kinds that belong to another object (dropped with it, recreated after it).
pub(super) fn is_member(kind: &str) -> bool {
    matches!(
        kind,
        "CONSTRAINT"
            | "FK CONSTRAINT"
            | "CHECK CONSTRAINT"
            | "INDEX"
            | "TRIGGER"
            | "POLICY"
            | "RULE"
            | "DEFAULT"
            | "ROW SECURITY"
            | "COMMENT"
            | "ACL"
            | "DEFAULT ACL"
            | "SEQUENCE OWNED BY"
            | "PUBLICATION TABLE"
            | "TABLE ATTACH"
            | "INDEX ATTACH"
            | "SECURITY LABEL"
    )
}

/// The statement that gives `after`'s object back `before`'s name.
pub(super) fn rename_back(before: &Entry, after: &Entry) -> Option<String> {
    let keyword = match after.kind.as_str() {
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "INDEX" | "FOREIGN TABLE" => {
            after.kind.as_str()
        }
        "TYPE" | "DOMAIN" => after.kind.as_str(),
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => {
            let (new, args) = function_parts(&after.name);
            let (old, _) = function_parts(&before.name);
            return (new != old).then(|| {
                format!(
                    "ALTER {} {}{args} RENAME TO {}",
                    after.kind,
                    qualified(after, new),
                    quote_ident(old)
                )
            });
        }
        "SCHEMA" => {
            return Some(format!(
                "ALTER SCHEMA {} RENAME TO {}",
                quote_ident(&after.name),
                quote_ident(&before.name)
            ))
        }
        "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" | "TRIGGER" | "POLICY" => {
            let (_, new) = after.table_and_member()?;
            let (table, old) = before.table_and_member()?;
            if new == old {
                return None;
            }
            let on = qualified(before, table);
            return Some(match after.kind.as_str() {
                "TRIGGER" | "POLICY" => format!(
                    "ALTER {} {} ON {on} RENAME TO {}",
                    after.kind,
                    quote_ident(new),
                    quote_ident(old)
                ),
                _ => format!(
                    "ALTER TABLE {on} RENAME CONSTRAINT {} TO {}",
                    quote_ident(new),
                    quote_ident(old)
                ),
            });
        }
        _ => return None,
    };
    let mut out = Vec::new();
    let mut current = qualified(after, &after.name);
    // An index goes where its table goes (`ALTER INDEX` has no SET
    // SCHEMA): the table's own statement, before its, moved it back.
    if after.schema != before.schema && keyword == "INDEX" {
        current = qualified_name(&before.schema, &after.name);
    } else if after.schema != before.schema {
        out.push(format!("ALTER {keyword} {current} SET SCHEMA {}", quote_ident(&before.schema)));
        current = qualified_name(&before.schema, &after.name);
    }
    if after.name != before.name {
        out.push(format!("ALTER {keyword} {current} RENAME TO {}", quote_ident(&before.name)));
    }
    (!out.is_empty()).then(|| out.join(";\n"))
}

/// Whether an explicit cast to type `ty` (as `format_type` writes it)
/// cuts a value that does not fit instead of refusing it.
fn cuts_silently(ty: &str) -> bool {
    ["character varying(", "character(", "bit(", "bit varying("].iter().any(|t| ty.starts_with(t))
}

/// `ALTER TABLE table ALTER COLUMN col TYPE declared` (the type `ty`, a
/// collation after it where there is one) with `using`, else a cast to
/// `ty`; but to a string or bit type of a length, cast as PostgreSQL
/// assigns (no `USING`): an explicit cast would cut a longer value
/// without a word, the assignment refuses it, and the rollback with it.
pub(super) fn retype(
    table: &str,
    col: &str,
    declared: &str,
    ty: &str,
    using: Option<&str>,
) -> String {
    let using = match using {
        Some(u) => format!(" USING {u}"),
        None if cuts_silently(ty) => String::new(),
        None => format!(" USING {col}::{ty}"),
    };
    format!("ALTER TABLE {table} ALTER COLUMN {col} TYPE {declared}{using}")
}

/// `ALTER TABLE t ADD COLUMN …` that puts `c` back as `before` had it;
/// a default that calls `nextval` is left to [`set_default`], after the
/// sequences are back.
pub(super) fn add_column(table: &Table, c: &Column) -> String {
    let mut sql = format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        table.qualified(),
        quote_ident(&c.name),
        c.type_name
    );
    if let Some(collation) = &c.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(expr) = &c.generated {
        sql.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
    } else if let Some(default) = c.default.as_deref().filter(|d| !d.contains("nextval(")) {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    if let Some(kind) = c.identity {
        sql.push_str(identity_clause(kind));
    } else if c.not_null {
        sql.push_str(" NOT NULL");
    }
    sql
}

fn identity_clause(kind: char) -> &'static str {
    if kind == 'a' {
        " GENERATED ALWAYS AS IDENTITY"
    } else {
        " GENERATED BY DEFAULT AS IDENTITY"
    }
}

/// `ALTER TABLE t ALTER COLUMN c SET DEFAULT …` (or `DROP DEFAULT`).
pub(super) fn set_default(table: &Table, column: &str, default: Option<&str>) -> String {
    let what = match default {
        Some(d) => format!("SET DEFAULT {d}"),
        None => "DROP DEFAULT".into(),
    };
    format!("ALTER TABLE {} ALTER COLUMN {} {what}", table.qualified(), quote_ident(column))
}

/// The statements that turn column `now` of `table` back into `was`
/// (same column, by position or name), defaults aside: type, collation,
/// nullability, identity and generation.
/// `using`: how the old values are computed (default: a cast).
pub(super) fn alter_column(
    table: &Table,
    now: &Column,
    was: &Column,
    using: Option<&str>,
) -> Vec<String> {
    let t = table.qualified();
    let col = quote_ident(&was.name);
    let mut out = Vec::new();
    if now.generated.is_some() && was.generated.is_none() {
        out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP EXPRESSION"));
    }
    if now.identity.is_some() && was.identity.is_none() {
        out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY"));
    }
    if now.type_name != was.type_name || now.collation != was.collation {
        let collate = was.collation.as_ref().map(|c| format!(" COLLATE {c}")).unwrap_or_default();
        out.push(retype(&t, &col, &format!("{}{collate}", was.type_name), &was.type_name, using));
    }
    // Before identity: a column must be NOT NULL to become one.
    if now.not_null != was.not_null {
        let what = if was.not_null { "SET" } else { "DROP" };
        out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} {what} NOT NULL"));
    }
    match (now.identity, was.identity) {
        (None, Some(kind)) => {
            out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} ADD{}", identity_clause(kind)))
        }
        (Some(a), Some(b)) if a != b => out.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {col} SET GENERATED {}",
            if b == 'a' { "ALWAYS" } else { "BY DEFAULT" }
        )),
        _ => {}
    }
    out
}

/// Statements as one script, each ended by a semicolon, each as
/// `settings` runs it ([`crate::migrate::Settings::as_run`]).
pub(super) fn joined(statements: &[String], settings: &crate::migrate::Settings) -> String {
    statements.iter().map(|s| format!("{};", settings.as_run(s))).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, name: &str) -> Entry {
        Entry {
            id: 1,
            class: 0,
            oid: 0,
            name: name.into(),
            kind: kind.into(),
            schema: "public".into(),
            owner: "app".into(),
            deps: Vec::new(),
            sql: String::new(),
            table: None,
        }
    }

    #[test]
    fn drops_name_the_object_and_its_table() {
        assert_eq!(
            drop_of(&entry("TABLE", "Users")).unwrap(),
            "DROP TABLE IF EXISTS public.\"Users\""
        );
        assert_eq!(
            drop_of(&entry("FK CONSTRAINT", "orders orders_user_fkey")).unwrap(),
            "ALTER TABLE public.orders DROP CONSTRAINT IF EXISTS orders_user_fkey"
        );
        assert_eq!(
            drop_of(&entry("POLICY", "users own")).unwrap(),
            "DROP POLICY IF EXISTS own ON public.users"
        );
        assert_eq!(
            drop_of(&entry("FUNCTION", "touch(a integer)")).unwrap(),
            "DROP FUNCTION IF EXISTS public.touch(a integer)"
        );
        assert_eq!(drop_of(&entry("ACL", "TABLE users")), None);
    }

    #[test]
    fn renames_go_back_schema_first() {
        let mut after = entry("TABLE", "clients");
        after.schema = "sales".into();
        let before = entry("TABLE", "customers");
        assert_eq!(
            rename_back(&before, &after).unwrap(),
            "ALTER TABLE sales.clients SET SCHEMA public;\nALTER TABLE public.clients RENAME TO customers"
        );
        // An index moved with its table is only renamed, in the schema
        // the table's statement took it back to.
        let mut moved = entry("INDEX", "clients_idx");
        moved.schema = "sales".into();
        assert_eq!(rename_back(&entry("INDEX", "clients_idx"), &moved), None);
        assert_eq!(
            rename_back(&entry("INDEX", "customers_idx"), &moved).unwrap(),
            "ALTER INDEX public.clients_idx RENAME TO customers_idx"
        );
        assert_eq!(
            rename_back(&entry("TRIGGER", "users t_old"), &entry("TRIGGER", "users t_new"))
                .unwrap(),
            "ALTER TRIGGER t_new ON public.users RENAME TO t_old"
        );
    }
}
