//! Guarded migrate as one policy, the way a library's migrator owns it:
//! the gates in the runbook's order (write freeze, risk check, rehearsal,
//! backup), each with its switch in the configuration and its audited
//! waiver, then apply under the guards of [`crate::migrate`], then the
//! verify suite when `[verify] after_migrate` is on. The CLI, the demo and
//! a library user get the same order and the same waivers.

use backstop_lint::Code;

use crate::backup::gate::BackedUp;
use crate::backup::{self, BackupGate, GateMode};
use crate::check::{Assessment, CheckGate};
use crate::config::{Config, ConfigError};
use crate::freeze::FreezeGate;
use crate::kit::error::chain;
use crate::migrate::{self, ApplyError, Gate, MigrateOptions, Report, Waived};
use crate::rehearse::gate::RehearsalGate;
use crate::rollout;
use crate::source::Migration;
use crate::verify::{AfterRun, Phase, SuiteReport, VerifyError};

mod keep_downs;
mod rollback;
use keep_downs::KeepDowns;
pub use rollback::{rollback, Reverted, RolledBack};

/// What the operator waived or chose for this run; each waiver is
/// recorded in the audit log with its reason.
#[derive(Debug, Clone, Default)]
pub struct Waivers {
    /// Critical risks the check gate found that are accepted, by code.
    pub accept_risk: Vec<Code>,
    /// Use this backup (recent and verified) instead of taking one.
    pub backup: Option<String>,
    /// Migrate without a backup, for this reason.
    pub no_backup: Option<String>,
    /// Migrate without the rehearsal `[rehearse] required` asks for.
    pub skip_rehearsal: Option<String>,
    /// Why the risks of `accept_risk` are accepted (`--reason`): recorded
    /// with them in the audit log.
    pub accept_reason: Option<String>,
}

/// How the caller is told what happens.
pub struct Watchers<'a> {
    /// The risk check's assessment, when the check gate ran.
    pub assessment: Box<dyn FnMut(&Assessment) + 'a>,
    /// The backup's progress.
    pub backup: &'a mut dyn backup::Progress,
    /// Each group and statement of the apply.
    pub apply: &'a mut dyn migrate::Progress,
    /// Notes worth saying before the run (a waiver, a flag with no effect).
    pub note: &'a mut dyn FnMut(&str),
}

/// What a guarded migrate did.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// The verify suite's result, when it ran afterwards.
    pub verified: Option<SuiteReport>,
}

impl Outcome {
    /// Whether anything failed: the apply, or the suite afterwards.
    pub fn failed(&self) -> bool {
        self.report.failed() || self.verified.as_ref().is_some_and(|s| !s.ok())
    }
}

/// Why a guarded migrate could not run.
#[derive(Debug, thiserror::Error)]
pub enum MigratorError {
    #[error("--no-backup needs a reason for the audit log, e.g. --no-backup --reason \"empty database\"")]
    NoBackupReason,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Expand(Box<crate::expand::ExpandError>),
}

impl From<crate::expand::ExpandError> for MigratorError {
    fn from(e: crate::expand::ExpandError) -> Self {
        MigratorError::Expand(Box::new(e))
    }
}

impl MigratorError {
    /// 2 for a usage or config mistake; otherwise the cause's code.
    pub fn exit_code(&self) -> u8 {
        match self {
            MigratorError::NoBackupReason | MigratorError::Config(_) => 2,
            MigratorError::Apply(e) => e.exit_code(),
            MigratorError::Verify(e) => e.exit_code(),
            MigratorError::Expand(e) => e.exit_code(),
        }
    }
}

/// Applies the pending `migrations` to the database at `url` behind the
/// gates of `config`.
pub fn migrate(
    client: &mut postgres::Client,
    config: &Config,
    url: &str,
    migrations: &[Migration],
    options: &MigrateOptions,
    waivers: Waivers,
    watchers: Watchers<'_>,
) -> Result<Outcome, MigratorError> {
    let Watchers { assessment, backup: backup_progress, apply, note } = watchers;
    // The schema a backup taken now holds: where the downs start.
    let backed_up = BackedUp::default();
    let mut guards = Gates::new(
        (config, migrations),
        url,
        waivers,
        (assessment, backup_progress, backed_up.clone()),
        note,
    )?;
    let handed = guards.handed.clone();
    let mut gates = guards.in_order();
    let plan = config.after_plan()?;
    let after = AfterRun::prepare(client, url, plan.as_ref(), Phase::Migrate, options.dry_run)?;
    let settings = migrate::Settings::from(&config.migrations);
    // Last: the downs are kept only for a run every gate let through (the
    // check's run on a copy proved them, where it ran).
    let proofs = config.rehearse.proofs.as_path();
    let defective = config.migrations.defective_downs;
    let mut keep = KeepDowns {
        url,
        migrations,
        settings: &settings,
        proofs,
        note,
        backed_up,
        defective,
        handed,
    };
    if config.migrations.keep_downs {
        gates.push(&mut keep);
    }
    let options = MigrateOptions {
        all_or_nothing: options.all_or_nothing || config.migrations.all_or_nothing,
        ..options.clone()
    };
    let report = migrate::migrate(client, migrations, &settings, &options, &mut gates, apply)?;
    let verified = after.and_then(|after| after.finish(client, &report));
    Ok(Outcome { report, verified })
}

/// What the gates tell as they pass: the check's assessment, the backup's
/// progress, and where a backup taken leaves the schema it holds.
type GateWatchers<'a> = (Box<dyn FnMut(&Assessment) + 'a>, &'a mut dyn backup::Progress, BackedUp);

/// The gates every guarded run passes before its first statement, in the
/// order of the runbook, cheap refusals first: a freeze, the check and
/// the rehearsal record cost little, the backup is a dump.
struct Gates<'a> {
    freeze: FreezeGate,
    check: Option<CheckGate<'a>>,
    rehearsal: Option<Box<dyn Gate>>,
    backup: Option<Box<dyn Gate + 'a>>,
    /// What the check's run on a copy proved, for the keep gate.
    handed: crate::check::on_copy::Handed,
}

impl<'a> Gates<'a> {
    /// The gates `config` asks for, with the operator's waivers.
    fn new(
        (config, migrations): (&Config, &[Migration]),
        url: &str,
        waivers: Waivers,
        (assessment, backup_progress, backed_up): GateWatchers<'a>,
        note: &mut dyn FnMut(&str),
    ) -> Result<Gates<'a>, MigratorError> {
        let check_settings = config.check_settings().knowing(migrations);
        let handed = crate::check::on_copy::Handed::default();
        let check = if check_settings.required {
            Some(CheckGate {
                settings: check_settings,
                accept: waivers.accept_risk,
                because: waivers.accept_reason,
                database: crate::pg::redact(url),
                notify: assessment,
                served: Vec::new(),
                // Where the deploy proves its downs on a copy, the check runs
                // the pending migrations there first (the proofs then serve
                // the deploy): a statement that fails is NO-GO before any backup.
                on_copy: config.migrations.keep_downs.then(|| crate::check::on_copy::OnCopy {
                    url: url.to_string(),
                    migrations: migrations.to_vec(),
                    settings: migrate::Settings::from(&config.migrations),
                    proofs: config.rehearse.proofs.clone(),
                    hand_to: Some(handed.clone()),
                }),
            })
        } else {
            if !waivers.accept_risk.is_empty() {
                note("note: [check] required = false, so --accept-risk has nothing to accept");
            }
            None
        };
        let rehearsal: Option<Box<dyn Gate>> = match waivers.skip_rehearsal {
            _ if !config.rehearse.required => None,
            Some(reason) => Some(Box::new(Waived { gate: "rehearsal", reason })),
            None => Some(Box::new(RehearsalGate {
                max_age: config.rehearse.max_age,
                accept_schema_only: config.rehearse.accept_schema_only,
            })),
        };
        let backup: Option<Box<dyn Gate + 'a>> = match (waivers.backup, waivers.no_backup) {
            (Some(id), _) => {
                Some(Box::new(backup_gate(config, url, GateMode::Use(id), backup_progress, None)))
            }
            (None, Some(reason)) => {
                if reason.trim().is_empty() {
                    return Err(MigratorError::NoBackupReason);
                }
                note(&format!("warning: migrating without a backup (--no-backup): {reason}"));
                Some(Box::new(Waived { gate: "backup", reason }))
            }
            (None, None) if config.backup.required => {
                let gate = backup_gate(
                    config,
                    url,
                    GateMode::Take,
                    backup_progress,
                    Some(backed_up.clone()),
                );
                Some(Box::new(gate))
            }
            (None, None) => None,
        };
        Ok(Gates { freeze: FreezeGate, check, rehearsal, backup, handed })
    }

    /// The gates to pass, in order.
    fn in_order(&mut self) -> Vec<&mut dyn Gate> {
        let mut gates: Vec<&mut dyn Gate> = vec![&mut self.freeze];
        if let Some(gate) = self.check.as_mut() {
            gates.push(gate);
        }
        if let Some(gate) = self.rehearsal.as_mut() {
            gates.push(gate.as_mut());
        }
        if let Some(gate) = self.backup.as_mut() {
            gates.push(gate.as_mut());
        }
        gates
    }
}

/// Which step of an expand a guarded run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'s> {
    /// `migrate --expand`: the pending migrations served as a new shape
    /// of this schema beside the old one.
    Expand { schema: &'s str },
    /// `migrate --contract`: the open expand's new shape made the real one.
    Contract,
}

/// What a guarded expand or contract did.
#[derive(Debug)]
pub struct Stepped {
    pub done: crate::expand::Expanded,
    /// The verify suite's result, when it ran afterwards.
    pub verified: Option<SuiteReport>,
}

/// `migrate --expand` and `--contract` behind the same gates as
/// [`migrate`] (not the kept downs: an expand is undone by dropping its
/// new shape), then the verify suite when `[verify] after_migrate` is on.
pub fn expand_step(
    client: &mut postgres::Client,
    config: &Config,
    url: &str,
    migrations: &[Migration],
    step: Step<'_>,
    waivers: Waivers,
    watchers: Watchers<'_>,
) -> Result<Stepped, MigratorError> {
    let Watchers { assessment, backup: backup_progress, note, .. } = watchers;
    // No downs are kept here: what the backup holds is not asked for.
    let watchers = (assessment, backup_progress, BackedUp::default());
    let mut guards = Gates::new((config, migrations), url, waivers, watchers, &mut *note)?;
    if let Some(check) = guards.check.as_mut() {
        // The statements are not run as written (a view serves a rename, a
        // twin a type change): a copy running them would judge another run.
        check.on_copy = None;
        check.served = match step {
            Step::Expand { .. } => crate::check::gate::SERVED_AT_EXPAND.to_vec(),
            Step::Contract => crate::check::gate::SERVED_AT_CONTRACT.to_vec(),
        };
    }
    let plan = config.after_plan()?;
    let after = AfterRun::prepare(client, url, plan.as_ref(), Phase::Migrate, false)?;
    let settings = migrate::Settings::from(&config.migrations);
    let mut gates = guards.in_order();
    let done = match step {
        Step::Expand { schema } => {
            crate::expand::expand(client, migrations, &settings, schema, &mut gates, note)?
        }
        Step::Contract => crate::expand::contract(client, migrations, &settings, &mut gates, note)?,
    };
    let versions = done.plan.migrations.iter().map(|m| m.version.clone()).collect();
    let verified = after.map(|after| after.run(client, versions));
    Ok(Stepped { done, verified })
}

fn backup_gate<'a>(
    config: &Config,
    url: &str,
    mode: GateMode,
    progress: &'a mut dyn backup::Progress,
    schema: Option<BackedUp>,
) -> BackupGate<'a> {
    BackupGate {
        url: url.to_string(),
        store: backup::Store::new(&config.backup.dir),
        policy: config.backup.clone(),
        mode,
        protected: config.migrations.protected_tables.clone(),
        progress,
        schema,
    }
}

/// A rollout's databases, each migrated by [`migrate`] with every gate it
/// has alone and taken back by `migrate::rollback` (its downs, the kept
/// computed ones included) or, where no down exists, method B's restore of
/// its backup: what `backstop migrate` and `backstop rollback` would do to
/// it, one database at a time, from the threads of a wave.
pub struct FleetMigrator<'a> {
    pub config: &'a Config,
    pub migrations: &'a [Migration],
}

impl rollout::Apply for FleetMigrator<'_> {
    fn migrate(
        &self,
        target: &rollout::Target,
        to: Option<&str>,
        positioned: &mut dyn FnMut(&rollout::Position) -> Result<(), String>,
    ) -> Result<rollout::Applied, rollout::Failed> {
        let (mut client, _) = self.positioned(target, positioned)?;
        let mut notes = Vec::new();
        let mut config = self.wave_config();
        if target.kind == rollout::Kind::CitusCoordinator {
            if config.backup.required && config.backup.engine == backup::config::Engine::PgDump {
                return Err(failed(rollout::citus::DUMP_IS_NOT_A_BACKUP.to_string()));
            }
            if config.migrations.keep_downs {
                config.migrations.keep_downs = false;
                notes.push(rollout::citus::NO_COMPUTED_DOWNS.to_string());
            }
        }
        let options = MigrateOptions { to: to.map(str::to_string), ..Default::default() };
        let mut note = |line: &str| notes.push(line.to_string());
        let watchers = Watchers {
            assessment: Box::new(|_: &Assessment| {}),
            backup: &mut backup::Quiet,
            apply: &mut migrate::Quiet,
            note: &mut note,
        };
        let outcome = migrate(
            &mut client,
            &config,
            &target.url,
            self.migrations,
            &options,
            Waivers::default(),
            watchers,
        );
        let after = self.latest(&mut client);
        let outcome =
            outcome.map_err(|e| rollout::Failed { after: after.clone(), ..failed(chain(&e)) })?;
        let versions: Vec<String> = outcome.report.done.iter().map(|d| d.version.clone()).collect();
        if let Some(failure) = &outcome.report.failure {
            return Err(rollout::Failed { error: failure_words(failure), versions, after });
        }
        if let Some(suite) = outcome.verified.as_ref().filter(|s| !s.ok()) {
            let error = format!(
                "applied, but the verify suite failed afterwards ({}); the rollout's undo takes it back",
                suite.summary()
            );
            return Err(rollout::Failed { error, versions, after });
        }
        Ok(rollout::Applied { versions, after, notes })
    }

    fn expand(
        &self,
        target: &rollout::Target,
        schema: &str,
        positioned: &mut dyn FnMut(&rollout::Position) -> Result<(), String>,
    ) -> Result<rollout::Applied, rollout::Failed> {
        let (mut client, before) = self.positioned(target, positioned)?;
        let step = Step::Expand { schema };
        let (stepped, mut notes) = self
            .step(&mut client, target, step)
            .map_err(|error| rollout::Failed { after: before.clone(), ..failed(error) })?;
        if !stepped.done.unsettled.is_empty() {
            let error = format!(
                "expanded, but not settled, so its contract would refuse: {}; mend it and \
                 `backstop rollout --resume` (the expand resumes), or `backstop rollout --undo`",
                stepped.done.unsettled.join("; ")
            );
            return Err(rollout::Failed { after: before, ..failed(error) });
        }
        notes.push(format!(
            "expanded: the new shape is served in schema {}",
            stepped.done.new_schema
        ));
        Ok(rollout::Applied { versions: Vec::new(), after: before, notes })
    }

    fn contract(&self, target: &rollout::Target) -> Result<rollout::Applied, rollout::Failed> {
        let mut client = reach(target)?;
        let open = crate::expand::in_progress(&mut client).map_err(|e| failed(chain(&e)))?;
        if open.is_none() {
            let notes = vec!["no expand open: contracted already".to_string()];
            let after = self.latest(&mut client);
            return Ok(rollout::Applied { versions: Vec::new(), after, notes });
        }
        let (stepped, notes) = self.step(&mut client, target, Step::Contract).map_err(failed)?;
        let versions = stepped.done.plan.migrations.iter().map(|m| m.version.clone()).collect();
        Ok(rollout::Applied { versions, after: self.latest(&mut client), notes })
    }

    fn undo(
        &self,
        target: &rollout::Target,
        before: Option<&str>,
    ) -> Result<rollout::Undone, String> {
        let mut client = crate::pg::connect(&target.url, "backstop rollout --undo")
            .map_err(|e| format!("cannot reach it: {}", chain(&e)))?;

        let revert = match before {
            Some(v) => migrate::RollbackTarget::To(v.to_string()),
            None => migrate::RollbackTarget::Steps(usize::MAX),
        };
        let mut settings = migrate::Settings {
            reason: Some("backstop rollout --undo".into()),
            ..self.config.rollback_settings()
        };
        if self.config.rollback.export_dropped {
            // A folder per database: a wave's undos run at once.
            let safe: String = target
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                .collect();
            let root = self.config.rollback.dir.join("rollout").join(safe);
            settings.keep = Some(migrate::keep::run_folder(&root));
        }
        // The one rollback policy: an open expand dropped, else the downs
        // and the suite after them.
        let at = (target.url.as_str(), self.config);
        let revert = (&settings, &revert);
        match rollback(&mut client, at, self.migrations, revert, false, &mut migrate::Quiet) {
            Ok(RolledBack::Expand(undone)) => {
                let reverted = undone.plan.migrations.iter().map(|m| m.version.clone()).collect();
                Ok(rollout::Undone { reverted, how: "expand dropped" })
            }
            Ok(RolledBack::Downs(reverted)) => {
                let Reverted { report, verified } = *reverted;
                if let Some(failure) = &report.failure {
                    return Err(failure_words(failure));
                }
                if let Some(suite) = verified.as_ref().filter(|s| !s.ok()) {
                    return Err(format!(
                        "reverted, but the verify suite failed afterwards ({})",
                        suite.summary()
                    ));
                }
                let reverted = report.done.iter().map(|d| d.version.clone()).collect();
                Ok(rollout::Undone { reverted, how: "downs" })
            }
            Err(MigratorError::Apply(ApplyError::MissingDown(missing))) => {
                self.restore(&mut client, target, &missing)
            }
            Err(e) => Err(chain(&e)),
        }
    }
}

/// Why a database's run did not go through, nothing of it committed.
fn failed(error: String) -> rollout::Failed {
    rollout::Failed { error, versions: Vec::new(), after: None }
}

/// A session on a rollout's database, or why it cannot be had; a Citus
/// coordinator, or a database that says it is not one, judged first.
fn reach(target: &rollout::Target) -> Result<postgres::Client, rollout::Failed> {
    let mut client = crate::pg::connect(&target.url, "backstop rollout")
        .map_err(|e| failed(format!("cannot reach it: {}", chain(&e))))?;
    let facts = rollout::citus::facts(&mut client).map_err(|e| {
        failed(format!("reading its extensions: {}", crate::pg::conn::error_chain(&e)))
    })?;
    rollout::citus::judge(target.kind, &facts).map_err(failed)?;
    Ok(client)
}

impl FleetMigrator<'_> {
    /// A session on `target` whose position (its latest migration, also
    /// returned) is recorded through `positioned` before anything runs.
    fn positioned(
        &self,
        target: &rollout::Target,
        positioned: &mut dyn FnMut(&rollout::Position) -> Result<(), String>,
    ) -> Result<(postgres::Client, Option<String>), rollout::Failed> {
        let mut client = reach(target)?;
        let status =
            migrate::status(&mut client, self.migrations).map_err(|e| failed(chain(&e)))?;
        let before = migrate::latest_applied(self.migrations, &status).map(|m| m.version.clone());
        positioned(&rollout::Position { before: before.clone() }).map_err(|e| {
            failed(format!(
                "its position could not be recorded in the control database ({e}); nothing ran"
            ))
        })?;
        Ok((client, before))
    }

    /// The latest migration applied to the database, when it can be read.
    fn latest(&self, client: &mut postgres::Client) -> Option<String> {
        let status = migrate::status(client, self.migrations).ok()?;
        migrate::latest_applied(self.migrations, &status).map(|m| m.version.clone())
    }

    /// The configuration a wave's database runs with: one pg_dump job each
    /// (the wave runs databases side by side; more only add sessions)
    /// unless [backup] jobs says otherwise.
    fn wave_config(&self) -> Config {
        let mut config = self.config.clone();
        config.backup.jobs.get_or_insert(1);
        config
    }

    /// `migrate --expand` or `--contract` of one database with every gate
    /// it has alone: what it did and the notes worth keeping, or why not.
    fn step(
        &self,
        client: &mut postgres::Client,
        target: &rollout::Target,
        step: Step<'_>,
    ) -> Result<(Stepped, Vec<String>), String> {
        let config = self.wave_config();
        let mut notes = Vec::new();
        let mut note = |line: &str| notes.push(line.to_string());
        let watchers = Watchers {
            assessment: Box::new(|_: &Assessment| {}),
            backup: &mut backup::Quiet,
            apply: &mut migrate::Quiet,
            note: &mut note,
        };
        let url = &target.url;
        let stepped =
            expand_step(client, &config, url, self.migrations, step, Waivers::default(), watchers)
                .map_err(|e| chain(&e))?;
        if let Some(suite) = stepped.verified.as_ref().filter(|s| !s.ok()) {
            return Err(format!(
                "done, but the verify suite failed afterwards ({}); the rollout's undo takes it back",
                suite.summary()
            ));
        }
        Ok((stepped, notes))
    }

    /// Method B for a database whose migrations have no down: the backup
    /// its latest migration recorded, restored with the current state kept.
    fn restore(
        &self,
        client: &mut postgres::Client,
        target: &rollout::Target,
        missing: &[String],
    ) -> Result<rollout::Undone, String> {
        let responder = self.config.responder(&target.url, None).map_err(|e| chain(&e))?;
        let reason = format!("backstop rollout --undo: no down for {}", missing.join(", "));
        let how = crate::respond::RestoreRun::default();
        responder.method_b(client, None, None, how, &reason, &mut QuietSteps).map_err(|e| {
            format!("no down for {}, and the restore failed: {}", missing.join(", "), chain(&e))
        })?;
        Ok(rollout::Undone { reverted: missing.to_vec(), how: "restore" })
    }
}

/// A method's steps, said nowhere: the rollout records the outcome.
struct QuietSteps;

impl crate::respond::Observer for QuietSteps {
    fn step(&mut self, _: crate::decide::Method, _: &crate::respond::Step) {}
    fn warning(&mut self, _: &str) {}
}

/// A failed migration in one line: which, where, why.
fn failure_words(f: &migrate::Failure) -> String {
    let at = match (f.statement, f.statements) {
        (Some(i), Some(n)) => format!(", statement {i}/{n}"),
        _ => String::new(),
    };
    let undone = if f.rolled_back { "rolled back" } else { "NOT all rolled back" };
    let stage = match f.stage {
        migrate::Stage::PreFlight => "pre-flight",
        migrate::Stage::Statement => "up",
        migrate::Stage::Verify => "verify.sql",
        migrate::Stage::ProtectedTable => "protected tables",
        migrate::Stage::Compared => "the rollback's check",
    };
    format!("migration {} ({stage}{at}) failed: {}; {undone}", f.version, f.message)
}
