//! `backstop.toml`: the database, the migrations and their guards. Unknown
//! keys, wrong types and malformed TOML are errors naming file, line and key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backup::BackupSection;
use crate::freeze::FreezeSection;
use crate::migrate::MigrationsSection;
use crate::rehearse::RehearseSection;

/// The config file Backstop looks for in the working directory.
pub const DEFAULT_FILE: &str = "backstop.toml";

/// The folder, beside the config file, that holds what Backstop writes
/// for a project by default: backups, exports, forensics, rehearsal
/// reports, proofs. None of it belongs in version control: it ignores
/// itself (`pg::export::ignored`), and `backstop init` adds it to the
/// project's `.gitignore` too.
pub use crate::pg::export::LOCAL_DIR;

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

impl From<crate::kit::text::Located> for ConfigError {
    fn from(l: crate::kit::text::Located) -> Self {
        ConfigError::Invalid { path: l.path, line: l.line, column: l.column, message: l.message }
    }
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
    rollback: crate::migrate::RollbackSection,
    #[serde(default)]
    backup: BackupSection,
    #[serde(default)]
    freeze: FreezeSection,
    #[serde(default)]
    check: crate::check::CheckSection,
    #[serde(default)]
    verify: crate::verify::config::RawSection,
    #[serde(default)]
    flags: Vec<crate::flags::FlagDecl>,
    #[serde(default)]
    serve: ServeSection,
    #[serde(default)]
    triggers: Vec<crate::decide::config::RawTrigger>,
    #[serde(default)]
    decide: crate::decide::DecideSection,
    #[serde(default)]
    hooks: crate::respond::HooksSection,
    #[serde(default)]
    notify: crate::incident::NotifySection,
    #[serde(default)]
    compare: crate::compare::CompareSection,
    #[serde(default)]
    postgres: crate::pg::bins::PostgresSection,
    #[serde(default)]
    drill: crate::drill::DrillSection,
    #[serde(default)]
    rollout: crate::rollout::config::RawSection,
    #[serde(default)]
    targets: Vec<crate::rollout::config::RawTarget>,
    #[serde(default)]
    waves: Vec<crate::rollout::config::RawWave>,
}

/// `[serve]`: `backstop flags serve`'s address and who may write.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSection {
    /// Where to listen.
    pub listen: String,
    /// The bearer token writes need (`${ENV}` is filled in); without one
    /// (and without `tokens`), nothing can be written through the server.
    pub token: Option<String>,
    /// Named tokens (`{ alice = "${ALICE_TOKEN}" }`): a change made with one
    /// is recorded as made by its name.
    pub tokens: std::collections::BTreeMap<String, String>,
    /// Connections open at once; when all are taken, a new client takes
    /// the place of the one that has waited longest for a request. Each
    /// takes a file descriptor (the server raises its own limit as far as
    /// allowed).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (on a new
    /// connection: to send any request).
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub header_timeout: std::time::Duration,
    /// Whether reads need the token too.
    pub private: bool,
    /// Evaluations a second before answers are 429 with Retry-After.
    pub max_evaluations_per_second: u32,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            listen: "127.0.0.1:8750".into(),
            token: None,
            tokens: Default::default(),
            private: false,
            max_evaluations_per_second: 20_000,
            max_connections: 1000,
            header_timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<toml::Spanned<String>>,
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
    /// `[rollback]`: what an undo keeps before it removes data.
    pub rollback: crate::migrate::RollbackSection,
    pub backup: BackupSection,
    pub freeze: FreezeSection,
    /// `[check]`: the risk check and the migrate gate built on it.
    pub check: crate::check::CheckSection,
    /// `[verify]`: the verification suite.
    pub verify: crate::verify::VerifySection,
    /// `[[flags]]`: the release flags.
    pub flags: Vec<crate::flags::FlagDecl>,
    /// `[serve]`.
    pub serve: ServeSection,
    /// `[[triggers]]`: what `watch` and `decide` sample and act on.
    pub triggers: Vec<crate::decide::Trigger>,
    /// `[decide]`.
    pub decide: crate::decide::DecideSection,
    /// `[hooks]`: the commands rollback methods run at their steps.
    pub hooks: crate::respond::HooksSection,
    /// `[notify]`: where incident texts go and the templates they use.
    pub notify: crate::incident::NotifySection,
    /// `[compare]`: what makes a comparison of two databases fail.
    pub compare: crate::compare::CompareSection,
    /// `[postgres]`: where PostgreSQL's programs are, beside the usual places.
    pub postgres: crate::pg::bins::PostgresSection,
    /// `[drill]`: the runbook's targets a drill is held to, and how often.
    pub drill: crate::drill::DrillSection,
    /// `[rollout]`, `[[targets]]` and `[[waves]]`: the databases a rollout
    /// carries the migrations to, and in which waves.
    pub rollout: crate::rollout::RolloutConfig,
}

impl Config {
    /// What the configuration turns off that is on by default, for the
    /// commands to say before they run.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in [
            ("lock_timeout", self.migrations.lock_timeout),
            ("statement_timeout", self.migrations.statement_timeout),
        ] {
            if value.is_zero() {
                out.push(format!(
                    "[migrations] {name} is \"off\": a migration may wait or run without limit"
                ));
            }
        }
        out
    }
}

impl Config {
    /// Loads `path`, or `./backstop.toml` when none is given. Without an
    /// explicit path a missing file means defaults; with one it is an error.
    /// The loaded `[postgres] bin_dirs` join every later search for
    /// PostgreSQL's programs ([`crate::pg::bins`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Config::read(path)?;
        crate::pg::bins::set_config_dirs(config.postgres.bin_dirs.clone());
        Ok(config)
    }

    fn read(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            // No file: every section's defaults, as an empty file gives them.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config { path: None, ..Config::parse("", &path)? })
            }
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
            let (line, column) = crate::kit::text::line_col(text, offset);
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let database_url = file.database.url.map(|url| {
            let line = crate::kit::text::line_col(text, url.span().start).0;
            (url.into_inner(), line)
        });
        let mut migrations = file.migrations;
        // Without `dir`, the migrations are found from the project's root.
        migrations.dir_given = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("migrations").and_then(|m| m.get("dir")).map(|_| ()))
            .is_some();
        let mut rehearse = file.rehearse;
        let mut backup = file.backup;
        let mut rollback = file.rollback;
        let mut postgres = file.postgres;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Some(c) = backup.config.as_mut().filter(|c| c.is_relative()) {
                *c = parent.join(&*c);
            }
            for dir in [
                &mut migrations.dir,
                &mut rehearse.report_dir,
                &mut rehearse.proofs,
                &mut backup.dir,
                &mut rollback.dir,
            ]
            .into_iter()
            .chain(postgres.bin_dirs.iter_mut())
            {
                if dir.is_relative() {
                    *dir = parent.join(&*dir);
                }
            }
        }
        let verify = crate::verify::VerifySection::from_raw(file.verify, text, path)?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: text.lines().position(|l| l.trim() == "[[flags]]").map_or(1, |i| i + 1),
            column: 1,
            message,
        };
        for (i, d) in file.flags.iter().enumerate() {
            d.check().map_err(invalid)?;
            if file.flags[..i].iter().any(|e| e.key == d.key) {
                return Err(invalid(format!("flag {} is declared twice", d.key)));
            }
        }
        let triggers = triggers(file.triggers, text, path)?;
        let rollout = crate::rollout::config::Raw {
            section: file.rollout,
            targets: file.targets,
            waves: file.waves,
        };
        let rollout = crate::rollout::RolloutConfig::from_raw(rollout, text, path)?;
        let serve = file.serve;
        refuse_zeros(&backup, &serve, text, path)?;
        Ok(Config {
            path: Some(path.to_path_buf()),
            database_url,
            migrations,
            rehearse,
            rollback,
            backup,
            freeze: file.freeze,
            check: file.check,
            verify,
            flags: file.flags,
            serve,
            triggers,
            decide: file.decide,
            hooks: file.hooks,
            notify: crate::incident::NotifySection {
                templates: file.notify.templates.map(|t| match path.parent() {
                    Some(parent) if t.is_relative() => parent.join(t),
                    _ => t,
                }),
                ..file.notify
            },
            compare: file.compare,
            postgres,
            drill: file.drill,
            rollout,
        })
    }

    /// The guards of a rollback with down files: those of `[migrations]`,
    /// and a folder of its own under `[rollback] dir` where the values the
    /// downs remove are kept first (unless `export_dropped = false`).
    pub fn rollback_settings(&self) -> crate::migrate::Settings {
        let mut settings = crate::migrate::Settings::from(&self.migrations);
        if self.rollback.export_dropped {
            settings.keep = Some(crate::migrate::keep::run_folder(&self.rollback.dir));
        }
        settings
    }

    /// The risk check's settings: `[check]` with the guards of `[migrations]`.
    pub fn check_settings(&self) -> crate::check::Settings {
        let file = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        crate::check::Settings::new(&self.check, &self.migrations, file)
    }

    /// The `${ENV}` values of the `[verify]` http checks' headers (see
    /// [`crate::verify::VerifySection::resolve_headers`]).
    pub fn verify_headers(&self) -> Result<crate::verify::config::ResolvedHeaders, ConfigError> {
        let file = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        Ok(self.verify.resolve_headers(&file)?)
    }

    /// What the suite after a migrate or rollback is built from; `None`
    /// when `[verify] after_migrate` is off (no header is resolved then).
    pub fn after_plan(&self) -> Result<Option<crate::verify::AfterPlan>, ConfigError> {
        if !self.verify.after_migrate {
            return Ok(None);
        }
        Ok(Some(crate::verify::AfterPlan {
            section: self.verify.clone(),
            headers: self.verify_headers()?,
            backups: self.backup.dir.clone(),
        }))
    }

    /// The responder that carries out methods A, B and C against the
    /// database at `url`. `migrations` (the folder, read) lets it do method
    /// C; without them C refuses.
    pub fn responder(
        &self,
        url: &str,
        migrations: Option<Vec<crate::source::Migration>>,
    ) -> Result<crate::respond::Responder, ConfigError> {
        use crate::respond::{forensics_root, FullSetup, Responder, RestoreSetup};
        let full = match migrations {
            Some(migrations) => Some(FullSetup {
                migrations,
                settings: crate::migrate::Settings::from(&self.migrations),
                after: self.after_plan()?,
                forensics_root: forensics_root(self.path.as_deref()),
                owner_columns: self.check.owner_columns.clone(),
                keep_dropped: self.rollback.export_dropped,
            }),
            None => None,
        };
        Ok(Responder {
            url: url.to_string(),
            hooks: self.hooks.clone(),
            lock_wait: self.migrations.lock_wait,
            notifier: self.notifier(url),
            restore: RestoreSetup {
                store: crate::backup::Store::new(&self.backup.dir),
                jobs: self.backup_jobs(),
                freeze: self.freeze.clone(),
                server: self.backup.server_control(),
                mode: self.backup.restore,
                schemas: self.backup.restore_schemas.clone(),
            },
            full,
        })
    }

    /// What a drill of the database at `url` needs: `[drill]` and every
    /// section whose part of the runbook it plays, with the folder's
    /// migrations (read).
    pub fn drill(
        &self,
        url: &str,
        migrations: Vec<crate::source::Migration>,
    ) -> Result<crate::drill::Setup, ConfigError> {
        Ok(crate::drill::Setup {
            url: url.to_string(),
            section: self.drill.clone(),
            store: crate::backup::Store::new(&self.backup.dir),
            jobs: self.backup_jobs(),
            migrations,
            settings: crate::migrate::Settings::from(&self.migrations),
            flags: self.flags.clone(),
            hooks: self.hooks.clone(),
            verify: match self.verify.checks.is_empty() {
                true => None,
                false => Some(crate::verify::AfterPlan {
                    section: self.verify.clone(),
                    headers: self.verify_headers()?,
                    backups: self.backup.dir.clone(),
                }),
            },
            freeze: self.freeze.clone(),
            restore: (self.backup.restore, self.backup.restore_schemas.clone()),
            owner_columns: self.check.owner_columns.clone(),
            keep_dropped: self.rollback.export_dropped,
            notifier: self.notifier(url),
            lock_wait: self.migrations.lock_wait,
        })
    }

    /// Where incident alerts go for the database at `url`.
    pub fn notifier(&self, url: &str) -> crate::incident::Notifier {
        let webhook = self.slack_webhook().map_err(|e| e.to_string());
        crate::incident::Notifier::new(url, &self.notify, webhook)
    }

    /// Parallel jobs of pg_dump and pg_restore: `[backup] jobs`, or the cores.
    pub fn backup_jobs(&self) -> usize {
        self.backup.jobs.unwrap_or_else(crate::backup::create::default_jobs)
    }

    /// `[serve] token` and `[serve] tokens` with their `${VAR}`s filled in
    /// from the environment (read only by `backstop flags serve`, so other
    /// commands need no token): (name, token) pairs; the unnamed token is
    /// called `token`.
    pub fn serve_tokens(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        if let Some(t) = self.secret("[serve] token", self.serve.token.as_deref())? {
            out.push(("token".to_string(), t));
        }
        for (name, raw) in &self.serve.tokens {
            let what = format!("[serve] tokens.{name}");
            if let Some(t) = self.secret(&what, Some(raw))? {
                if t.trim().is_empty() {
                    let path = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
                    let message = format!("{what} is empty; give each named token a secret value");
                    return Err(ConfigError::Invalid { path, line: 1, column: 1, message });
                }
                out.push((name.clone(), t));
            }
        }
        Ok(out)
    }

    /// `[notify] slack_webhook` with its `${VAR}`s filled in.
    pub fn slack_webhook(&self) -> Result<Option<String>, ConfigError> {
        self.secret("[notify] slack_webhook", self.notify.slack_webhook.as_deref())
    }

    /// A setting that holds a secret, its `${VAR}`s filled in from the
    /// environment only by the command that needs it.
    fn secret(&self, what: &str, raw: Option<&str>) -> Result<Option<String>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let path = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        crate::kit::env::from_env(raw).map(Some).map_err(|e| {
            let message = match e {
                crate::kit::env::Interpolation::Missing(var) => {
                    format!("{what} names ${{{var}}}, which is not set in the environment; export {var}")
                }
                crate::kit::env::Interpolation::Unterminated => format!("{what} has an unterminated `${{`; write `${{NAME}}`"),
            };
            ConfigError::Invalid { path, line: 1, column: 1, message }
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
        crate::kit::env::from_env(raw).map_err(|e| match e {
            crate::kit::env::Interpolation::Missing(var) => {
                ConfigError::MissingEnv { path, line: *line, var }
            }
            crate::kit::env::Interpolation::Unterminated => {
                ConfigError::BadInterpolation { path, line: *line }
            }
        })
    }
}

/// `[[triggers]]`, each checked, with the line of its name in errors.
fn triggers(
    raw: Vec<crate::decide::config::RawTrigger>,
    text: &str,
    path: &Path,
) -> Result<Vec<crate::decide::Trigger>, ConfigError> {
    let mut triggers: Vec<crate::decide::Trigger> = Vec::new();
    for raw in raw {
        let named = format!("\"{}\"", raw.name());
        let at = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: text
                .lines()
                .position(|l| l.trim_start().starts_with("name") && l.contains(&named))
                .or_else(|| text.lines().position(|l| l.trim() == "[[triggers]]"))
                .map_or(1, |i| i + 1),
            column: 1,
            message,
        };
        let trigger = raw.check().map_err(at)?;
        if triggers.iter().any(|t| t.name == trigger.name) {
            return Err(at(format!("trigger {:?} is declared twice", trigger.name)));
        }
        triggers.push(trigger);
    }
    for t in &triggers {
        if let Some((companion, _)) = &t.traffic {
            if !triggers.iter().any(|o| &o.name == companion) {
                let named = format!("\"{}\"", t.name);
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: text
                        .lines()
                        .position(|l| l.trim_start().starts_with("name") && l.contains(&named))
                        .map_or(1, |i| i + 1),
                    column: 1,
                    message: format!(
                        "trigger {:?}: traffic = {companion:?} names no trigger; declare one that counts requests (dry_run = true keeps it from deciding)",
                        t.name
                    ),
                });
            }
        }
    }
    Ok(triggers)
}

/// Zero where zero makes no sense: no pg_dump job, no evaluation served.
fn refuse_zeros(
    backup: &BackupSection,
    serve: &ServeSection,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    let zero = |section: &str, key: &str, why: &str| {
        let line = crate::kit::text::line_where(text, |l| {
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
        })
        .unwrap_or(1);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column: 1,
            message: format!("[{section}] {key} = 0 {why}"),
        }
    };
    if backup.engine == crate::backup::config::Engine::PgBackRest
        && backup.stanza.as_deref().is_none_or(|s| s.trim().is_empty())
    {
        let line = crate::kit::text::line_where(text, |l| {
            l.starts_with("engine") && l["engine".len()..].trim_start().starts_with('=')
        })
        .unwrap_or(1);
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column: 1,
            message: "[backup] engine = \"pgbackrest\" needs the stanza of this cluster: \
                      add stanza = \"…\" (as in `pgbackrest info`)"
                .into(),
        });
    }
    if backup.pgbackrest_command.first().is_none_or(|p| p.trim().is_empty()) {
        let line = crate::kit::text::line_where(text, |l| l.starts_with("pgbackrest_command"))
            .unwrap_or(1);
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column: 1,
            message: "[backup] pgbackrest_command names no program; give it as a list, \
                      `[\"sudo\", \"-u\", \"postgres\", \"pgbackrest\"]`, or leave it out"
                .into(),
        });
    }
    for (key, argv) in
        [("server_stop", &backup.server_stop), ("server_start", &backup.server_start)]
    {
        if argv.first().is_some_and(|p| p.trim().is_empty()) {
            let line = crate::kit::text::line_where(text, |l| l.starts_with(key)).unwrap_or(1);
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column: 1,
                message: format!(
                    "[backup] {key} names no program; give it as a list, \
                     `[\"systemctl\", \"{}\", \"postgresql@16-main\"]`, or leave it out for pg_ctl",
                    if key == "server_stop" { "stop" } else { "start" }
                ),
            });
        }
    }
    if backup.jobs == Some(0) {
        return Err(zero(
            "backup",
            "jobs",
            "would run pg_dump with no job; give at least 1, or leave it out for one per core",
        ));
    }
    if serve.max_connections == 0 {
        return Err(zero(
            "serve",
            "max_connections",
            "would accept no connection; give the most you mean to serve at once (default 1000)",
        ));
    }
    if serve.max_evaluations_per_second == 0 {
        return Err(zero("serve", "max_evaluations_per_second", "would refuse every evaluation; give the most a second you mean to serve (default 20000)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
