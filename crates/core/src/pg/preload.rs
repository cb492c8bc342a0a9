//! What a server loads when it starts (`shared_preload_libraries`) and the
//! settings of those libraries its configuration sets, read from a target
//! and carried into the throwaway cluster of its copy: a history that
//! says `create extension pg_cron` fails on a server that did not preload
//! it ("unrecognized configuration parameter cron.database_name"), and no
//! statement of the history can change that. A setting that names the
//! database a library works in (`cron.database_name`) names the copy's.
//! A scheduled job never runs in a copy (`cron.max_running_jobs = 0`): a
//! copy never reaches outside, and never does production's work twice.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use postgres::GenericClient;

/// The libraries a server preloads and the settings of theirs it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preload {
    /// As `shared_preload_libraries` lists them (`pg_cron`, `$libdir/x`).
    pub libraries: Vec<String>,
    /// `(name, value)` of the settings of those libraries the server's
    /// configuration sets (`cron.timezone`), as `pg_settings` shows them.
    pub settings: Vec<(String, String)>,
}

/// pg_cron: the one library here that works in one database of a server.
const CRON: &str = "pg_cron";

/// Extensions whose library must be preloaded before `CREATE EXTENSION`
/// works, named as their library is.
const NEEDS_PRELOAD: &[&str] = &["pg_cron", "pgaudit", "timescaledb"];

/// The file of a cluster's data directory that holds its preload.
pub(super) const CONF_FILE: &str = "backstop_preload.conf";

impl Preload {
    /// A preload of `libraries` with no settings of theirs (a test's
    /// target server, a cluster that must load pg_cron).
    pub fn of(libraries: &[&str]) -> Preload {
        Preload {
            libraries: libraries.iter().map(|l| l.to_string()).collect(),
            ..Preload::default()
        }
    }

    /// What the server `client` is on preloads. A role that may not read
    /// `shared_preload_libraries` (it is for superusers and members of
    /// `pg_read_all_settings`) gets the libraries whose settings it sees.
    pub fn read(client: &mut impl GenericClient) -> Result<Preload, postgres::Error> {
        let listed = match client
            .query_one("select current_setting('shared_preload_libraries')", &[])
        {
            Ok(row) => Some(split_list(&row.get::<_, String>(0))),
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => None,
            Err(e) => return Err(e),
        };
        let rows = client.query(
            "select name::text, setting, source::text from pg_settings
              where name like '%.%' order by name",
            &[],
        )?;
        let shown: Vec<(String, String, String)> =
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        let mut libraries = match listed {
            Some(l) => l,
            None => seen_libraries(&shown),
        };
        // A role that may not read the list still sees the extensions the
        // database holds: those that need their library preloaded are.
        let held: Vec<String> = client
            .query("select extname::text from pg_extension", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for library in Preload::for_extensions(held.iter().map(String::as_str)).libraries {
            if !libraries.iter().any(|l| bare(l) == library) {
                libraries.push(library);
            }
        }
        // Only what the server's own configuration sets: a database's or a
        // role's settings travel with the database (`copies::globals`).
        let server = ["configuration file", "command line", "environment variable"];
        let settings = shown
            .into_iter()
            .filter(|(name, _, source)| {
                server.contains(&source.as_str()) && libraries.iter().any(|l| owns(l, name))
            })
            .map(|(name, value, _)| (name, value))
            .collect();
        Ok(Preload { libraries, settings })
    }

    /// What a server holding the extensions `names` must preload for them
    /// to be created at all (`pg_cron`, `timescaledb` and `pgaudit` refuse
    /// a `CREATE EXTENSION` otherwise): the preload a backup's restore
    /// needs, read from the extensions it holds where the source's
    /// settings were not read or could not be.
    pub fn for_extensions<'n>(names: impl IntoIterator<Item = &'n str>) -> Preload {
        let mut libraries: Vec<String> =
            names.into_iter().filter(|n| NEEDS_PRELOAD.contains(n)).map(str::to_string).collect();
        libraries.sort();
        libraries.dedup();
        Preload { libraries, settings: Vec::new() }
    }

    /// Whether the server preloads nothing: its copies need no settings.
    pub fn is_empty(&self) -> bool {
        self.libraries.is_empty()
    }

    /// The settings that name the database a library works in
    /// (`cron.database_name`): a cluster holding a copy points them at it.
    pub fn names_database(&self) -> bool {
        self.libraries.iter().any(|l| bare(l) == CRON)
            || self.settings.iter().any(|(n, _)| n.ends_with(".database_name"))
    }

    /// The extension whose `CREATE EXTENSION` works only in the database
    /// the server's settings name, and that database: `pg_cron` and
    /// `cron.database_name` (`postgres` where it is not set).
    pub fn bound_extension(&self) -> Option<(&'static str, String)> {
        if !self.libraries.iter().any(|l| bare(l) == CRON) {
            return None;
        }
        let db = self.settings.iter().find(|(n, _)| n == "cron.database_name");
        Some((CRON, db.map_or_else(|| "postgres".to_string(), |(_, v)| v.clone())))
    }

    /// The lines of `postgresql.conf` that give a throwaway cluster this
    /// preload, for its database `database`.
    pub fn conf(&self, database: &str) -> String {
        let mut text = format!(
            "# what the copied server preloads (backstop)\nshared_preload_libraries = {}\n",
            literal(&self.libraries.join(","))
        );
        let mut set: Vec<(String, String)> = self
            .settings
            .iter()
            .filter(|(n, _)| n != "cron.max_running_jobs")
            .map(|(n, v)| match n.ends_with(".database_name") {
                true => (n.clone(), database.to_string()),
                false => (n.clone(), v.clone()),
            })
            .collect();
        if self.libraries.iter().any(|l| bare(l) == CRON) {
            if !set.iter().any(|(n, _)| n == "cron.database_name") {
                set.push(("cron.database_name".into(), database.to_string()));
            }
            // Jobs copied with the database, or scheduled by the history,
            // never run in a copy.
            set.push(("cron.max_running_jobs".into(), "0".into()));
        }
        for (name, value) in set {
            text.push_str(&format!("{name} = {}\n", literal(&value)));
        }
        text
    }

    /// The libraries this preload names that the server binaries in
    /// `bin_dir` cannot load (their file is not in its library folder).
    pub fn missing(&self, bin_dir: &Path) -> Vec<String> {
        let libdir = library_dir(bin_dir);
        self.libraries
            .iter()
            .filter(|l| {
                let name = l.strip_prefix("$libdir/").unwrap_or(l);
                let candidates: Vec<PathBuf> = if Path::new(name).is_absolute() {
                    vec![PathBuf::from(name), PathBuf::from(format!("{name}.so"))]
                } else {
                    vec![libdir.join(name), libdir.join(format!("{name}.so"))]
                };
                !candidates.iter().any(|c| c.is_file())
            })
            .cloned()
            .collect()
    }

    /// How to provide `missing` libraries for PostgreSQL `major`: the
    /// Debian package each usually comes in, or the file a library named
    /// by its path is.
    pub fn how_to_provide(missing: &[String], major: u32) -> String {
        let (paths, names): (Vec<&String>, Vec<&String>) =
            missing.iter().partition(|l| Path::new(l.as_str()).is_absolute());
        let packages: Vec<String> = names
            .iter()
            .map(|l| {
                let name = bare(l);
                let short = name.strip_prefix("pg_").unwrap_or(name).replace('_', "-");
                format!("postgresql-{major}-{short}")
            })
            .collect();
        let mut how = Vec::new();
        if !packages.is_empty() {
            how.push(format!("Debian: apt-get install {}", packages.join(" ")));
        }
        for p in paths {
            how.push(format!("the file {p}.so, where the target's server has it"));
        }
        how.join("; ")
    }
}

/// A library's name without `$libdir/`, a folder or `.so`.
fn bare(library: &str) -> &str {
    let name = library.rsplit('/').next().unwrap_or(library);
    name.strip_suffix(".so").unwrap_or(name)
}

/// Whether setting `name` is one of `library`'s: its prefix is the
/// library's name, with or without `pg_` (`cron.` of pg_cron) or its
/// underscores (`pgtle.` of pg_tle).
fn owns(library: &str, name: &str) -> bool {
    let Some((prefix, _)) = name.split_once('.') else { return false };
    let lib = bare(library);
    prefix == lib || Some(prefix) == lib.strip_prefix("pg_") || prefix == lib.replace('_', "")
}

/// The libraries whose settings a role sees, where it may not read
/// `shared_preload_libraries`: a preloaded library defines its settings
/// at the server's start, with their real context.
fn seen_libraries(shown: &[(String, String, String)]) -> Vec<String> {
    let known = [CRON, "pg_net", "pgaudit", "pg_stat_statements", "auto_explain", "pgsodium"];
    known
        .into_iter()
        .filter(|lib| shown.iter().any(|(n, _, _)| owns(lib, n)))
        .map(str::to_string)
        .collect()
}

/// The items of a list setting (`a, "b c"`).
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `s` as a `postgresql.conf` string.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The folder the server binaries in `bin_dir` load libraries from:
/// `pg_config --pkglibdir` beside them, else `../lib/postgresql` or
/// `../lib`.
fn library_dir(bin_dir: &Path) -> PathBuf {
    let pg_config = bin_dir.join("pg_config");
    if pg_config.is_file() {
        let out = Command::new(&pg_config).arg("--pkglibdir").stderr(Stdio::null()).output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.is_dir() {
                return dir;
            }
        }
    }
    let up = bin_dir.parent().unwrap_or(bin_dir).join("lib");
    match up.join("postgresql") {
        nested if nested.is_dir() => nested,
        _ => up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_gets_the_libraries_its_database_and_no_running_jobs() {
        let preload = Preload {
            libraries: vec!["pg_stat_statements".into(), "pg_cron".into()],
            settings: vec![
                ("cron.database_name".into(), "postgres".into()),
                ("cron.timezone".into(), "Europe/Berlin".into()),
                ("cron.max_running_jobs".into(), "32".into()),
            ],
        };
        let conf = preload.conf("copy_1");
        assert!(conf.contains("shared_preload_libraries = 'pg_stat_statements,pg_cron'"), "{conf}");
        assert!(conf.contains("cron.database_name = 'copy_1'"), "{conf}");
        assert!(conf.contains("cron.timezone = 'Europe/Berlin'"), "{conf}");
        assert!(conf.contains("cron.max_running_jobs = '0'") && !conf.contains("'32'"), "{conf}");
        assert_eq!(preload.bound_extension(), Some(("pg_cron", "postgres".to_string())));
        let quoted = Preload::of(&["pg_cron"]).conf("it's");
        assert!(quoted.contains("cron.database_name = 'it''s'"), "{quoted}");
    }

    #[test]
    fn settings_belong_to_the_library_by_their_prefix() {
        assert!(owns("pg_cron", "cron.database_name"));
        assert!(owns("$libdir/pg_cron", "cron.host"));
        assert!(owns("pg_stat_statements", "pg_stat_statements.max"));
        assert!(owns("pg_tle", "pgtle.enable_feature_mode"));
        assert!(!owns("pg_cron", "app.settings.jwt_secret"));
        assert_eq!(split_list("pg_cron, \"auto_explain\""), ["pg_cron", "auto_explain"]);
    }

    #[test]
    fn a_library_missing_locally_is_named_with_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/pg_stat_statements.so"), "").unwrap();
        let preload = Preload::of(&["pg_stat_statements", "pg_cron", "$libdir/plpgsql_check"]);
        let missing = preload.missing(&bin);
        assert_eq!(missing, ["pg_cron", "$libdir/plpgsql_check"]);
        assert_eq!(
            Preload::how_to_provide(&missing, 15),
            "Debian: apt-get install postgresql-15-cron postgresql-15-plpgsql-check"
        );
        assert_eq!(
            Preload::how_to_provide(&["/opt/lib/x".to_string()], 15),
            "the file /opt/lib/x.so, where the target's server has it"
        );
    }
}
