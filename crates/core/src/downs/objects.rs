//! The kinds of object outside tables, views and functions that pg_dump
//! writes (foreign data wrappers, servers, user mappings, casts, operators
//! and their classes and families, text search objects, collations,
//! conversions, event triggers, publications, extended statistics,
//! languages, access methods, transforms): how a down drops one the up
//! made (by the identity the catalog gives it), renames one back, and puts
//! one back that the up changed. And the honest end of the list: an entry
//! of a kind no down here handles makes the down unprovable by name.

use backstop_sql::inverse;
use backstop_sql::rewrite::{self, ident as quote_ident, qualified};

use super::catalog::ObjectFacts;
use super::toc::Entry;

/// pg_dump's kinds of entry a down handles: dropped when the up made
/// them, put back when it changed or dropped them, and held by the schema
/// picture the proof compares.
const HANDLED: &[&str] = &[
    "ACCESS METHOD",
    "ACL",
    "AGGREGATE",
    "CAST",
    "CHECK CONSTRAINT",
    "COLLATION",
    "COMMENT",
    "CONSTRAINT",
    "CONVERSION",
    "DEFAULT",
    "DEFAULT ACL",
    "DOMAIN",
    "EVENT TRIGGER",
    "EXTENSION",
    "FK CONSTRAINT",
    "FOREIGN DATA WRAPPER",
    "FOREIGN TABLE",
    "FUNCTION",
    "INDEX",
    "INDEX ATTACH",
    "MATERIALIZED VIEW",
    "OPERATOR",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "POLICY",
    "PROCEDURAL LANGUAGE",
    "PROCEDURE",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "ROW SECURITY",
    "RULE",
    "SCHEMA",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SERVER",
    "SHELL TYPE",
    "STATISTICS",
    "TABLE",
    "TABLE ATTACH",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
    "USER MAPPING",
    "VIEW",
];

/// Whether a down handles entries of `kind`.
pub(super) fn handled(kind: &str) -> bool {
    HANDLED.contains(&kind)
}

/// The word `DROP` and `ALTER` name a kind by, for the kinds dropped and
/// renamed by their catalog identity.
fn keyword(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "FOREIGN DATA WRAPPER" => "FOREIGN DATA WRAPPER",
        "SERVER" => "SERVER",
        "CAST" => "CAST",
        "OPERATOR" => "OPERATOR",
        "OPERATOR CLASS" => "OPERATOR CLASS",
        "OPERATOR FAMILY" => "OPERATOR FAMILY",
        "TEXT SEARCH CONFIGURATION" => "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY" => "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER" => "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE" => "TEXT SEARCH TEMPLATE",
        "COLLATION" => "COLLATION",
        "CONVERSION" => "CONVERSION",
        "EVENT TRIGGER" => "EVENT TRIGGER",
        "PUBLICATION" => "PUBLICATION",
        "STATISTICS" => "STATISTICS",
        "ACCESS METHOD" => "ACCESS METHOD",
        "PROCEDURAL LANGUAGE" => "LANGUAGE",
        _ => return None,
    })
}

/// The first statement of an entry's definition.
fn first(e: &Entry) -> Option<String> {
    rewrite::statements(&e.sql)?.into_iter().next()
}

/// The statement that removes `e`, made by the up, for the kinds of this
/// module; `None` for others (and for a kind that goes with another).
pub(super) fn drop_of(e: &Entry, facts: Option<&ObjectFacts>) -> Option<String> {
    match e.kind.as_str() {
        "USER MAPPING" => inverse::drop_user_mapping(&first(e)?),
        "PUBLICATION TABLES IN SCHEMA" => {
            // `pub schema`: the publication, then the schema.
            let (publication, schema) = e.name.split_once(' ')?;
            Some(format!(
                "ALTER PUBLICATION {} DROP TABLES IN SCHEMA {}",
                quote_ident(publication),
                quote_ident(schema)
            ))
        }
        "TRANSFORM" => {
            // `for integer on language sql` (`for integer language sql` from 18).
            let rest = facts?.identity.strip_prefix("for ")?;
            let (ty, language) =
                rest.rsplit_once(" on language ").or_else(|| rest.rsplit_once(" language "))?;
            Some(format!("DROP TRANSFORM IF EXISTS FOR {ty} LANGUAGE {language}"))
        }
        "TABLE ATTACH" => inverse::detach_of(&first(e)?),
        kind => {
            let identity = facts.map(|f| f.identity.as_str()).filter(|i| !i.is_empty())?;
            Some(format!("DROP {} IF EXISTS {identity}", keyword(kind)?))
        }
    }
}

/// The statement that gives `after`'s object `before`'s name, for the
/// kinds of this module.
pub(super) fn rename_back(
    before: &Entry,
    after: &Entry,
    facts: Option<&ObjectFacts>,
) -> Option<String> {
    let keyword = keyword(&after.kind)?;
    let identity = facts.map(|f| f.identity.as_str()).filter(|i| !i.is_empty())?;
    let mut out = Vec::new();
    if after.name != before.name {
        out.push(format!("ALTER {keyword} {identity} RENAME TO {}", quote_ident(&before.name)));
    }
    let simple = matches!(
        after.kind.as_str(),
        "COLLATION"
            | "CONVERSION"
            | "STATISTICS"
            | "TEXT SEARCH CONFIGURATION"
            | "TEXT SEARCH DICTIONARY"
            | "TEXT SEARCH PARSER"
            | "TEXT SEARCH TEMPLATE"
    );
    if after.schema != before.schema && simple {
        out.push(format!(
            "ALTER {keyword} {} SET SCHEMA {}",
            qualified(&after.schema, &before.name),
            quote_ident(&before.schema)
        ));
    }
    (!out.is_empty()).then(|| out.join(";\n"))
}

/// Whether a changed object of `kind` is put back by [`put_back`].
pub(super) fn changed_in_place(kind: &str) -> bool {
    keyword(kind).is_some() || matches!(kind, "USER MAPPING" | "TRANSFORM" | "AGGREGATE")
}

/// The statements that put `before`'s definition back in place of
/// `after`'s (one object the up changed), for the kinds of this module:
/// options and settings by `ALTER` where PostgreSQL can change them in
/// place, otherwise the object dropped (by `drop`) and made again.
pub(super) fn put_back(before: &Entry, after: &Entry, drop: Option<String>) -> Option<Vec<String>> {
    let b = rewrite::statements(&before.sql)?;
    let a = rewrite::statements(&after.sql)?;
    let owners = |list: &[String]| -> Vec<String> {
        list.iter().filter(|s| rewrite::is_owner_change(s)).cloned().collect()
    };
    let owner_back = if before.owner != after.owner { owners(&b) } else { Vec::new() };
    let in_place = match after.kind.as_str() {
        "FOREIGN DATA WRAPPER" | "SERVER" | "USER MAPPING" => {
            let bf = b.first()?;
            let af = a.first()?;
            if bf == af {
                Some(Vec::new())
            } else {
                inverse::options_back(bf, af).map(|s| vec![s])
            }
        }
        "PUBLICATION" => match (b.first(), a.first()) {
            (Some(bf), Some(af)) if bf == af => Some(Vec::new()),
            (Some(bf), Some(af)) => inverse::publication_back(bf, af).map(|s| vec![s]),
            _ => None,
        },
        "TEXT SEARCH CONFIGURATION" if b.first() == a.first() => inverse::ts_mappings_back(&b, &a),
        _ => None,
    };
    let mut out = match in_place {
        Some(statements) => statements,
        None => {
            // Dropped and made again: what depends on it makes the proof
            // fail, and says so.
            let mut out = vec![drop?];
            out.extend(b.iter().filter(|s| !rewrite::is_owner_change(s)).cloned());
            out.extend(owners(&b));
            return Some(out);
        }
    };
    out.extend(owner_back);
    Some(out)
}
