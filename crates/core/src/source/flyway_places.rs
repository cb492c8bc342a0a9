//! Where Flyway looks for a Java project's scripts, read from its settings
//! as data: each module's (the root, and every folder holding
//! `src/main/resources`, a `flyway.conf` or a `conf/flyway.conf`)
//! `flyway.locations` in `flyway.conf` or `conf/flyway.conf`, else
//! `spring.flyway.locations` in `src/main/resources/application.properties`
//! or `application.yml`, else Flyway's default `src/main/resources/db/migration`
//! (and at the root the CLI's `sql/` and `db/migration`). A `classpath:`
//! location (or one with no prefix) is the module's `src/main/resources`,
//! a `filesystem:` one counts from the module; `{vendor}` is `postgresql`.
//! A location that does not exist is an error naming the setting's file
//! and line; a location on a cloud store (`s3:`, `gcs:`) is not a folder
//! and is passed over.

use std::path::{Path, PathBuf};

use super::{entries, file_name, flyway, Layout, Place, SourceError};

/// One location a setting names, with where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Location {
    /// As written, `{vendor}` already replaced.
    pub(super) text: String,
    pub(super) file: PathBuf,
    pub(super) line: usize,
    pub(super) key: &'static str,
}

/// Flyway's `{vendor}` placeholder, as Flyway fills it for PostgreSQL.
fn vendor(location: &str) -> String {
    location.replace("{vendor}", "postgresql")
}

/// The items of a comma-separated list (a properties value, or a YAML
/// flow list `[a, b]`), each trimmed of quotes.
fn items(value: &str) -> Vec<String> {
    value
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|i| i.trim().trim_matches(['"', '\'']).trim())
        .filter(|i| !i.is_empty())
        .map(vendor)
        .collect()
}

/// `key`'s value in a Java properties text, with the line its key is on:
/// `key=value`, `key: value` or `key value`, continued over lines that
/// end in `\`; `#` and `!` start comments.
pub(super) fn property(text: &str, key: &str) -> Option<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let number = i + 1;
        i += 1;
        if line.starts_with(['#', '!']) {
            continue;
        }
        let Some(rest) = line.strip_prefix(key) else { continue };
        if !(rest.is_empty() || rest.starts_with([' ', '\t', '=', ':'])) {
            continue;
        }
        let rest = rest.trim_start();
        let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
        let mut value = rest.trim().to_string();
        while value.ends_with('\\') && i < lines.len() {
            value.pop();
            value.push_str(lines[i].trim());
            i += 1;
        }
        return Some((value, number));
    }
    None
}

/// `spring.flyway.locations` in a YAML text, with its line (see
/// [`yaml_value`]).
#[cfg(test)]
fn yaml_locations(text: &str) -> Option<(Vec<String>, usize)> {
    yaml_value(text, &["spring", "flyway", "locations"])
}

/// The value of the key `PATH` in a YAML text, with its line: written
/// nested (`spring:` / `flyway:` / `locations:`) or dotted at any level,
/// its value inline (`a, b` or `[a, b]`) or as a block list (`- a`).
fn yaml_value(text: &str, path_of_key: &[&str]) -> Option<(Vec<String>, usize)> {
    // The key path of each open mapping, by indent.
    let mut open: Vec<(usize, Vec<String>)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.split(" #").next().unwrap_or(raw).trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') || body.starts_with('-') || body == "---" {
            if body == "---" {
                open.clear();
            }
            continue;
        }
        let indent = line.len() - body.len();
        let Some((key, value)) = body.split_once(':') else { continue };
        while open.last().is_some_and(|(at, _)| *at >= indent) {
            open.pop();
        }
        let mut path: Vec<String> = open.last().map(|(_, p)| p.clone()).unwrap_or_default();
        path.extend(key.trim().trim_matches(['"', '\'']).split('.').map(str::to_string));
        let value = value.trim();
        if path != path_of_key {
            if value.is_empty() {
                open.push((indent, path));
            }
            continue;
        }
        if !value.is_empty() {
            return Some((items(value), i + 1));
        }
        // A block list under the key.
        let listed = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| l.is_empty() || l.starts_with('-') || l.starts_with('#'))
            .filter_map(|l| l.strip_prefix('-'))
            .flat_map(items)
            .collect();
        return Some((listed, i + 1));
    }
    None
}

/// The locations a module's settings name for Flyway: its `flyway.conf`
/// (or `conf/flyway.conf`), else its Spring application's. Empty: none
/// named, so Flyway looks in its default place.
pub(super) fn named_locations(module: &Path) -> Vec<Location> {
    for conf in ["flyway.conf", "conf/flyway.conf"] {
        let file = module.join(conf);
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if let Some((value, line)) = property(&text, "flyway.locations") {
            let key = "flyway.locations";
            let at = |text| Location { text, file: file.clone(), line, key };
            return items(&value).into_iter().map(at).collect();
        }
    }
    let key = "spring.flyway.locations";
    match spring_value(module, &["spring", "flyway", "locations"]) {
        Some((locations, file, line)) => locations
            .into_iter()
            .map(|text| Location { text, file: file.clone(), line, key })
            .collect(),
        None => Vec::new(),
    }
}

/// The Spring settings files of `module`, in the order they are read
/// here: `application.properties` and `.yml`, the default profile's, and
/// the `*-defaults.properties` files a library module ships for the
/// application to import.
fn spring_files(module: &Path) -> Vec<PathBuf> {
    let resources = module.join("src/main/resources");
    let mut out: Vec<PathBuf> = [
        "application.properties",
        "application.yml",
        "application.yaml",
        "application-default.properties",
        "application-default.yml",
    ]
    .iter()
    .map(|n| resources.join(n))
    .collect();
    if let Ok(found) = entries(&resources) {
        out.extend(found.into_iter().filter(|p| file_name(p).ends_with("-defaults.properties")));
    }
    out
}

/// The first value of the Spring key `path` (`spring.flyway.table` as
/// `["spring", "flyway", "table"]`) among `module`'s settings files, with
/// the file and line.
fn spring_value(module: &Path, path: &[&str]) -> Option<(Vec<String>, PathBuf, usize)> {
    spring_raw(module, path).and_then(|(values, file, line)| {
        let resolved: Option<Vec<String>> =
            values.iter().map(|v| placeholders(module, v, 0)).collect();
        Some((resolved?, file, line))
    })
}

/// A Spring setting's values as written, with its file and line.
fn spring_raw(module: &Path, path: &[&str]) -> Option<(Vec<String>, PathBuf, usize)> {
    let key = path.join(".");
    spring_files(module).into_iter().find_map(|file| {
        let text = std::fs::read_to_string(&file).ok()?;
        let found = if file_name(&file).ends_with(".properties") {
            property(&text, &key).map(|(v, line)| (items(&v), line))
        } else {
            yaml_value(&text, path)
        };
        found.map(|(values, line)| (values, file, line))
    })
}

/// `value` with its Spring placeholders (`${spring.jpa.database}`,
/// `${name:default}`) filled from the module's settings, as Spring fills
/// them; `None` where one names no setting and gives no default (Spring
/// then refuses to start, and the setting says nothing Backstop can use).
fn placeholders(module: &Path, value: &str, depth: usize) -> Option<String> {
    let Some(start) = value.find("${") else { return Some(value.to_string()) };
    let end = start + value[start..].find('}')?;
    if depth > 8 {
        return None;
    }
    let inner = &value[start + 2..end];
    let (name, default) = match inner.split_once(':') {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    let path: Vec<&str> = name.split('.').collect();
    let filled = match spring_raw(module, &path).and_then(|(v, _, _)| v.into_iter().next()) {
        Some(v) => placeholders(module, &v, depth + 1)?,
        None => default?.to_string(),
    };
    let rest = placeholders(module, &value[end + 1..], depth + 1)?;
    Some(format!("{}{filled}{rest}", &value[..start]))
}

/// The script suffixes a Flyway project's settings give for the scripts
/// of `dir` (`flyway.sqlMigrationSuffixes` in its module's `flyway.conf`,
/// Spring's `spring.flyway.sql-migration-suffixes`), with where they are
/// set; `None` where none are (Flyway's `.sql`).
pub(super) fn suffixes(dir: &Path) -> Option<(Vec<String>, String)> {
    module_suffixes(dir.ancestors().skip(1).take(8).find(|d| is_module(d))?)
}

/// The script suffixes `module`'s settings give (see [`suffixes`]).
fn module_suffixes(module: &Path) -> Option<(Vec<String>, String)> {
    for conf in ["flyway.conf", "conf/flyway.conf"] {
        let file = module.join(conf);
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if let Some((value, line)) = property(&text, "flyway.sqlMigrationSuffixes") {
            let set = format!("{}:{line} (flyway.sqlMigrationSuffixes)", file_name(&file));
            return Some((items(&value), set));
        }
    }
    let (values, file, line) =
        spring_value(module, &["spring", "flyway", "sql-migration-suffixes"])?;
    let set = format!("{}:{line} (spring.flyway.sql-migration-suffixes)", file_name(&file));
    Some((values, set))
}

/// The history table a Flyway project's settings name for the scripts of
/// `dir` (`flyway.table` and `flyway.defaultSchema` or the first of
/// `flyway.schemas` in its module's `flyway.conf`; Spring's
/// `spring.flyway.table` and `default-schema` or `schemas`), with where it
/// is named; `None` where they name none (Flyway's default).
pub(super) fn history(dir: &Path) -> Option<super::HistoryTable> {
    let module = dir.ancestors().skip(1).take(8).find(|d| is_module(d))?;
    for conf in ["flyway.conf", "conf/flyway.conf"] {
        let file = module.join(conf);
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Some((name, line)) = property(&text, "flyway.table") else { continue };
        let schema = property(&text, "flyway.defaultSchema")
            .or_else(|| property(&text, "flyway.schemas"))
            .and_then(|(v, _)| items(&v).into_iter().next());
        let set_in = format!("{}:{line} (flyway.table)", file_name(&file));
        return Some(super::HistoryTable { schema, name, set_in: Some(set_in) });
    }
    let (names, file, line) = spring_value(module, &["spring", "flyway", "table"])?;
    let name = names.into_iter().next()?;
    let schema = spring_value(module, &["spring", "flyway", "default-schema"])
        .or_else(|| spring_value(module, &["spring", "flyway", "schemas"]))
        .and_then(|(v, _, _)| v.into_iter().next());
    let set_in = format!("{}:{line} (spring.flyway.table)", file_name(&file));
    Some(super::HistoryTable { schema, name, set_in: Some(set_in) })
}

/// `dir`, or its vendor folder for PostgreSQL (see [`flyway::vendor_folder`]),
/// with what the place says of it.
fn for_postgresql(dir: PathBuf, why: String) -> Place {
    match flyway::vendor_folder(&dir) {
        Some(vendor) => {
            let why = format!("{why}, its folder for PostgreSQL beside other databases' folders");
            Place { dir: vendor, layout: Some(Layout::Flyway), why }
        }
        None => Place { dir, layout: Some(Layout::Flyway), why },
    }
}

/// The folder a location of `module` is, or `None` for one that is no
/// folder (a cloud store).
fn folder_of(module: &Path, location: &str) -> Option<PathBuf> {
    let resources = module.join("src/main/resources");
    if let Some(path) = location.strip_prefix("filesystem:") {
        return Some(module.join(path));
    }
    if let Some(path) = location.strip_prefix("classpath:") {
        return Some(resources.join(path.trim_start_matches('/')));
    }
    if location.contains(':') {
        return None;
    }
    // No prefix means the classpath to Flyway; the CLI's users often mean
    // a folder beside the config.
    let classpath = resources.join(location.trim_start_matches('/'));
    Some(if classpath.is_dir() || !module.join(location).is_dir() {
        classpath
    } else {
        module.join(location)
    })
}

/// Whether `dir` or a folder in it holds Flyway scripts (Flyway reads a
/// location with its subfolders), named with one of `suffixes` where the
/// module's settings give them.
fn scripts_under(dir: &Path, suffixes: Option<&[String]>) -> bool {
    let script = |p: &PathBuf| flyway::is_script_name_with(file_name(p), suffixes);
    let here = |d: &Path| entries(d).is_ok_and(|es| es.iter().any(script));
    here(dir) || entries(dir).is_ok_and(|es| es.iter().any(|d| d.is_dir() && here(d)))
}

/// Whether Flyway could be run from `dir` as a module of the project.
fn is_module(dir: &Path) -> bool {
    file_name(dir) != "conf"
        && (dir.join("src/main/resources").is_dir()
            || dir.join("flyway.conf").is_file()
            || dir.join("conf/flyway.conf").is_file())
}

/// The places where Flyway keeps scripts for `root` and the modules among
/// `below` (folders under it): each named location that holds scripts,
/// else the module's default place when it holds them. A named location
/// that does not exist is an error at its setting.
pub(super) fn places(root: &Path, below: &[PathBuf]) -> Result<Vec<Place>, SourceError> {
    let mut out = Vec::new();
    let modules = std::iter::once(root).chain(below.iter().map(PathBuf::as_path));
    for module in modules.filter(|m| *m == root || is_module(m)) {
        let named = named_locations(module);
        let suffixes = module_suffixes(module).map(|(list, _)| list);
        let suffixes = suffixes.as_deref();
        for location in &named {
            let Some(dir) = folder_of(module, &location.text) else { continue };
            if !dir.is_dir() {
                return Err(SourceError::NamedMissing {
                    setting: location.file.clone(),
                    line: location.line,
                    key: location.key.to_string(),
                    dir,
                    tool: Layout::Flyway,
                });
            }
            if scripts_under(&dir, suffixes) {
                let why =
                    format!("{}:{} ({})", file_name(&location.file), location.line, location.key);
                out.push(for_postgresql(dir, why));
            }
        }
        if !named.is_empty() {
            continue;
        }
        let mut defaults = vec!["src/main/resources/db/migration"];
        if module == root {
            defaults.extend(["sql", "db/migration"]);
        }
        for default in defaults {
            let dir = module.join(default);
            if scripts_under(&dir, suffixes) {
                out.push(for_postgresql(dir, format!("Flyway's default place ({default})")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::source::write_under as write;

    fn found(root: &Path) -> Vec<(String, String)> {
        let below = super::super::nested::folders(root);
        let mut out: Vec<(String, String)> = places(root, &below)
            .unwrap()
            .into_iter()
            .map(|p| (p.dir.strip_prefix(root).unwrap().display().to_string(), p.why))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_properties_value_is_read_with_its_line_and_continuations() {
        let text = "# flyway.locations=filesystem:old\nflyway.url=jdbc:x\n\
                    flyway.locations = filesystem:sql/a,\\\n    classpath:db/{vendor}\n";
        let (value, line) = property(text, "flyway.locations").unwrap();
        assert_eq!(line, 3);
        assert_eq!(items(&value), ["filesystem:sql/a", "classpath:db/postgresql"]);
        assert_eq!(property("flyway.locationsX=a\n", "flyway.locations"), None);
        assert_eq!(property("flyway.locations a\n", "flyway.locations"), Some(("a".into(), 1)));
    }

    #[test]
    fn springs_yaml_locations_are_read_nested_dotted_or_listed() {
        let nested = "server:\n  port: 8080\nspring:\n  datasource:\n    url: x\n  flyway:\n    \
                      enabled: true\n    locations: classpath:db/changes/{vendor}, filesystem:sql\n";
        assert_eq!(
            yaml_locations(nested),
            Some((vec!["classpath:db/changes/postgresql".into(), "filesystem:sql".into()], 8))
        );
        let dotted = "spring:\n  flyway.locations: [\"classpath:db/a\"]\n";
        assert_eq!(yaml_locations(dotted), Some((vec!["classpath:db/a".into()], 2)));
        let listed = "spring.flyway:\n  locations:\n    - classpath:db/a\n    # old\n    - classpath:db/b\n  baseline-on-migrate: true\n";
        assert_eq!(
            yaml_locations(listed),
            Some((vec!["classpath:db/a".into(), "classpath:db/b".into()], 2))
        );
        let other = "app:\n  flyway:\n    locations: classpath:nope\n";
        assert_eq!(yaml_locations(other), None, "only spring's key counts");
    }

    #[test]
    fn every_module_is_read_where_flyway_looks_in_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // A module on Flyway's default, its scripts in the vendor folder.
        write(r, "billing/pom.xml", "<project/>");
        write(r, "billing/src/main/resources/db/migration/postgresql/V1__a.sql", "SELECT 1;");
        // A module whose flyway.conf names a classpath location.
        write(r, "orders/flyway.conf", "flyway.locations=classpath:db/orders/{vendor}\n");
        write(r, "orders/src/main/resources/db/orders/postgresql/V1__a.sql", "SELECT 1;");
        write(r, "orders/src/main/resources/db/migration/V9__ignored.sql", "SELECT 1;");
        // The CLI's layout: conf/flyway.conf naming a folder.
        write(r, "cli/conf/flyway.conf", "flyway.locations=filesystem:scripts\n");
        write(r, "cli/scripts/V1__a.sql", "SELECT 1;");
        // Spring's YAML.
        write(
            r,
            "api/src/main/resources/application.yml",
            "spring:\n  flyway:\n    locations:\n      - classpath:db/api\n",
        );
        write(r, "api/src/main/resources/db/api/V1__a.sql", "SELECT 1;");
        assert_eq!(
            found(r),
            [
                (
                    "api/src/main/resources/db/api".into(),
                    "application.yml:3 (spring.flyway.locations)".into()
                ),
                (
                    "billing/src/main/resources/db/migration".into(),
                    "Flyway's default place (src/main/resources/db/migration)".into()
                ),
                ("cli/scripts".into(), "flyway.conf:1 (flyway.locations)".into()),
                (
                    "orders/src/main/resources/db/orders/postgresql".into(),
                    "flyway.conf:1 (flyway.locations)".into()
                ),
            ],
            "a module that names its locations is not read in the default place"
        );
    }

    #[test]
    fn vendor_folders_give_postgresqls_and_a_defaults_file_names_the_table() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "app/pom.xml", "<project/>");
        for vendor in ["h2", "mysql", "postgresql"] {
            write(
                r,
                &format!("app/src/main/resources/db/migration/{vendor}/V1.0.1__a.sql"),
                "SELECT 1;",
            );
        }
        write(
            r,
            "app/src/main/resources/app-defaults.properties",
            "spring.flyway.table=schema_version\nspring.flyway.schemas=core,extra\n",
        );
        let found = found(r);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "app/src/main/resources/db/migration/postgresql");
        assert!(found[0].1.contains("its folder for PostgreSQL"), "{found:?}");
        let t = history(&r.join("app/src/main/resources/db/migration/postgresql")).unwrap();
        assert_eq!((t.schema.as_deref(), t.name.as_str()), (Some("core"), "schema_version"));
        assert_eq!(t.set_in.as_deref(), Some("app-defaults.properties:1 (spring.flyway.table)"));
        // Scripts of its own beside the folders: read as Flyway reads it.
        write(r, "app/src/main/resources/db/migration/V0__base.sql", "SELECT 1;");
        assert_eq!(flyway::vendor_folder(&r.join("app/src/main/resources/db/migration")), None);
    }

    #[test]
    fn the_suffixes_springs_settings_give_choose_the_scripts() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "app/pom.xml", "<project/>");
        let res = "app/src/main/resources";
        write(
            r,
            &format!("{res}/application.yml"),
            "spring:\n  flyway:\n    sql-migration-suffixes: .pg.sql\n",
        );
        for (name, body) in [
            ("V1__init.pg.sql", "CREATE TABLE a (id int);"),
            ("V1__init.h2.sql", "CREATE MEMORY TABLE a (id int);"),
            ("V2__more.pg.sql", "SELECT 1;"),
        ] {
            write(r, &format!("{res}/db/migration/{name}"), body);
        }
        let dir = r.join(format!("{res}/db/migration"));
        let set = suffixes(&dir);
        assert_eq!(set.as_ref().map(|s| s.0.clone()), Some(vec![".pg.sql".to_string()]));
        assert_eq!(
            set.as_ref().map(|s| s.1.as_str()),
            Some("application.yml:3 (spring.flyway.sql-migration-suffixes)")
        );
        let found = flyway::discover(&dir, set).unwrap();
        let names: Vec<(String, String)> =
            found.migrations.iter().map(|m| (m.version.clone(), m.name.clone())).collect();
        assert_eq!(
            names,
            [("1".to_string(), "init".to_string()), ("2".to_string(), "more".to_string())]
        );
        assert!(found
            .ignored
            .iter()
            .any(|i| i.path.ends_with("V1__init.h2.sql") && i.why.contains(".pg.sql")));
        // Without the setting the two files of version 1 are a duplicate.
        assert!(flyway::discover(&dir, None).is_err());
    }

    /// Regression: `sql-migration-suffixes=${spring.jpa.database}.sql` was
    /// taken literally and `POSTGRESQL/` was no vendor folder, so such a
    /// Spring module had "no migrations found".
    #[test]
    fn spring_placeholders_fill_the_suffixes_and_vendor_folders_may_be_upper_case() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "app/pom.xml", "<project/>");
        let res = "app/src/main/resources";
        write(
            r,
            &format!("{res}/application.properties"),
            "spring.jpa.database=POSTGRESQL\n\
             spring.flyway.sql-migration-suffixes=${spring.jpa.database}.sql\n",
        );
        for vendor in ["H2", "POSTGRESQL"] {
            write(
                r,
                &format!("{res}/db/migration/{vendor}/V1_0_1__init__{vendor}.sql"),
                "SELECT 1;",
            );
        }
        let found = found(r);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, format!("{res}/db/migration/POSTGRESQL"));
        let dir = r.join(format!("{res}/db/migration"));
        let set = suffixes(&dir);
        assert_eq!(set.as_ref().map(|s| s.0.clone()), Some(vec!["POSTGRESQL.sql".to_string()]));
        let read = flyway::discover(&dir, set).unwrap();
        let versions: Vec<&str> = read.migrations.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(versions, ["1.0.1"]);
        // A default where the setting is missing; none at all: no suffix.
        write(
            r,
            &format!("{res}/application.properties"),
            "spring.flyway.sql-migration-suffixes=${spring.jpa.database:POSTGRESQL}.sql\n",
        );
        assert_eq!(suffixes(&dir).map(|s| s.0), Some(vec!["POSTGRESQL.sql".to_string()]));
        write(
            r,
            &format!("{res}/application.properties"),
            "spring.flyway.sql-migration-suffixes=${spring.jpa.database}.sql\n",
        );
        assert_eq!(suffixes(&dir), None);
    }

    #[test]
    fn a_location_that_does_not_exist_is_an_error_at_its_setting() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "flyway.conf",
            "flyway.url=jdbc:postgresql://x\nflyway.locations=filesystem:sql/missing\n",
        );
        let err = places(r, &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("flyway.conf:2: flyway.locations names"), "{text}");
        assert!(text.contains("sql/missing"), "{text}");
        // A cloud location is no folder: passed over.
        write(r, "flyway.conf", "flyway.locations=s3:bucket/db\n");
        assert_eq!(places(r, &[]).unwrap(), []);
    }
}
