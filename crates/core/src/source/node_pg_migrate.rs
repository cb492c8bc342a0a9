//! node-pg-migrate's settings, read where the tool reads them: the flags
//! of a `package.json` script that runs it, then the `db` section of
//! `config/default.json` (where the project depends on the `config`
//! package, which node-pg-migrate loads when it is there; another section
//! with `--config-value`), then the JSON file of `-f`/`--config-file`.
//! A key a later one holds wins, as the tool applies them; each setting
//! is the tool's own name (`migrations-dir`, `migrations-table`,
//! `migrations-schema`, `schema`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::layout::{Layout, Place};
use super::{line_of, HistoryTable};

/// One setting's value and where it is set (`package.json:7
/// (scripts.migrate)`, `config/default.json:4 (db.migrations-table)`).
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    value: String,
    set_in: String,
}

/// The settings one way of running the tool gives.
#[derive(Debug, Default)]
struct Settings {
    dir: Option<Setting>,
    table: Option<Setting>,
    /// `migrations-schema`, else the first of `schema`.
    schema: Option<Setting>,
}

impl Settings {
    fn names_history(&self) -> bool {
        self.table.is_some() || self.schema.is_some()
    }
}

/// A project's `package.json`, read.
struct Package {
    root: PathBuf,
    text: String,
    json: Value,
}

impl Package {
    fn read(root: &Path) -> Option<Package> {
        let text = std::fs::read_to_string(root.join("package.json")).ok()?;
        if !text.contains("node-pg-migrate") {
            return None;
        }
        let json = serde_json::from_str(&text).ok()?;
        Some(Package { root: root.to_path_buf(), text, json })
    }

    fn depends_on(&self, name: &str) -> bool {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|k| self.json.get(k).and_then(|d| d.get(name)).is_some())
    }

    /// The scripts that run node-pg-migrate: each key and text.
    fn scripts(&self) -> Vec<(&str, &str)> {
        let Some(scripts) = self.json.get("scripts").and_then(Value::as_object) else {
            return Vec::new();
        };
        scripts
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .filter(|(_, s)| s.contains("node-pg-migrate"))
            .collect()
    }

    /// The settings of running the tool with the flags of `script` (its
    /// `key`), or with none: the flags, then the config files over them.
    fn settings(&self, script: Option<(&str, &str)>) -> Settings {
        let (key, words) = match script {
            Some((key, text)) => (key, text.split_whitespace().collect()),
            None => ("", Vec::new()),
        };
        let flag = |names: &[&str]| flag(&words, names);
        let line = line_of(&self.text, &format!("\"{key}\""));
        let at = |value: String| Setting {
            value,
            set_in: format!("package.json:{line} (scripts.{key})"),
        };
        let mut s = Settings {
            dir: flag(&["-m", "--migrations-dir"]).map(at),
            table: flag(&["-t", "--migrations-table"]).map(at),
            schema: flag(&["--migrations-schema"])
                .or_else(|| flag(&["-s", "--schema"]).map(|v| first_schema(&v)))
                .map(at),
        };
        if self.depends_on("config") {
            let section = flag(&["--config-value"]).unwrap_or_else(|| "db".into());
            let file = self.root.join("config/default.json");
            if let Some((text, json)) = read_json(&file) {
                if let Some(db) = json.get(&section) {
                    over(&mut s, db, &text, ("config/default.json", &format!("{section}.")));
                }
            }
        }
        if let Some(name) = flag(&["-f", "--config-file"]) {
            let file = self.root.join(&name);
            if let Some((text, json)) = read_json(&file) {
                over(&mut s, &json, &text, (&name, ""));
            }
        }
        s
    }
}

/// The value of the first of `names` in `words` (`-t x`, `--migrations-table=x`).
fn flag(words: &[&str], names: &[&str]) -> Option<String> {
    words.iter().enumerate().find_map(|(i, w)| {
        let value = names.iter().find_map(|n| {
            let rest = w.strip_prefix(n)?;
            match rest.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if rest.is_empty() => words.get(i + 1).map(|v| v.to_string()),
                None => None,
            }
        })?;
        Some(value.trim_matches(['"', '\'']).to_string())
    })
}

/// The first schema of a `--schema` list (`a,b`).
fn first_schema(list: &str) -> String {
    list.split(',').next().unwrap_or_default().trim().to_string()
}

fn read_json(file: &Path) -> Option<(String, Value)> {
    let text = std::fs::read_to_string(file).ok()?;
    let json = serde_json::from_str(&text).ok()?;
    Some((text, json))
}

/// The keys `json` (read from `text`) holds put over `s`, as
/// node-pg-migrate reads a config: only a value of the type it takes
/// counts. Each is set in `file` at its key (under `prefix`: `db.`).
fn over(s: &mut Settings, json: &Value, text: &str, (file, prefix): (&str, &str)) {
    let at = |key: &str, value: String| Setting {
        value,
        set_in: format!("{file}:{} ({prefix}{key})", line_of(text, &format!("\"{key}\""))),
    };
    let text_of = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_string);
    if let Some(v) = text_of("migrations-dir") {
        s.dir = Some(at("migrations-dir", v));
    }
    if let Some(v) = text_of("migrations-table") {
        s.table = Some(at("migrations-table", v));
    }
    let first = json
        .get("schema")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(first_schema);
    match text_of("migrations-schema") {
        Some(v) => s.schema = Some(at("migrations-schema", v)),
        None => {
            if let Some(v) = first {
                s.schema = Some(at("schema", v));
            }
        }
    }
}

/// node-pg-migrate: a `package.json` that depends on it or runs it in a
/// script keeps its migrations in `migrations/`, or in the folder its
/// settings name (`-m DIR`, `migrations-dir` in a config); its SQL files
/// need no marker (a file without one is its up whole), so only the
/// project says whose they are.
pub(super) fn place(root: &Path) -> Option<Place> {
    let package = Package::read(root)?;
    let scripts = package.scripts();
    if !package.depends_on("node-pg-migrate") && scripts.is_empty() {
        return None;
    }
    let named = scripts
        .iter()
        .map(|s| package.settings(Some(*s)))
        .chain(std::iter::once(package.settings(None)))
        .find_map(|s| s.dir);
    let dir = root.join(named.as_ref().map_or("migrations", |s| s.value.as_str()));
    dir.is_dir().then(|| Place {
        dir,
        layout: Some(Layout::NodePgMigrate),
        why: "package.json (node-pg-migrate)".into(),
    })
}

/// The table node-pg-migrate keeps its history in for the migrations in
/// `dir`, where its settings for the project (the nearest `package.json`
/// that names the tool, in `dir` or up to three folders above) name one:
/// the first script that runs it naming a table or schema, else its
/// config files alone; its defaults fill in the other (`pgmigrations`, on
/// the search path).
pub fn history(dir: &Path) -> Option<HistoryTable> {
    let package = dir.ancestors().take(4).find_map(Package::read)?;
    let settings = package
        .scripts()
        .into_iter()
        .map(|s| package.settings(Some(s)))
        .chain(std::iter::once(package.settings(None)))
        .find(Settings::names_history)?;
    let mut set_in: Vec<String> = [&settings.table, &settings.schema]
        .into_iter()
        .flatten()
        .map(|s| s.set_in.clone())
        .collect();
    set_in.dedup();
    Some(HistoryTable {
        schema: settings.schema.map(|s| s.value).filter(|s| !s.is_empty()),
        name: settings.table.map_or_else(|| "pgmigrations".into(), |s| s.value),
        set_in: Some(set_in.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::write_under as write;

    fn package(scripts: &str, dependencies: &str) -> String {
        format!(
            "{{\n  \"name\": \"shop\",\n  \"scripts\": {{ {scripts} }},\n  \
             \"dependencies\": {{ {dependencies} }}\n}}\n"
        )
    }

    #[test]
    fn a_scripts_flags_name_the_history_where_it_says_so() {
        let root = tempfile::tempdir().unwrap();
        let scripts = "\"test\": \"vitest\",\n    \"migrate\": \"node-pg-migrate -t hist --schema app,public\"";
        write(root.path(), "package.json", &package(scripts, "\"node-pg-migrate\": \"8\""));
        write(root.path(), "migrations/1_a.sql", "select 1;");
        let h = history(&root.path().join("migrations")).unwrap();
        assert_eq!((h.schema.as_deref(), h.name.as_str()), (Some("app"), "hist"));
        assert_eq!(h.set_in.as_deref(), Some("package.json:4 (scripts.migrate)"));
    }

    #[test]
    fn a_config_file_is_read_as_the_tool_reads_it_over_the_flags() {
        let root = tempfile::tempdir().unwrap();
        let scripts = "\"migrate\": \"node-pg-migrate -f cfg/migrate.json -t from_flag\"";
        write(root.path(), "package.json", &package(scripts, "\"node-pg-migrate\": \"8\""));
        write(
            root.path(),
            "cfg/migrate.json",
            "{\n  \"url\": \"postgres://localhost/shop\",\n  \"migrations-table\": \"npm_history\",\n  \
             \"schema\": [\"ops\", \"public\"],\n  \"migrations-dir\": \"db/migrations\"\n}\n",
        );
        write(root.path(), "db/migrations/1_a.sql", "select 1;");
        let h = history(&root.path().join("db/migrations")).unwrap();
        assert_eq!((h.schema.as_deref(), h.name.as_str()), (Some("ops"), "npm_history"));
        assert_eq!(
            h.set_in.as_deref(),
            Some("cfg/migrate.json:3 (migrations-table), cfg/migrate.json:4 (schema)")
        );
        let place = place(root.path()).unwrap();
        assert_eq!(place.dir, root.path().join("db/migrations"));
        // A value of a type the tool does not take there is not taken.
        write(root.path(), "cfg/migrate.json", "{ \"migrations-table\": 7 }");
        assert_eq!(history(&root.path().join("db/migrations")).unwrap().name, "from_flag");
    }

    #[test]
    fn the_config_packages_db_section_counts_only_where_the_project_has_that_package() {
        let root = tempfile::tempdir().unwrap();
        let config = "{\n  \"db\": {\n    \"migrations-table\": \"cfg_history\",\n    \"migrations-schema\": \"ops\"\n  }\n}\n";
        write(root.path(), "config/default.json", config);
        write(root.path(), "migrations/1_a.sql", "select 1;");
        let scripts = "\"migrate\": \"node-pg-migrate\"";
        write(root.path(), "package.json", &package(scripts, "\"node-pg-migrate\": \"8\""));
        assert!(history(&root.path().join("migrations")).is_none(), "the tool's defaults");
        let with = "\"node-pg-migrate\": \"8\", \"config\": \"3\"";
        write(root.path(), "package.json", &package(scripts, with));
        let h = history(&root.path().join("migrations")).unwrap();
        assert_eq!((h.schema.as_deref(), h.name.as_str()), (Some("ops"), "cfg_history"));
        assert_eq!(
            h.set_in.as_deref(),
            Some("config/default.json:3 (db.migrations-table), config/default.json:4 (db.migrations-schema)")
        );
    }
}
