//! The risk check of pending migrations: the pure analysis of
//! `backstop-lint`, the live facts of the target database that raise or
//! lower each risk, the verdict, and the gate `migrate` composes from it.

mod columns;
pub mod comment;
pub mod gate;
pub mod live;
pub mod on_copy;
mod platform;
mod rls;
mod table;
pub mod unadopted;

use std::path::Path;

use backstop_lint::{Code, Finding, Input, Report, Severity, Verdict};
use serde::{Deserialize, Deserializer, Serialize};

use crate::migrate::MigrationsSection;
use crate::source::{Migration, Part, ProblemKind, SourceError};

pub use gate::CheckGate;

/// `[check]` in backstop.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSection {
    /// `backstop migrate` runs the check under the migration lock and
    /// refuses a NO-GO unless `--accept-risk` names each critical finding.
    pub required: bool,
    /// `backstop check` exits 1 from this severity up (default: critical,
    /// i.e. on NO-GO only).
    #[serde(deserialize_with = "severity")]
    pub fail_on: Severity,
    /// Columns that make a new table hold each user's own rows, so it
    /// needs row level security.
    pub owner_columns: Vec<String>,
    /// Rules turned off for this project, by code or name.
    #[serde(deserialize_with = "codes")]
    pub skip: Vec<Code>,
    /// Opt-in rules turned on, by code or name: the type and naming
    /// preferences (BS801–BS806), off by default.
    #[serde(deserialize_with = "opt_in_codes")]
    pub enable: Vec<Code>,
    /// The production server's major version (`"15"`, `"17.2"`), for
    /// judging syntax newer than it without a database; with live facts
    /// the database's own version counts.
    #[serde(deserialize_with = "major")]
    pub server_version: Option<u32>,
    /// The roles the application connects as: a table one of them owns
    /// needs `FORCE ROW LEVEL SECURITY` for its policies to hold (BS509).
    pub application_roles: Vec<String>,
}

impl Default for CheckSection {
    fn default() -> Self {
        CheckSection {
            required: true,
            fail_on: Severity::Critical,
            owner_columns: backstop_lint::analyze::DEFAULT_OWNER_COLUMNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            skip: Vec::new(),
            enable: Vec::new(),
            server_version: None,
            application_roles: Vec::new(),
        }
    }
}

fn major<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u32),
        Text(String),
    }
    let major = match Written::deserialize(d)? {
        Written::Number(n) => Some(n),
        Written::Text(t) => crate::pg::bins::major_of(t.trim())
            .filter(|_| t.trim().chars().all(|c| c.is_ascii_digit() || c == '.')),
    };
    match major {
        Some(m) if (10..100).contains(&m) => Ok(Some(m)),
        _ => Err(serde::de::Error::custom(
            "server_version must be a PostgreSQL version such as \"15\" or \"17.2\"",
        )),
    }
}

fn severity<'de, D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn codes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Code>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            Code::lookup(s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown rule {s:?}; `backstop explain` lists the codes and names"
                ))
            })
        })
        .collect()
}

fn opt_in_codes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Code>, D::Error> {
    let codes = codes(d)?;
    match codes.iter().find(|c| !c.opt_in()) {
        Some(c) => Err(serde::de::Error::custom(format!(
            "{c} ({}) runs by default, so enable cannot turn it on; enable names the opt-in \
             rules: {}",
            c.name(),
            Code::ALL
                .iter()
                .filter(|c| c.opt_in())
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(codes),
    }
}

/// What a check needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lint: backstop_lint::Options,
    pub fail_on: Severity,
    pub required: bool,
    /// The config file, where a finding about the configuration points.
    pub config_file: std::path::PathBuf,
    /// The protected tables one of the project's migrations creates: not
    /// missing where they do not exist yet, as `migrate`'s pre-flight
    /// judges them (see [`crate::migrate::Settings::knowing`]).
    pub protected_made: Vec<String>,
    /// `[check] application_roles`.
    pub application_roles: Vec<String>,
    /// `[migrations] keep_downs`: `migrate` works out and proves the down
    /// of a migration that has none, and keeps it for `rollback`.
    pub keep_downs: bool,
}

impl Settings {
    /// These settings for the server `client` is connected to: its major
    /// version is the one syntax is judged against.
    pub fn for_server(
        &self,
        client: &mut impl postgres::GenericClient,
    ) -> Result<Settings, CheckError> {
        let num = crate::pg::server_version_num(client)
            .map_err(|e| crate::pg::DbError::new("reading the server version", e))?;
        let mut settings = self.clone();
        settings.lint.server_major = Some(crate::pg::bins::major_of_num(num));
        Ok(settings)
    }

    /// These settings with the protected tables `migrations` create known.
    pub fn knowing(self, migrations: &[crate::source::Migration]) -> Settings {
        let protected_made =
            crate::migrate::protect::made_by(&self.lint.protected_tables, migrations);
        Settings { protected_made, ..self }
    }

    /// The check's settings from its own section and the guards of
    /// `[migrations]` it judges statements against.
    pub fn new(
        check: &CheckSection,
        migrations: &MigrationsSection,
        config_file: std::path::PathBuf,
    ) -> Settings {
        Settings {
            lint: backstop_lint::Options {
                protected_tables: migrations.protected_tables.clone(),
                owner_columns: check.owner_columns.clone(),
                runner_sets_lock_timeout: !migrations.lock_timeout.is_zero(),
                skip: check.skip.clone(),
                enable: check.enable.clone(),
                sequential: true,
                server_major: check.server_version,
            },
            fail_on: check.fail_on,
            required: check.required,
            config_file,
            protected_made: Vec::new(),
            application_roles: check.application_roles.clone(),
            keep_downs: migrations.keep_downs,
        }
    }
}

/// One file to check, read and owned.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: String,
    /// The text, shared with the migration it came from.
    pub text: std::sync::Arc<str>,
    pub no_transaction: bool,
    /// Byte ranges whose statements run outside a transaction though the
    /// migration runs in one (after its author's `COMMIT` in drizzle).
    pub outside_transaction: Vec<std::ops::Range<usize>>,
    pub has_down: Option<bool>,
    /// The migration comes from a layout whose tool writes no downs
    /// (Supabase, Prisma, Drizzle): its missing down is said once for the
    /// whole run, with the count, not once per file.
    pub up_only: bool,
    /// Findings about the migration's files that the SQL analysis cannot
    /// see: a down or verify script that cannot run, an up that is missing
    /// or asks for what Backstop cannot honour.
    pub file_findings: Vec<Finding>,
}

impl Source {
    /// The up file of a migration, with what is wrong with its other files.
    pub fn of_migration(m: &Migration) -> Source {
        Source {
            path: m.up.path.display().to_string(),
            text: m.up.text.clone(),
            no_transaction: m.no_transaction,
            outside_transaction: m.up.outside_transaction(),
            // An empty down file is said by its own finding, at the file.
            has_down: Some(m.down.is_some() || m.empty_down.is_some()),
            up_only: !m.layout.has_downs(),
            file_findings: file_findings(m),
        }
    }

    /// [`Source::of_migration`] for a server of major `server` (when
    /// known): a down that needs a newer PostgreSQL is a down that cannot
    /// run.
    pub fn of_migration_on(m: &Migration, server: Option<u32>) -> Source {
        let mut source = Source::of_migration(m);
        if m.runnable(Part::Down) {
            let p = server.and_then(|s| m.needs_newer_server(s));
            source.file_findings.extend(p.map(|p| down_finding(m, &p)));
        }
        source
    }

    /// A SQL file named on the command line. Whether it has a down is told
    /// by its layout: `up.sql` beside `down.sql`, `X.up.sql` beside
    /// `X.down.sql`; other files do not say.
    pub fn read(path: &Path) -> Result<Source, SourceError> {
        let bytes = std::fs::read(path)
            .map_err(|source| SourceError::Read { path: path.into(), source })?;
        let text = String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
            path: path.into(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let has_down = if name == "up.sql" {
            Some(crate::source::holds_a_down(&path.with_file_name("down.sql")))
        } else {
            name.strip_suffix(".up.sql").map(|stem| {
                crate::source::holds_a_down(&path.with_file_name(format!("{stem}.down.sql")))
            })
        };
        let no_transaction =
            text.lines().next().is_some_and(|l| l.trim() == crate::source::NO_TRANSACTION_MARKER);
        Ok(Source {
            path: path.display().to_string(),
            text: text.into(),
            no_transaction,
            outside_transaction: Vec::new(),
            has_down,
            up_only: false,
            file_findings: Vec::new(),
        })
    }

    fn input(&self) -> Input<'_> {
        Input {
            path: &self.path,
            text: &self.text,
            no_transaction: self.no_transaction,
            outside_transaction: self.outside_transaction.clone(),
            has_down: self.has_down,
        }
    }
}

/// The live database a check looked at.
#[derive(Debug, Clone, Serialize)]
pub struct LiveInfo {
    /// The URL with its password masked.
    pub database: String,
    pub server_version: String,
    /// What running the pending migrations on a copy of the database's
    /// schema found, or why they were not run there (`on_copy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

/// A finished assessment: findings (static, then adjusted by live facts),
/// the verdict and its conditions.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    /// For a CONDITIONAL GO: what must hold before proceeding.
    pub conditions: Vec<String>,
    /// How many unsuppressed findings of each severity.
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveInfo>,
    /// Why no live facts were taken (`--offline`, no database configured):
    /// the verdict then rests on the SQL alone, and says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_only: Option<String>,
    pub files: Vec<backstop_lint::analyze::FileSummary>,
    /// Unsuppressed findings, most severe first, then in file order.
    pub findings: Vec<Finding>,
    /// Findings an ignore comment suppressed, with the reason given.
    pub suppressed: Vec<Finding>,
    /// Whether the pending migrations can be served as a new shape beside
    /// the old one (`migrate --expand`): read live, for the schema `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expand: Option<crate::expand::Expandable>,
    /// Findings that are not true of the step being taken, because an
    /// expand or its contract does the statement another way (a rename
    /// served by a view, a type change by a twin): said apart, outside the
    /// verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<Finding>,
    /// The checked texts, for showing the offending lines.
    #[serde(skip)]
    pub sources: Vec<Source>,
}

/// Counts by severity.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl Summary {
    fn add(&mut self, s: Severity) {
        match s {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }

    pub fn count(&self, s: Severity) -> usize {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }
}

impl Assessment {
    /// Orders findings and works out the verdict.
    pub fn new(sources: Vec<Source>, report: Report, live: Option<LiveInfo>) -> Assessment {
        let (suppressed, mut findings): (Vec<Finding>, Vec<Finding>) =
            report.findings.into_iter().partition(|f| f.suppressed.is_some());
        let mut place: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            place.entry(s.path.as_str()).or_insert(i);
        }
        let order = |f: &Finding| {
            let file = place.get(f.file.as_str()).copied().unwrap_or(usize::MAX);
            (std::cmp::Reverse(f.severity), file, f.span.start, f.code)
        };
        findings.sort_by_cached_key(order);
        let mut summary = Summary::default();
        for f in &findings {
            summary.add(f.severity);
        }
        Assessment {
            verdict: Verdict::of(&findings),
            conditions: backstop_lint::conditions(&findings),
            summary,
            live,
            static_only: None,
            files: report.files,
            findings,
            suppressed,
            expand: None,
            served: Vec::new(),
            sources,
        }
    }

    /// Sets apart the findings of `codes` (what an expand step serves) and
    /// works the verdict out again without them.
    pub fn serve(&mut self, codes: &[Code]) {
        let (served, kept): (Vec<Finding>, Vec<Finding>) =
            std::mem::take(&mut self.findings).into_iter().partition(|f| codes.contains(&f.code));
        let mut summary = Summary::default();
        for f in &kept {
            summary.add(f.severity);
        }
        self.verdict = Verdict::of(&kept);
        self.conditions = backstop_lint::conditions(&kept);
        self.summary = summary;
        self.findings = kept;
        self.served = served;
    }

    /// Whether the check fails at `fail_on` (critical: on NO-GO only).
    pub fn fails_at(&self, fail_on: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= fail_on)
    }

    /// How many unsuppressed findings each rule has, most first (then by
    /// code), as `check --statistics` shows them.
    pub fn statistics(&self) -> Vec<RuleCount> {
        let mut out: Vec<RuleCount> = Vec::new();
        for f in &self.findings {
            let at = match out.iter().position(|c| c.code == f.code) {
                Some(at) => at,
                None => {
                    out.push(RuleCount {
                        code: f.code,
                        rule: f.rule,
                        count: 0,
                        by_severity: Summary::default(),
                    });
                    out.len() - 1
                }
            };
            let c = &mut out[at];
            c.count += 1;
            c.by_severity.add(f.severity);
        }
        out.sort_by_key(|c| (std::cmp::Reverse(c.count), c.code));
        out
    }
}

/// One rule's findings in a check, for `check --statistics`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    pub code: Code,
    pub rule: &'static str,
    pub count: usize,
    pub by_severity: Summary,
}

/// What is wrong with a migration's files beyond what the analysis of its
/// up SQL finds (it reports an up that does not parse, transaction control
/// and CONCURRENTLY itself). A down that cannot run is high: the migration
/// can be applied, but a rollback through it fails.
fn file_findings(m: &Migration) -> Vec<Finding> {
    let seen_by_analysis =
        [ProblemKind::Syntax, ProblemKind::TransactionControl, ProblemKind::NeedsNoTransaction];
    let empty = m.empty_down.as_ref().map(|path| empty_down_finding(m, path));
    m.problems
        .iter()
        .filter(|p| p.part != Part::Up || !seen_by_analysis.contains(&p.kind))
        .map(|p| match p.part {
            Part::Down => down_finding(m, p),
            part => {
                let at = backstop_sql::Position { line: p.line, column: p.column };
                let path = p.path.display().to_string();
                let message = format!("the {part} of {} cannot run: {}", m.label(), p.message);
                let help = "fix it: backstop migrate refuses to apply this migration until then";
                backstop_lint::analyze::file_finding(Code::BS003, &path, at, message, help)
            }
        })
        .chain(empty)
        .collect()
}

/// A down file that holds only comments or blanks: BS403 at that file,
/// since it undoes nothing (a rollback through it would change nothing
/// and say it reverted). `migrate` computes and proves the down instead.
fn empty_down_finding(m: &Migration, path: &Path) -> Finding {
    let at = backstop_sql::Position { line: 1, column: 1 };
    let message = format!(
        "the down of {} is empty (only comments or blanks): it undoes nothing, so it counts as \
         no down",
        m.label()
    );
    let help = "`backstop downs --write` computes a proved down into this file (or write it by \
                hand); until then `migrate` computes and proves one and keeps it with the record";
    backstop_lint::analyze::file_finding(
        Code::BS403,
        &path.display().to_string(),
        at,
        message,
        help,
    )
}

/// A down that cannot run: high, since the migration can be applied but a
/// rollback through it fails.
fn down_finding(m: &Migration, p: &crate::source::Problem) -> Finding {
    let at = backstop_sql::Position { line: p.line, column: p.column };
    let path = p.path.display().to_string();
    let message = format!("the down of {} cannot run: {}", m.label(), p.message);
    let help = "fix the down file before a rollback through this migration is needed";
    let mut f = backstop_lint::analyze::file_finding(Code::BS003, &path, at, message, help);
    f.probability = backstop_lint::Probability::Medium;
    f.severity = Severity::of(f.probability, f.impact);
    f
}

/// Files of the folder that look like migrations and that their tool would
/// never run (a name the Supabase CLI skips, a file drizzle's journal does
/// not list): BS003 at the file, medium, so the author hears of it before
/// a release that counts on it.
pub fn stray_findings(strays: &[crate::source::Stray]) -> Vec<Finding> {
    strays
        .iter()
        .map(|s| {
            let at = backstop_sql::Position { line: s.line, column: 1 };
            let path = s.path.display().to_string();
            let mut f = backstop_lint::analyze::file_finding(
                Code::BS003,
                &path,
                at,
                s.message.clone(),
                "rename it or list it so the tool runs it, or move it out of the migrations folder",
            );
            f.probability = backstop_lint::Probability::Medium;
            f.impact = backstop_lint::Impact::Medium;
            f.severity = Severity::of(f.probability, f.impact);
            f
        })
        .collect()
}

/// On a layout whose tool writes no downs, every migration lacks one:
/// BS403 there is one finding, at the first, with the count and the
/// command that computes them, not hundreds of the same line.
fn one_line_for_missing_downs(sources: &[Source], report: &mut Report) {
    let up_only: std::collections::HashSet<&str> =
        sources.iter().filter(|s| s.up_only).map(|s| s.path.as_str()).collect();
    let is_up_only = |f: &Finding| {
        f.code == Code::BS403 && f.suppressed.is_none() && up_only.contains(f.file.as_str())
    };
    let count = report.findings.iter().filter(|f| is_up_only(f)).count();
    if count < 2 {
        return;
    }
    let mut first = true;
    report.findings.retain_mut(|f| {
        if !is_up_only(f) {
            return true;
        }
        if !std::mem::take(&mut first) {
            return false;
        }
        f.message = format!(
            "{count} migrations have no down (their tool writes none): backstop rollback cannot \
             undo them, only a restore can"
        );
        f.help = "`backstop downs --write` computes and proves them all (kept in backstop/downs/)"
            .into();
        true
    });
}

/// With `[migrations] keep_downs` on, a migration without a down is not
/// one a rollback cannot undo: `migrate` works out its down and proves it
/// before the first statement, and keeps it with the record. BS403 says
/// that, at low severity (what is left is a down that cannot be proved,
/// which the deploy names), instead of claiming only a restore can.
fn downs_kept_by_migrate(report: &mut Report) {
    for f in report.findings.iter_mut().filter(|f| f.code == Code::BS403) {
        if !f.message.contains("only a restore can") {
            continue;
        }
        let what = f.message.split(':').next().unwrap_or_default().to_string();
        f.message = format!(
            "{what}: `migrate` works out and proves a down before it applies it, and keeps it \
             for `backstop rollback`; where none can be proved (rows only a backup holds), it \
             says so and only a restore undoes it"
        );
        f.help = "`backstop downs --write` writes the proved down into the project, to review \
                  and keep with the migration"
            .into();
        f.rate(backstop_lint::Probability::Low, backstop_lint::Impact::Low);
    }
}

/// Runs the pure analysis over `sources`, in order, as one run.
pub fn analyze(sources: &[Source], settings: &Settings) -> Report {
    let inputs: Vec<Input<'_>> = sources.iter().map(Source::input).collect();
    let mut report = backstop_lint::check(&inputs, &settings.lint);
    one_line_for_missing_downs(sources, &mut report);
    if settings.keep_downs {
        downs_kept_by_migrate(&mut report);
    }
    if !settings.lint.skip.contains(&Code::BS003) {
        report.findings.extend(sources.iter().flat_map(|s| s.file_findings.iter().cloned()));
    }
    report
}

/// The facts of an empty database, for a folder checked from its first
/// migration without one: a statement with IF EXISTS on a table that no
/// earlier statement made does nothing there.
pub fn from_empty(report: &mut Report) {
    use backstop_lint::{Origin, Subject};
    report.findings.retain(|f| {
        let before_batch = matches!(f.origin, None | Some(Origin::Live { .. }));
        !(before_batch && matches!(f.subject, Some(Subject::Table { missing_ok: true, .. })))
    });
}

/// What stops a check from giving a verdict at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The live part failed half-way: an environment error (exit 3).
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
}

impl CheckError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckError::Db(_) => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_check_section_has_defaults_and_rejects_unknown_keys_codes_and_severities() {
        let cfg = Config::parse("", Path::new("backstop.toml")).unwrap();
        assert!(cfg.check.required);
        assert_eq!(cfg.check.fail_on, Severity::Critical);
        assert_eq!(cfg.check.owner_columns, ["user_id", "tenant_id", "owner_id"]);

        let cfg = Config::parse(
            "[check]\nrequired = false\nfail_on = \"high\"\nowner_columns = [\"org_id\"]\nskip = [\"BS401\", \"missing-down\"]\nenable = [\"varchar-column\", \"BS805\"]\n",
            Path::new("backstop.toml"),
        )
        .unwrap();
        assert_eq!(cfg.check.enable, [Code::BS802, Code::BS805]);
        assert!(!cfg.check.required);
        assert_eq!(cfg.check.fail_on, Severity::High);
        assert_eq!(cfg.check.skip, [Code::BS401, Code::BS403]);

        for (text, line, needle) in [
            ("[check]\nfail_on = \"urgent\"\n", 2, "unknown severity"),
            ("[check]\nskip = [\"BS999\"]\n", 2, "unknown rule \"BS999\""),
            ("[check]\nenable = [\"BS101\"]\n", 2, "BS101 (drop-table) runs by default"),
            ("[check]\nowner_colums = []\n", 2, "owner_colums"),
        ] {
            let err = Config::parse(text, Path::new("backstop.toml")).unwrap_err().to_string();
            assert!(err.starts_with(&format!("backstop.toml:{line}:")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn a_file_named_up_sql_knows_whether_it_has_a_down() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("1_a");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("up.sql"), "SELECT 1;").unwrap();
        assert_eq!(Source::read(&dir.join("up.sql")).unwrap().has_down, Some(false));
        std::fs::write(dir.join("down.sql"), "SELECT 2;").unwrap();
        assert_eq!(Source::read(&dir.join("up.sql")).unwrap().has_down, Some(true));
        std::fs::write(tmp.path().join("plain.sql"), "SELECT 3;").unwrap();
        assert_eq!(Source::read(&tmp.path().join("plain.sql")).unwrap().has_down, None);
    }
}
