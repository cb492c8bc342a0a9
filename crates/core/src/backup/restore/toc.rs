//! A backup's table of contents as `pg_restore --list` writes it, one
//! entry a line (`215; 1259 16386 TABLE public users owner`), read into
//! its kind, schema and name, so a restore can choose entries by schema
//! and hand pg_restore the choice with `--use-list`.

use std::io::Write;
use std::path::Path;

use crate::backup::{BackupError, Tools};

/// The kinds pg_dump names with more than one word; any other is one word.
const KINDS: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE SET",
    "SEQUENCE OWNED BY",
    "FK CONSTRAINT",
    "CHECK CONSTRAINT",
    "DEFAULT ACL",
    "PUBLICATION TABLES IN SCHEMA",
    "PUBLICATION TABLE",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "FOREIGN TABLE",
    "USER MAPPING",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "EVENT TRIGGER",
    "ACCESS METHOD",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "LARGE OBJECT",
    "BLOB METADATA",
    "ROW SECURITY",
    "INDEX ATTACH",
    "TABLE ATTACH",
    "STATISTICS DATA",
    "DATABASE PROPERTIES",
    "SHELL TYPE",
    "PROCEDURAL LANGUAGE",
];

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    line: String,
    kind: String,
    /// `-` for what belongs to no schema.
    schema: String,
    name: String,
}

impl Entry {
    /// How entries are matched: kind, schema and name.
    pub(super) fn key(kind: &str, schema: &str, name: &str) -> String {
        format!("{kind}\0{schema}\0{name}")
    }

    fn own_key(&self) -> String {
        Entry::key(&self.kind, &self.schema, &self.name)
    }

    /// An entry line read; `None` for comments and anything else.
    fn parse(line: &str) -> Option<Entry> {
        let (id, rest) = line.split_once("; ")?;
        id.trim().parse::<u64>().ok()?;
        let mut words = rest.splitn(3, ' ');
        let (_class, _oid, rest) = (words.next()?, words.next()?, words.next()?);
        let kind = KINDS
            .iter()
            .find(|k| rest.starts_with(*k) && rest[k.len()..].starts_with(' '))
            .map(|k| k.to_string())
            .or_else(|| rest.split(' ').next().map(str::to_string))?;
        let rest = rest[kind.len()..].strip_prefix(' ')?;
        let (schema, rest) = rest.split_once(' ')?;
        // The owner is the last word; an entry without one ends in a space.
        let name = match rest.strip_suffix(' ') {
            Some(no_owner) => no_owner.to_string(),
            None => rest.rsplit_once(' ').map_or(rest, |(n, _)| n).to_string(),
        };
        Some(Entry { line: line.to_string(), kind, schema: schema.to_string(), name })
    }
}

/// A backup's entries.
pub(super) struct Toc {
    entries: Vec<Entry>,
}

impl Toc {
    /// The list of the dump in `dump_dir` (of backup `id`).
    pub(super) fn read(tools: &Tools, dump_dir: &Path, id: &str) -> Result<Toc, BackupError> {
        match crate::backup::verify::toc(tools, dump_dir)? {
            Ok(text) => Ok(Toc::parse(&text)),
            Err(output) => Err(BackupError::RestoreFailed { id: id.to_string(), output }),
        }
    }

    fn parse(text: &str) -> Toc {
        Toc { entries: text.lines().filter_map(Entry::parse).collect() }
    }

    /// Every schema the backup holds something in, or makes.
    pub(super) fn schemas(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.entries {
            let schema = match (e.kind.as_str(), e.schema.as_str()) {
                ("SCHEMA", "-") => e.name.as_str(),
                (_, "-") => continue,
                (_, s) => s,
            };
            if !out.iter().any(|o| o == schema) {
                out.push(schema.to_string());
            }
        }
        out.sort();
        out
    }

    /// Whether the backup has this entry.
    pub(super) fn has(&self, kind: &str, schema: &str, name: &str) -> bool {
        self.entries.iter().any(|e| e.kind == kind && e.schema == schema && e.name == name)
    }

    /// The entries of kinds `kinds`, as (kind, schema, name).
    pub(super) fn entries_of<'a>(
        &'a self,
        kinds: &'a [&str],
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        self.entries
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .map(|e| (e.kind.as_str(), e.schema.as_str(), e.name.as_str()))
    }

    /// A `--use-list` file of the entries in `schemas` with the grants on
    /// them, the entries `keep` names, and the data of `backstop.applied`;
    /// but those of the schemas in `existing` themselves (the schema, its
    /// comment and default privileges), which stay as they are.
    pub(super) fn selected(
        &self,
        schemas: &[String],
        keep: &[String],
        existing: &[String],
    ) -> Result<tempfile::NamedTempFile, BackupError> {
        let of_restored = |e: &Entry| {
            e.name.strip_prefix("SCHEMA ").is_some_and(|n| schemas.iter().any(|x| x == n))
        };
        let of_schema = |e: &Entry| {
            e.name.strip_prefix("SCHEMA ").is_some_and(|n| existing.iter().any(|x| x == n))
        };
        let mut file =
            tempfile::NamedTempFile::new().map_err(BackupError::io(std::env::temp_dir()))?;
        for e in &self.entries {
            let chosen = match (e.kind.as_str(), e.schema.as_str()) {
                ("SCHEMA", "-") => schemas.contains(&e.name) && !existing.contains(&e.name),
                // The grants on a schema restored: a kept one's were
                // taken back to PostgreSQL's start first.
                ("ACL", "-") if of_restored(e) => true,
                ("COMMENT" | "ACL", "-") => !of_schema(e) && keep.contains(&e.own_key()),
                ("DEFAULT ACL", s) if existing.iter().any(|x| x == s) => false,
                ("TABLE DATA", "backstop") => e.name == "applied",
                (_, "backstop") => false,
                (_, s) => schemas.iter().any(|x| x == s) || keep.contains(&e.own_key()),
            };
            if chosen {
                writeln!(file, "{}", e.line).map_err(BackupError::io(file.path()))?;
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = ";\n; Archive created at 2026-11-25\n;\n\
        6; 2615 2200 SCHEMA - public pg_database_owner\n\
        7; 2615 16400 SCHEMA - app owner\n\
        8; 2615 16401 SCHEMA - auth supabase_auth_admin\n\
        3400; 0 0 ACL - SCHEMA public pg_database_owner\n\
        3401; 0 0 ACL - SCHEMA auth supabase_auth_admin\n\
        2; 3079 16384 EXTENSION - pg_trgm \n\
        3357; 0 0 COMMENT - EXTENSION pg_trgm \n\
        215; 1259 16386 TABLE public users owner\n\
        216; 1259 16390 TABLE auth users supabase_auth_admin\n\
        3356; 0 16386 TABLE DATA public users owner\n\
        3357; 0 16390 TABLE DATA auth users supabase_auth_admin\n\
        3360; 0 16500 TABLE DATA backstop applied owner\n\
        3361; 0 16501 TABLE DATA backstop events owner\n\
        3205; 2620 16400 TRIGGER auth users on_auth_user_created owner\n\
        3206; 2606 16402 FK CONSTRAINT public posts posts_user_id_fkey owner\n";

    #[test]
    fn entries_are_read_with_their_kind_schema_and_name() {
        let toc = Toc::parse(LIST);
        assert_eq!(toc.entries.len(), 15);
        assert!(toc.has("TABLE DATA", "public", "users"));
        assert!(toc.has("TRIGGER", "auth", "users on_auth_user_created"));
        assert!(toc.has("FK CONSTRAINT", "public", "posts posts_user_id_fkey"));
        assert!(toc.has("EXTENSION", "-", "pg_trgm"));
        assert!(toc.has("COMMENT", "-", "EXTENSION pg_trgm"));
        assert_eq!(toc.schemas(), ["app", "auth", "backstop", "public"]);
    }

    #[test]
    fn a_choice_by_schema_keeps_the_platforms_entries_out() {
        let toc = Toc::parse(LIST);
        let keep = [Entry::key("TRIGGER", "auth", "users on_auth_user_created")];
        let file =
            toc.selected(&["public".into(), "app".into()], &keep, &["public".into()]).unwrap();
        let chosen = std::fs::read_to_string(file.path()).unwrap();
        let kinds: Vec<&str> = chosen.lines().map(|l| l.split_once("; ").unwrap().0).collect();
        assert_eq!(kinds, ["7", "3400", "215", "3356", "3360", "3205", "3206"], "{chosen}");
    }
}
