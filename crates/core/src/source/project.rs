//! Finding a project's migrations from its root, with no configuration:
//! where each tool keeps its folder, read from the tool's own settings
//! where it has them (`drizzle.config.*`'s `out`, `prisma.config.*`'s
//! `migrations.path` or `schema`, `package.json`'s `prisma.schema`,
//! `diesel.toml`, `sqitch.conf`; Flyway's in `flyway_places`), else the
//! tool's conventional place (`supabase/migrations`, `prisma/migrations`,
//! the folder holding drizzle's `meta/_journal.json`, `migrations/`,
//! `db/migrations`). A root holding two tools' folders is
//! an error that names both; a setting that names a folder that does not
//! exist is an error with the setting's file and line. The history table a
//! tool's settings name (`drizzle.config.*`'s `migrations.table` and
//! `migrations.schema`) is read the same way, as data, never by running
//! the file.

use std::path::{Path, PathBuf};

use super::js::{js_values, JsValue};
use super::{drizzle, entries, file_name, line_of, Layout, Place, SourceError};

/// The files Prisma's settings may live in, in the order Prisma reads them.
const PRISMA_CONFIGS: [&str; 12] = [
    "prisma.config.ts",
    "prisma.config.mts",
    "prisma.config.cts",
    "prisma.config.js",
    "prisma.config.mjs",
    "prisma.config.cjs",
    ".config/prisma.ts",
    ".config/prisma.mts",
    ".config/prisma.cts",
    ".config/prisma.js",
    ".config/prisma.mjs",
    ".config/prisma.cjs",
];
/// A tool's history table: its schema (`None`: the first of the search
/// path) and name, and the setting that named it, if one did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryTable {
    pub schema: Option<String>,
    pub name: String,
    /// `drizzle.config.ts:7 (migrations.table)`; `None` for a tool's
    /// default or a table named on the command line.
    #[serde(skip)]
    pub set_in: Option<String>,
}

impl HistoryTable {
    /// `name` or `schema.name`, as written on a command line
    /// (`adopt --table`): the first dot parts the schema from the name.
    pub fn parse(text: &str) -> Option<HistoryTable> {
        let (schema, name) = match text.split_once('.') {
            Some((s, n)) => (Some(s.to_string()), n.to_string()),
            None => (None, text.to_string()),
        };
        let ok = |t: &str| !t.is_empty() && !t.chars().any(char::is_whitespace);
        (ok(&name) && schema.as_deref().is_none_or(ok)).then_some(HistoryTable {
            schema,
            name,
            set_in: None,
        })
    }
}

impl std::fmt::Display for HistoryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The history table drizzle keeps for the migrations in `out` when the
/// `drizzle.config.*` whose `out` is that folder (in it or a folder above,
/// up to four levels) names one in `migrations.table` or
/// `migrations.schema`; drizzle's defaults fill in the other
/// (`__drizzle_migrations` in schema `drizzle`).
pub fn drizzle_history(out: &Path) -> Option<HistoryTable> {
    let out = out.canonicalize().ok()?;
    for (path, bases) in super::nested::drizzle_configs_of(&out) {
        let name = file_name(&path);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let values: Vec<JsValue> =
            if name.ends_with(".json") { json_values(&text) } else { js_values(&text) };
        let value = |key: &[&str]| values.iter().find(|v| v.key == key);
        let folder = value(&["out"]).map_or("drizzle", |v| v.value.as_str());
        if !bases.iter().any(|b| b.join(folder).canonicalize().is_ok_and(|d| d == out)) {
            continue;
        }
        let table = value(&["migrations", "table"]);
        let schema = value(&["migrations", "schema"]);
        let (key, line) = match (table, schema) {
            (Some(t), _) => ("migrations.table", t.line),
            (None, Some(s)) => ("migrations.schema", s.line),
            (None, None) => return None,
        };
        return Some(HistoryTable {
            schema: Some(schema.map_or("drizzle", |v| v.value.as_str()).to_string()),
            name: table.map_or("__drizzle_migrations", |v| v.value.as_str()).to_string(),
            set_in: Some(format!("{}:{line} ({key})", file_name(&path))),
        });
    }
    None
}

/// The string values of a JSON config as [`js_values`] gives them.
fn json_values(text: &str) -> Vec<JsValue> {
    fn walk(v: &serde_json::Value, key: &mut Vec<String>, text: &str, out: &mut Vec<JsValue>) {
        let Some(map) = v.as_object() else { return };
        for (k, v) in map {
            key.push(k.clone());
            match v {
                serde_json::Value::String(s) => out.push(JsValue {
                    key: key.clone(),
                    value: s.clone(),
                    line: line_of(text, &format!("\"{k}\"")),
                }),
                _ => walk(v, key, text, out),
            }
            key.pop();
        }
    }
    let mut out = Vec::new();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&json, &mut Vec::new(), text, &mut out);
    }
    out
}

/// Folders never searched for drizzle's journal.
const SKIPPED: [&str; 6] = ["node_modules", "target", "dist", "build", ".git", ".next"];

/// Every place under `root` where a tool keeps migrations (with `layout`,
/// only that tool's). Places that are the same folder count once.
pub fn candidates(root: &Path, layout: Option<Layout>) -> Result<Vec<Place>, SourceError> {
    let wanted = |l: Layout| layout.is_none_or(|w| w == l);
    let mut out: Vec<Place> = Vec::new();
    let mut push = |place: Option<Place>| {
        if let Some(p) = place {
            match out.iter_mut().find(|q| super::same_dir(&q.dir, &p.dir)) {
                // The same folder found twice: what names its tool wins.
                Some(q) if q.layout.is_none() && p.layout.is_some() => *q = p,
                Some(_) => {}
                None => out.push(p),
            }
        }
    };
    if wanted(Layout::Supabase) && root.join("supabase/migrations").is_dir() {
        push(Some(Place {
            dir: root.join("supabase/migrations"),
            layout: Some(Layout::Supabase),
            why: "the Supabase CLI's folder".into(),
        }));
    }
    if wanted(Layout::Prisma) {
        push(prisma(root)?);
    }
    if wanted(Layout::Drizzle) {
        push(drizzle_place(root)?);
    }
    if wanted(Layout::Sqitch) {
        push(sqitch(root));
    }
    if wanted(Layout::Atlas) {
        if let Some((dir, line)) = super::atlas::hcl_dir(root) {
            let place = named(dir, &root.join("atlas.hcl"), line, "migration.dir", Layout::Atlas)?;
            push(Some(place));
        }
    }
    if wanted(Layout::GraphileMigrate) {
        if let Some(g) = super::graphile::settings(root).filter(|g| g.migrations.is_dir()) {
            let why = format!("{} (migrationsFolder)", file_name(&g.file));
            push(Some(Place { dir: g.migrations, layout: Some(Layout::GraphileMigrate), why }));
        }
    }
    if wanted(Layout::Diesel) {
        push(diesel(root)?);
    }
    let mut hasuras = None;
    if wanted(Layout::Hasura) || wanted(Layout::Diesel) {
        let (places, migrations) = super::hasura::places(root)?;
        // A folder set to be read as diesel's stays so.
        places.into_iter().for_each(|p| push(Some(Place { layout: layout.or(p.layout), ..p })));
        hasuras = migrations;
    }
    if wanted(Layout::NodePgMigrate) {
        push(super::node_pg_migrate::place(root));
    }
    let below = super::nested::folders(root);
    if wanted(Layout::Flyway) {
        for place in super::flyway_places::places(root, &below)? {
            push(Some(place));
        }
    }
    for (folder, why) in [
        ("migrations", "the conventional migrations folder"),
        ("db/migrations", "dbmate's default folder"),
    ] {
        let dir = root.join(folder);
        let hasuras = hasuras.as_deref().is_some_and(|h| super::same_dir(h, &dir));
        if dir.is_dir() && !hasuras && layout.is_none_or(|l| !l.fixed_place()) {
            push(Some(Place { dir, layout, why: why.into() }));
        }
    }
    for place in super::nested::places(root, &below) {
        if place.layout.is_none_or(wanted) {
            push(Some(place));
        }
    }
    Ok(out)
}

/// The one place of `root`'s migrations; `None` when it has none.
pub fn find(root: &Path, layout: Option<Layout>) -> Result<Option<Place>, SourceError> {
    let mut found = candidates(root, layout)?;
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(SourceError::Several {
            root: root.to_path_buf(),
            places: found.iter().map(describe).collect(),
        }),
    }
}

/// A candidate as the error names it: its folder, tool, how many
/// migrations it holds, and what pointed at it.
fn describe(p: &Place) -> String {
    let count = super::load(&p.dir, p.layout).map_or_else(
        |_| "migrations not readable".to_string(),
        |f| format!("{} migration(s)", f.migrations.len()),
    );
    let tool = p.layout.map(|l| format!("{l}, ")).unwrap_or_default();
    format!("{} ({tool}{count}; {})", p.dir.display(), p.why)
}

/// Prisma: `prisma.config.*`'s (or `.config/prisma.*`'s) `migrations.path`,
/// else the folder beside the schema (the config's or `package.json`'s
/// `schema`: a file's folder, or a schema folder itself), else
/// `prisma/migrations`. A config's paths count from its own folder, as
/// Prisma reads them.
fn prisma(root: &Path) -> Result<Option<Place>, SourceError> {
    for name in PRISMA_CONFIGS {
        let path = root.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let base = path.parent().unwrap_or(root).to_path_buf();
        let values = js_values(&text);
        if let Some(v) = values.iter().find(|v| v.key == ["migrations", "path"]) {
            let dir = lexical(&base.join(&v.value));
            return named(dir, &path, v.line, "migrations.path", Layout::Prisma).map(Some);
        }
        if let Some(v) = values.iter().find(|v| v.key == ["schema"]) {
            let dir = beside_schema(&lexical(&base.join(&v.value)));
            return named(dir, &path, v.line, "schema", Layout::Prisma).map(Some);
        }
    }
    let package = root.join("package.json");
    if let Ok(text) = std::fs::read_to_string(&package) {
        let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let schema =
            json.as_ref().and_then(|j| j.pointer("/prisma/schema")).and_then(|s| s.as_str());
        if let Some(schema) = schema {
            let line = line_of(&text, "\"schema\"");
            let dir = beside_schema(&root.join(schema));
            return named(dir, &package, line, "prisma.schema", Layout::Prisma).map(Some);
        }
    }
    let dir = root.join("prisma/migrations");
    Ok(dir.is_dir().then(|| Place {
        dir,
        layout: Some(Layout::Prisma),
        why: "Prisma's folder".into(),
    }))
}

/// `path` with `a/..` and `.` taken out by their names alone, as a tool
/// that joins its settings' relative paths shows them.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Where Prisma keeps the migrations of `schema`: beside the schema file,
/// or inside a schema folder.
fn beside_schema(schema: &Path) -> PathBuf {
    if schema.is_dir() {
        schema.join("migrations")
    } else {
        schema.parent().unwrap_or(Path::new(".")).join("migrations")
    }
}

/// A folder a tool's setting names: there, or an error at the setting.
fn named(
    dir: PathBuf,
    setting: &Path,
    line: usize,
    key: &str,
    layout: Layout,
) -> Result<Place, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NamedMissing {
            setting: setting.to_path_buf(),
            line,
            key: key.to_string(),
            dir,
            tool: layout,
        });
    }
    Ok(Place { dir, layout: Some(layout), why: format!("{} ({key})", file_name(setting)) })
}

/// Drizzle: `drizzle.config.*`'s `out` (drizzle-kit's default is
/// `drizzle`), else the first folder holding `meta/_journal.json`.
fn drizzle_place(root: &Path) -> Result<Option<Place>, SourceError> {
    for name in drizzle::CONFIGS {
        let path = root.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let out = if name.ends_with(".json") {
            let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            json.and_then(|j| j.get("out").and_then(|o| o.as_str()).map(str::to_string))
                .map(|v| (v, line_of(&text, "\"out\"")))
        } else {
            js_values(&text).into_iter().find(|v| v.key == ["out"]).map(|v| (v.value, v.line))
        };
        let Some((out, line)) = out else {
            let dir = root.join("drizzle");
            if dir.join(drizzle::JOURNAL).is_file() {
                return Ok(Some(Place {
                    dir,
                    layout: Some(Layout::Drizzle),
                    why: format!("{name} (drizzle-kit's default out)"),
                }));
            }
            continue;
        };
        return named(root.join(out), &path, line, "out", Layout::Drizzle).map(Some);
    }
    Ok(journal_under(root, 3).map(|dir| Place {
        dir,
        layout: Some(Layout::Drizzle),
        why: format!("the folder holding {}", drizzle::JOURNAL),
    }))
}

/// The first folder under `dir` (breadth first, `depth` levels) that
/// holds drizzle's journal.
fn journal_under(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for d in &level {
            let Ok(children) = entries(d) else { continue };
            for child in children.into_iter().filter(|c| c.is_dir()) {
                if SKIPPED.contains(&file_name(&child)) {
                    continue;
                }
                if child.join(drizzle::JOURNAL).is_file() {
                    return Some(child);
                }
                next.push(child);
            }
        }
        level = next;
    }
    None
}

/// sqitch: `sqitch.plan` at the root, or under `sqitch.conf`'s `top_dir`.
fn sqitch(root: &Path) -> Option<Place> {
    let top = std::fs::read_to_string(root.join("sqitch.conf"))
        .ok()
        .and_then(|t| ini_value(&t, "core", "top_dir"))
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.to_path_buf());
    top.join("sqitch.plan").is_file().then(|| Place {
        dir: top,
        layout: Some(Layout::Sqitch),
        why: "sqitch.plan".into(),
    })
}

/// diesel: `diesel.toml`'s `[migrations_directory] dir`.
fn diesel(root: &Path) -> Result<Option<Place>, SourceError> {
    let path = root.join("diesel.toml");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let table: Option<toml::Table> = toml::from_str(&text).ok();
    let dir = table
        .as_ref()
        .and_then(|t| t.get("migrations_directory"))
        .and_then(|m| m.get("dir"))
        .and_then(|d| d.as_str());
    match dir {
        Some(dir) => {
            let line = line_of(&text, "dir");
            named(root.join(dir), &path, line, "migrations_directory.dir", Layout::Diesel).map(Some)
        }
        None => Ok(None),
    }
}

/// `key = value` in `[section]` of an ini-style file (git's format, as
/// sqitch.conf is).
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim().to_string();
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::source::write_under as write;

    #[test]
    fn a_drizzle_config_names_its_out_folder() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "drizzle.config.ts",
            "import { defineConfig } from 'drizzle-kit';\n// out: \"./nowhere\"\nexport default defineConfig({\n  schema: './src/db/schema.ts',\n  out: './src/db/migrations',\n  dialect: 'postgresql',\n});\n",
        );
        write(r, "src/db/migrations/meta/_journal.json", "{\"entries\": []}");
        let place = find(r, None).unwrap().unwrap();
        assert_eq!(place.dir, r.join("./src/db/migrations"));
        assert_eq!(place.layout, Some(Layout::Drizzle));
        assert_eq!(place.why, "drizzle.config.ts (out)");
    }

    #[test]
    fn a_drizzle_config_naming_a_missing_folder_is_an_error_at_its_line() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "drizzle.config.ts", "export default {\n  out: \"./gone\",\n};\n");
        let err = find(root.path(), None).unwrap_err().to_string();
        assert!(err.contains("drizzle.config.ts:2"), "{err}");
        assert!(err.contains("gone"), "{err}");
    }

    #[test]
    fn a_drizzle_config_names_its_history_table_for_its_own_out_folder() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "db/migrations/meta/_journal.json", "{\"entries\": []}");
        // No config: drizzle's default table, nothing to say.
        assert_eq!(drizzle_history(&r.join("db/migrations")), None);
        write(
            r,
            "drizzle.config.ts",
            "export default defineConfig({\n  out: './db/migrations',\n  migrations: {\n    table: 'app_migrations', // drizzle-kit's\n  },\n});\n",
        );
        let table = drizzle_history(&r.join("db/migrations")).unwrap();
        assert_eq!(table.to_string(), "drizzle.app_migrations");
        assert_eq!(table.set_in.as_deref(), Some("drizzle.config.ts:4 (migrations.table)"));
        // The schema alone, in JSON; and a config whose out is another folder says nothing.
        std::fs::remove_file(r.join("drizzle.config.ts")).unwrap();
        write(
            r,
            "drizzle.config.json",
            "{\"out\": \"db/migrations\",\n \"migrations\": {\"schema\": \"ops\"}}",
        );
        assert_eq!(
            drizzle_history(&r.join("db/migrations")).unwrap().to_string(),
            "ops.__drizzle_migrations"
        );
        write(r, "other/meta/_journal.json", "{}");
        assert_eq!(drizzle_history(&r.join("other")), None);
    }

    #[test]
    fn a_drizzle_config_below_the_package_that_runs_drizzle_kit_names_the_table() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "apps/web/package.json",
            r#"{"scripts": {"db:migrate": "drizzle-kit migrate --config server/db/drizzle.config.ts"}}"#,
        );
        write(
            r,
            "apps/web/server/db/drizzle.config.ts",
            "export default {\n  out: './drizzle',\n  migrations: { table: 'app_migrations', schema: 'public' },\n};\n",
        );
        write(r, "apps/web/drizzle/meta/_journal.json", "{}");
        let table = drizzle_history(&r.join("apps/web/drizzle")).expect("the config names it");
        assert_eq!(
            (table.schema.as_deref(), table.name.as_str()),
            (Some("public"), "app_migrations")
        );
        assert_eq!(table.set_in.as_deref(), Some("drizzle.config.ts:3 (migrations.table)"));
    }

    #[test]
    fn a_history_table_on_the_command_line_is_a_name_or_schema_dot_name() {
        let t = HistoryTable::parse("ops.history").unwrap();
        assert_eq!((t.schema.as_deref(), t.name.as_str()), (Some("ops"), "history"));
        assert_eq!(HistoryTable::parse("history").unwrap().schema, None);
        for bad in ["", ".x", "x.", "a b"] {
            assert_eq!(HistoryTable::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prisma_schema_in_package_json_moves_the_migrations() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "package.json", "{\n  \"name\": \"app\",\n  \"prisma\": {\n    \"schema\": \"db/schema.prisma\"\n  }\n}\n");
        write(r, "db/schema.prisma", "datasource db { provider = \"postgresql\" }\n");
        write(r, "db/migrations/20240101000000_init/migration.sql", "create table t (id int);\n");
        let place = find(r, None).unwrap().unwrap();
        assert_eq!(place.dir, r.join("db/schema.prisma").parent().unwrap().join("migrations"));
        assert_eq!(place.layout, Some(Layout::Prisma));
    }

    #[test]
    fn prisma_config_migrations_path_wins() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "prisma.config.ts",
            "export default defineConfig({\n  schema: 'prisma/schema.prisma',\n  migrations: {\n    path: 'prisma/history',\n  },\n});\n",
        );
        write(r, "prisma/history/migration_lock.toml", "provider = \"postgresql\"\n");
        let place = find(r, None).unwrap().unwrap();
        assert_eq!(place.dir, r.join("prisma/history"));
    }

    #[test]
    fn prismas_config_in_the_config_folder_counts_paths_from_there() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            ".config/prisma.ts",
            "export default { schema: '../db/schema.prisma', migrations: { path: '../db/migrations' } };\n",
        );
        write(tmp.path(), "db/migrations/20240101000000_init/migration.sql", "SELECT 1;");
        let place = find(tmp.path(), None).unwrap().unwrap();
        assert_eq!(place.dir, tmp.path().join("db/migrations"));
        assert_eq!(place.layout, Some(Layout::Prisma));
    }

    #[test]
    fn two_tools_in_one_root_are_named() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("supabase/migrations")).unwrap();
        std::fs::create_dir_all(r.join("prisma/migrations")).unwrap();
        let err = find(r, None).unwrap_err().to_string();
        assert!(err.contains("supabase/migrations") && err.contains("prisma/migrations"), "{err}");
        // Naming the layout picks one.
        let place = find(r, Some(Layout::Prisma)).unwrap().unwrap();
        assert_eq!(place.dir, r.join("prisma/migrations"));
    }

    #[test]
    fn a_journal_anywhere_shallow_is_drizzles_folder() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "node_modules/x/meta/_journal.json", "{}");
        write(r, "server/drizzle/meta/_journal.json", "{\"entries\": []}");
        let place = find(r, None).unwrap().unwrap();
        assert_eq!(place.dir, r.join("server/drizzle"));
    }

    #[test]
    fn nothing_found_is_none_and_conventional_folders_are_found() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(find(root.path(), None).unwrap(), None);
        std::fs::create_dir_all(root.path().join("db/migrations")).unwrap();
        let place = find(root.path(), None).unwrap().unwrap();
        assert_eq!(place.dir, root.path().join("db/migrations"));
        assert_eq!(place.layout, None);
    }

    #[test]
    fn js_values_skip_comments_and_follow_nesting() {
        let v = js_values("/* out: 'x' */ const a = { 'out': \"y\", nested: { path: `z` } }");
        assert_eq!(v[0].key, ["out"]);
        assert_eq!(v[0].value, "y");
        assert_eq!(v[1].key, ["nested", "path"]);
    }
}
