//! `backstop.toml`: the database, the migrations and their guards. Unknown
//! keys, wrong types and malformed TOML are errors naming file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The config file Backstop looks for in the working directory.
pub const DEFAULT_FILE: &str = "backstop.toml";

/// What is wrong with the configuration. All of these are usage errors (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found; create one with `backstop init` or pass --config")]
    Missing { path: PathBuf },
    #[error("could not read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
    #[error(
        "{path}:{line}: `${{{var}}}` in database.url is not set in the environment; \
         export {var} or pass --database-url"
    )]
    MissingEnv { path: PathBuf, line: usize, var: String },
    #[error("{path}:{line}: unterminated `${{` in database.url; write `${{NAME}}`")]
    BadInterpolation { path: PathBuf, line: usize },
    #[error(
        "no database given; pass --database-url, set DATABASE_URL, or set [database] url in backstop.toml"
    )]
    NoDatabase,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    migrations: MigrationsSection,
    #[serde(default)]
    rehearse: RehearseSection,
    #[serde(default)]
    check: crate::check::CheckSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<toml::Spanned<String>>,
}

/// `[migrations]`: where the migrations are and how they are guarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationsSection {
    /// The migrations folder, relative to the config file.
    pub dir: PathBuf,
    /// Tables that no migration or rollback may drop, truncate or delete rows from.
    pub protected_tables: Vec<String>,
    /// `SET LOCAL lock_timeout` for every migration transaction.
    #[serde(deserialize_with = "duration")]
    pub lock_timeout: Duration,
    /// `SET LOCAL statement_timeout` for every migration transaction.
    #[serde(deserialize_with = "duration")]
    pub statement_timeout: Duration,
    /// How long to wait for another run's migration lock.
    #[serde(deserialize_with = "duration")]
    pub lock_wait: Duration,
    /// How often a migration that hit `lock_timeout` is retried (with backoff).
    pub lock_retries: u32,
}

impl Default for MigrationsSection {
    fn default() -> Self {
        MigrationsSection {
            dir: PathBuf::from("migrations"),
            protected_tables: Vec::new(),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15 * 60),
            lock_wait: Duration::from_secs(10 * 60),
            lock_retries: 3,
        }
    }
}

/// `[rehearse]`: the rehearsal gate and where reports go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RehearseSection {
    /// `migrate` refuses migrations without a recent passing rehearsal.
    pub required: bool,
    /// How recent that rehearsal must be.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    /// Whether a schema-only rehearsal satisfies the gate.
    pub accept_schema_only: bool,
    /// Where reports are written, relative to the config file.
    pub report_dir: PathBuf,
}

impl Default for RehearseSection {
    fn default() -> Self {
        RehearseSection {
            required: false,
            max_age: Duration::from_secs(7 * 24 * 3600),
            accept_schema_only: false,
            report_dir: PathBuf::from("rehearsals"),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}); write it like \"5s\", \"15min\" or \"1h\""
        ))
    })
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub path: Option<PathBuf>,
    /// `[database] url` as written, with its line, before interpolation.
    database_url: Option<(String, usize)>,
    pub migrations: MigrationsSection,
    pub rehearse: RehearseSection,
    /// `[check]`: the risk check and the migrate gate built on it.
    pub check: crate::check::CheckSection,
}

impl Config {
    /// Loads `path`, or `./backstop.toml` when none is given. Without an
    /// explicit path a missing file means defaults; with one it is an error.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Config {
                path: None,
                database_url: None,
                migrations: Default::default(),
                rehearse: Default::default(),
                check: Default::default(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::Missing { path })
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses config text; `path` is used for messages and relative dirs.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(text, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let database_url = file.database.url.map(|url| {
            let line = line_col(text, url.span().start).0;
            (url.into_inner(), line)
        });
        let mut migrations = file.migrations;
        let mut rehearse = file.rehearse;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            for dir in [&mut migrations.dir, &mut rehearse.report_dir] {
                if dir.is_relative() {
                    *dir = parent.join(&*dir);
                }
            }
        }
        Ok(Config {
            path: Some(path.to_path_buf()),
            database_url,
            migrations,
            rehearse,
            check: file.check,
        })
    }

    /// The database to use: `override_url` (from `--database-url` or
    /// `DATABASE_URL`) wins over the config's `[database] url`, whose
    /// `${VAR}`s are filled in from the environment.
    pub fn database_url(&self, override_url: Option<&str>) -> Result<String, ConfigError> {
        if let Some(url) = override_url.filter(|u| !u.is_empty()) {
            return Ok(url.to_string());
        }
        let Some((raw, line)) = &self.database_url else {
            return Err(ConfigError::NoDatabase);
        };
        let path = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        interpolate(raw, |var| std::env::var(var).ok()).map_err(|e| match e {
            Interpolation::Missing(var) => ConfigError::MissingEnv { path, line: *line, var },
            Interpolation::Unterminated => ConfigError::BadInterpolation { path, line: *line },
        })
    }
}

enum Interpolation {
    Missing(String),
    Unterminated,
}

/// Replaces `${NAME}` with the variable's value; `$$` is a literal `$`.
fn interpolate(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Interpolation> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or(Interpolation::Unterminated)?;
            let var = &tail[..end];
            let value = lookup(var).ok_or_else(|| Interpolation::Missing(var.to_string()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
protected_tables = ["users", "ai_usage_tracking", "usage_alerts"]
lock_timeout = "5s"
statement_timeout = "15min"
"#;

    #[test]
    fn accepts_the_documented_example() {
        let cfg = Config::parse(ISSUE_EXAMPLE, Path::new("conf/backstop.toml")).unwrap();
        assert_eq!(cfg.migrations.dir, PathBuf::from("conf/migrations"));
        assert_eq!(cfg.migrations.protected_tables.len(), 3);
        assert_eq!(cfg.migrations.lock_timeout, Duration::from_secs(5));
        assert_eq!(cfg.migrations.statement_timeout, Duration::from_secs(900));
        assert_eq!(cfg.database_url(Some("postgres://x/y")).unwrap(), "postgres://x/y");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "[migrations]\ndir = \"m\"\nlock_timout = \"5s\"\n";
        let err = Config::parse(text, Path::new("backstop.toml")).unwrap_err().to_string();
        assert!(err.starts_with("backstop.toml:3:1:"), "{err}");
        assert!(err.contains("lock_timout"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_duration_are_located() {
        let err =
            Config::parse("[migrations]\nprotected_tables = \"users\"\n", Path::new("b.toml"))
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("b.toml:2:"), "{err}");
        let err =
            Config::parse("[migrations]\nlock_timeout = \"5 parsecs\"\n", Path::new("b.toml"))
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("b.toml:2:") && err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn malformed_toml_is_located() {
        let err = Config::parse("[database\nurl = 1\n", Path::new("b.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { line: 1, .. }), "{err}");
    }

    #[test]
    fn interpolation_fills_variables_and_names_missing_ones() {
        let env = |v: &str| (v == "PW").then(|| "s3cret".to_string());
        assert!(
            matches!(interpolate("postgres://u:${PW}@h/d", env), Ok(s) if s == "postgres://u:s3cret@h/d")
        );
        assert!(matches!(interpolate("a$$b", env), Ok(s) if s == "a$b"));
        assert!(
            matches!(interpolate("${NOPE}", env), Err(Interpolation::Missing(v)) if v == "NOPE")
        );
        assert!(matches!(interpolate("${NOPE", env), Err(Interpolation::Unterminated)));
    }

    #[test]
    fn missing_env_names_the_line() {
        let cfg = Config::parse(
            "[database]\nurl = \"${BACKSTOP_TEST_SURELY_UNSET}\"\n",
            Path::new("backstop.toml"),
        )
        .unwrap();
        let err = cfg.database_url(None).unwrap_err().to_string();
        assert!(err.starts_with("backstop.toml:2:"), "{err}");
        assert!(err.contains("BACKSTOP_TEST_SURELY_UNSET"), "{err}");
    }
}
