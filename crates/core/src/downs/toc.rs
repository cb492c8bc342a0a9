//! A database's schema as `pg_dump --schema-only --verbose` writes it: one
//! entry per object in dependency order, each with the catalog identity
//! (class and OID) pg_dump prints in its `TOC entry` comment, its name,
//! kind, schema, owner, the entries it depends on, and the SQL that creates
//! it. PostgreSQL's own tool writes every definition; this module only
//! reads the comment lines that frame each entry.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use crate::pg::conn::LibpqTarget;

/// One object of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The dump's own number for the entry (what `Dependencies` name).
    pub id: u32,
    /// The catalog the object lives in (`pg_class`, `pg_proc`, … by OID),
    /// 0 for entries that are parts of another (comments, privileges).
    pub class: u32,
    pub oid: u32,
    /// As pg_dump names it: `users`, `users users_pkey` (table and
    /// constraint), `touch()`, `TABLE users` (a comment or privilege).
    pub name: String,
    /// `TABLE`, `INDEX`, `FK CONSTRAINT`, `ACL`, …
    pub kind: String,
    /// Empty for objects outside a schema.
    pub schema: String,
    pub owner: String,
    pub deps: Vec<u32>,
    /// The statements that create it, as pg_dump wrote them.
    pub sql: String,
    /// For a member of a table (constraint, trigger, policy, rule,
    /// default): the table's name, from the entry it depends on. pg_dump
    /// joins the two names with a space, and either may hold one.
    pub table: Option<String>,
}

impl Entry {
    /// A key that survives renames: the catalog identity where pg_dump
    /// gives one; else the kind, the identity of the object it belongs
    /// to and its name.
    pub fn identity(&self, dump: &Dump) -> String {
        if self.oid != 0 {
            return format!("{}|{}|{}", self.kind, self.class, self.oid);
        }
        let parent = self
            .deps
            .first()
            .and_then(|d| dump.by_id(*d))
            .map(|p| format!("{}|{}", p.class, p.oid))
            .unwrap_or_default();
        format!("{}|{parent}|{}", self.kind, self.name)
    }

    /// A key by name alone, for objects a down made again (new OIDs).
    pub fn by_name(&self) -> String {
        format!("{}|{}|{}", self.kind, self.schema, self.name)
    }

    /// For `CONSTRAINT`, `TRIGGER`, `POLICY`, `RULE` and `DEFAULT`
    /// entries, whose names are `table object`: the two parts, the table
    /// being the one the entry depends on (`"foo bar"` and `"foo bar_fk"`
    /// are `foo bar foo bar_fk`, split after `foo bar`, never at the
    /// first space).
    pub fn table_and_member(&self) -> Option<(&str, &str)> {
        match &self.table {
            Some(table) => {
                let member = self.name.strip_prefix(table.as_str())?.strip_prefix(' ')?;
                Some((&self.name[..table.len()], member))
            }
            None => self.name.split_once(' '),
        }
    }
}

/// The OID of `pg_class`, the catalog of tables and views.
pub(super) const PG_CLASS: u32 = 1259;

/// A whole schema dump.
#[derive(Debug, Clone, Default)]
pub(super) struct Dump {
    pub entries: Vec<Entry>,
    index: HashMap<u32, usize>,
}

impl Dump {
    pub fn by_id(&self, id: u32) -> Option<&Entry> {
        self.index.get(&id).map(|i| &self.entries[*i])
    }

    /// The entry `e` belongs to: the first it depends on, else the
    /// relation the catalog says owns it (`owners`: (class, OID) →
    /// relation OID).
    pub fn parent_of(&self, e: &Entry, owners: &HashMap<(u32, u32), u32>) -> Option<&Entry> {
        if let Some(d) = e.deps.first() {
            return self.by_id(*d);
        }
        let owner = owners.get(&(e.class, e.oid))?;
        self.entries.iter().find(|p| p.class == PG_CLASS && p.oid == *owner)
    }

    /// Whether `e`, an index or a constraint's index, is a partition of a
    /// partitioned table's index (an `INDEX ATTACH` entry names it): it
    /// goes with that index, and PostgreSQL refuses to drop it alone.
    pub fn attached(&self, e: &Entry) -> bool {
        let index = match e.kind.as_str() {
            "INDEX" => e.name.as_str(),
            "CONSTRAINT" => match e.table_and_member() {
                Some((_, member)) => member,
                None => return false,
            },
            _ => return false,
        };
        self.entries
            .iter()
            .any(|a| a.kind == "INDEX ATTACH" && a.schema == e.schema && a.name == index)
    }

    /// Names the table of each member entry (`table member`) whose
    /// dependencies do not name it (pg_dump lists none for a trigger) from
    /// the catalog's `owners` ((class, OID) → relation OID): its name is
    /// then split after the table's, never at its first space (a trigger
    /// `my trg` on `"foobar fk"` is `foobar fk my trg`).
    pub fn name_members(&mut self, owners: &HashMap<(u32, u32), u32>) {
        let tables: HashMap<u32, String> = self
            .entries
            .iter()
            .filter(|t| t.class == PG_CLASS)
            .map(|t| (t.oid, t.name.clone()))
            .collect();
        for e in self.entries.iter_mut().filter(|e| e.table.is_none()) {
            let Some(table) = owners.get(&(e.class, e.oid)).and_then(|r| tables.get(r)) else {
                continue;
            };
            if e.name.strip_prefix(table.as_str()).is_some_and(|r| r.starts_with(' ')) {
                e.table = Some(table.clone());
            }
        }
    }

    fn indexed(entries: Vec<Entry>) -> Dump {
        let index = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        Dump { entries, index }
    }
}

/// Why the dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("could not run {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pg_dump --schema-only failed: {output}")]
    Failed { output: String },
}

/// Dumps the schema of `dbname` on the server of `url` with the `pg_dump`
/// in `bin_dir` (never the `backstop` schema), with more of pg_dump's
/// options (`--schema=auth`, `--exclude-table=...`).
pub(super) fn dump_with(
    pg_dump: &std::path::Path,
    url: &str,
    dbname: &str,
    extra: &[String],
) -> Result<Dump, super::DownsError> {
    let target = LibpqTarget::from_url(url, Some(dbname)).map_err(super::DownsError::Connect)?;
    let mut cmd = Command::new(pg_dump);
    cmd.args(["--schema-only", "--verbose", "--no-password", "--exclude-schema=backstop"])
        .args(extra)
        .arg(format!("--dbname={}", target.conninfo));
    target.apply(&mut cmd);
    crate::shell::die_with_parent(&mut cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DumpError::Spawn { tool: pg_dump.display().to_string(), source })?;
    if !out.status.success() {
        // --verbose writes a line per step: keep what says what went wrong.
        let output = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| {
                ["error:", "detail:", "hint:", "DETAIL:", "HINT:"].iter().any(|w| l.contains(w))
            })
            .collect::<Vec<_>>()
            .join("\n");
        return Err(DumpError::Failed { output: output.trim().to_string() }.into());
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// `-- TOC entry 215 (class 1259 OID 16385)`: the id, class and OID.
fn toc_line(line: &str) -> Option<(u32, u32, u32)> {
    let rest = line.strip_prefix("-- TOC entry ")?;
    let (id, rest) = rest.split_once(" (class ")?;
    let (class, rest) = rest.split_once(" OID ")?;
    let oid = rest.strip_suffix(')')?;
    Some((id.trim().parse().ok()?, class.trim().parse().ok()?, oid.trim().parse().ok()?))
}

/// `-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: app`.
fn name_line(line: &str, e: &mut Entry) -> bool {
    let Some(rest) = line.strip_prefix("-- Name: ") else { return false };
    // The name may hold "; " itself (a function's arguments do not, but
    // quoted names may): the fields are read from the end.
    let Some((rest, owner)) = rest.rsplit_once("; Owner: ") else { return false };
    let Some((rest, schema)) = rest.rsplit_once("; Schema: ") else { return false };
    let Some((name, kind)) = rest.rsplit_once("; Type: ") else { return false };
    e.name = name.to_string();
    e.kind = kind.to_string();
    e.schema = if schema == "-" { String::new() } else { schema.to_string() };
    e.owner = if owner == "-" { String::new() } else { owner.to_string() };
    true
}

/// pg_dump's own comment lines after the last entry. Comments inside an
/// entry's SQL (a function body's) are kept.
const FOOTER: [&str; 4] =
    ["-- Completed on ", "-- PostgreSQL database dump", "-- Dumped from ", "-- Dumped by "];

/// An entry's text without the session settings pg_dump writes between
/// entries (`SET default_tablespace = '';` lands at the end of the entry
/// before the one that needs it). Only the trailing lines are taken off,
/// so the rest keeps pg_dump's own text byte for byte: an entry must read
/// the same whichever entry happens to follow it.
fn without_settings(sql: &str) -> String {
    let mut lines: Vec<&str> = sql.lines().collect();
    while let Some(last) = lines.last() {
        let setting = last.starts_with("SET ") || last.starts_with("SELECT pg_catalog.set_config(");
        if setting || last.trim().is_empty() {
            lines.pop();
        } else {
            break;
        }
    }
    lines.join("\n")
}

/// Reads pg_dump's plain output into entries. Lines pg_dump writes for
/// psql (`\restrict`), the session settings at the top and its comments
/// are not part of any entry's SQL.
pub(super) fn parse(text: &str) -> Dump {
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((id, class, oid)) = toc_line(line) {
            if let Some(e) = current.take() {
                entries.push(e);
            }
            let mut e = Entry {
                id,
                class,
                oid,
                name: String::new(),
                kind: String::new(),
                schema: String::new(),
                owner: String::new(),
                deps: Vec::new(),
                sql: String::new(),
                table: None,
            };
            while let Some(next) = lines.peek() {
                if let Some(deps) = next.strip_prefix("-- Dependencies: ") {
                    e.deps.extend(deps.split_whitespace().filter_map(|d| d.parse::<u32>().ok()));
                } else if !name_line(next, &mut e) && *next != "--" {
                    break;
                }
                lines.next();
            }
            current = Some(e);
            continue;
        }
        let Some(e) = current.as_mut() else { continue };
        if line.starts_with('\\') || line == "--" || FOOTER.iter().any(|f| line.starts_with(f)) {
            continue;
        }
        e.sql.push_str(line);
        e.sql.push('\n');
    }
    if let Some(e) = current.take() {
        entries.push(e);
    }
    for e in &mut entries {
        e.sql = without_settings(e.sql.trim());
    }
    let tables = tables_of_members(&entries);
    for (e, table) in entries.iter_mut().zip(tables) {
        e.table = table;
    }
    Dump::indexed(entries)
}

/// For each entry whose name is `table member`, the table: the longest
/// name of a relation it depends on that its name starts with, then a
/// space.
fn tables_of_members(entries: &[Entry]) -> Vec<Option<String>> {
    let relations = ["TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE"];
    let by_id: std::collections::HashMap<u32, &Entry> = entries.iter().map(|e| (e.id, e)).collect();
    entries
        .iter()
        .map(|e| {
            e.deps
                .iter()
                .filter_map(|d| by_id.get(d))
                .filter(|t| relations.contains(&t.kind.as_str()) && t.schema == e.schema)
                .filter(|t| {
                    e.name.strip_prefix(t.name.as_str()).is_some_and(|r| r.starts_with(' '))
                })
                .map(|t| t.name.clone())
                .max_by_key(|n| n.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;

--
-- TOC entry 216 (class 1259 OID 16393)
-- Name: users; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.users (
    id bigint NOT NULL
);

ALTER TABLE public.users OWNER TO postgres;

--
-- TOC entry 3371 (class 0 OID 0)
-- Dependencies: 216
-- Name: TABLE users; Type: COMMENT; Schema: public; Owner: postgres
--

COMMENT ON TABLE public.users IS 'people';


-- Completed on 2026-11-24 15:51:40 UTC

--
-- PostgreSQL database dump complete
--

\\unrestrict abc
";

    /// Regression: pg_dump lists no dependency for a trigger, so its table
    /// came from its name cut at the first space: `DROP TRIGGER IF EXISTS
    /// "fk my trg" ON public.foobar` for trigger `my trg` on `"foobar fk"`.
    #[test]
    fn a_members_table_without_dependencies_comes_from_the_catalog() {
        let mut dump = parse(
            "--\n-- TOC entry 10 (class 1259 OID 16400)\n-- Name: foobar fk; Type: TABLE; Schema: public; Owner: app\n--\n\n\
             CREATE TABLE public.\"foobar fk\" (id int);\n\n\
             --\n-- TOC entry 11 (class 1259 OID 16401)\n-- Name: foobar; Type: TABLE; Schema: public; Owner: app\n--\n\n\
             CREATE TABLE public.foobar (id int);\n\n\
             --\n-- TOC entry 12 (class 2620 OID 16402)\n-- Name: foobar fk my trg; Type: TRIGGER; Schema: public; Owner: app\n--\n\n\
             CREATE TRIGGER \"my trg\" BEFORE INSERT ON public.\"foobar fk\" FOR EACH ROW EXECUTE FUNCTION public.trg();\n",
        );
        dump.name_members(&HashMap::from([((2620, 16402), 16400)]));
        let trigger = dump.entries.iter().find(|e| e.kind == "TRIGGER").unwrap();
        assert_eq!(trigger.table_and_member(), Some(("foobar fk", "my trg")));
    }

    /// Regression: a constraint of table `"foo bar"` named `"foo bar_fk"`
    /// is `foo bar foo bar_fk` in pg_dump's words; split at the first
    /// space it named table `foo`, which a down with IF EXISTS could act on.
    #[test]
    fn a_members_table_is_the_relation_it_depends_on_whatever_spaces_they_hold() {
        let dump = parse(
            "--\n-- TOC entry 10 (class 1259 OID 16400)\n-- Name: foo bar; Type: TABLE; Schema: public; Owner: app\n--\n\n\
             CREATE TABLE public.\"foo bar\" (id int);\n\n\
             --\n-- TOC entry 11 (class 1259 OID 16401)\n-- Name: foo; Type: TABLE; Schema: public; Owner: app\n--\n\n\
             CREATE TABLE public.foo (id int);\n\n\
             --\n-- TOC entry 12 (class 2606 OID 16402)\n-- Name: foo bar foo bar_fk; Type: FK CONSTRAINT; Schema: public; Owner: app\n\
             -- Dependencies: 10\n--\n\n\
             ALTER TABLE ONLY public.\"foo bar\" ADD CONSTRAINT \"foo bar_fk\" FOREIGN KEY (id) REFERENCES public.foo(id);\n",
        );
        let fk = dump.entries.iter().find(|e| e.kind == "FK CONSTRAINT").unwrap();
        assert_eq!(fk.table_and_member(), Some(("foo bar", "foo bar_fk")));
        assert_eq!(
            super::super::ddl::drop_of(fk).unwrap(),
            "ALTER TABLE public.\"foo bar\" DROP CONSTRAINT IF EXISTS \"foo bar_fk\""
        );
    }

    #[test]
    fn entries_are_framed_by_pg_dumps_comments() {
        let dump = parse(SAMPLE);
        assert_eq!(dump.entries.len(), 2);
        let table = &dump.entries[0];
        assert_eq!((table.id, table.class, table.oid), (216, 1259, 16393));
        assert_eq!((table.kind.as_str(), table.schema.as_str()), ("TABLE", "public"));
        assert_eq!(
            table.sql,
            "CREATE TABLE public.users (\n    id bigint NOT NULL\n);\n\nALTER TABLE public.users OWNER TO postgres;"
        );
        let comment = &dump.entries[1];
        assert_eq!(comment.deps, [216]);
        assert_eq!(comment.sql, "COMMENT ON TABLE public.users IS 'people';");
        assert_eq!(comment.identity(&dump), "COMMENT|1259|16393|TABLE users");
        assert_eq!(dump.parent_of(comment, &HashMap::new()).unwrap().name, "users");
    }

    #[test]
    fn an_entry_reads_the_same_whatever_follows_it() {
        // Regression: the settings pg_dump writes before the first table
        // landed at the end of the entry before it, which then differed
        // from the same entry elsewhere in the dump, and a down put an
        // untouched platform function back.
        let body = "CREATE FUNCTION auth.uid() RETURNS uuid\n    LANGUAGE sql STABLE\n    AS $$\n  SELECT 1\n$$;\n\n\nALTER FUNCTION auth.uid() OWNER TO postgres;";
        let before = parse(&format!(
            "--\n-- TOC entry 1 (class 1255 OID 10)\n-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: postgres\n--\n\n{body}\n\nSET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n"
        ));
        let after = parse(&format!(
            "--\n-- TOC entry 1 (class 1255 OID 10)\n-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: postgres\n--\n\n{body}\n\n"
        ));
        assert_eq!(before.entries[0].sql, after.entries[0].sql);
        assert_eq!(before.entries[0].sql, body);
    }
}
