//! `backstop`: PostgreSQL migrations that are safe to run and safe to undo.

mod commands;
mod render;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Safe PostgreSQL migrations: guarded, audited, reversible.
#[derive(Debug, Parser)]
#[command(name = "backstop", version, about, propagate_version = true)]
struct Cli {
    /// Config file (default: ./backstop.toml if present).
    #[arg(long, global = true, env = "BACKSTOP_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// `--database-url` before the subcommand (`backstop --database-url URL
    /// status`): clap hands a global option's value to the subcommand's
    /// own [`Connection`], which every command reads.
    #[command(flatten)]
    _conn: Connection,
    #[command(subcommand)]
    command: Command,
}

/// The top-level words: what a team does, each a noun group where it holds
/// several commands (`backup`, `flags`, `respond`, `data`, `history`).
/// The words that were commands of their own before the groups still
/// answer, hidden, for a release ([`commands::groups::OLD_WORDS`]).
#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented backstop.toml and a migrations/ folder.
    Init(commands::init::Args),
    /// Create migrations/<UTC timestamp>_<name>/ with up.sql, down.sql, verify.sql.
    New(commands::new::Args),
    /// Show applied, pending and drifted migrations (exit 1 on drift).
    Status(commands::status::Args),
    /// Assess the risk of pending migrations: findings and a GO / CONDITIONAL GO / NO-GO verdict.
    Check(commands::check::Args),
    /// List the check's rules, or show one rule's docs and examples.
    Explain(commands::explain::Args),
    /// Apply pending migrations in one guarded transaction.
    Migrate(commands::migrate::Args),
    /// Revert applied migrations with their down files, the schema checked before COMMIT.
    Rollback(commands::rollback::Args),
    /// Carry the migrations to every database of [[targets]] in waves, each with its gates (--resume, --undo, status).
    Rollout(commands::rollout::Args),
    /// Rehearse pending migrations on a throwaway copy: up, down, up, failures, timed.
    Rehearse(commands::rehearse::Args),
    /// Compute downs for migrations without one (or fix defective ones), proved on a replayed copy.
    Downs(commands::downs::Args),
    /// Verified backups: create, list, verify, prune; restore, freeze, unfreeze, drill.
    Backup(commands::groups::Backup),
    /// Release flags: list, enable, disable, kill a release, ramp, history, sync; serve them.
    Flags(commands::groups::Flags),
    /// When production goes bad: decide, watch the triggers, carry out method A, B or C, tell the incident.
    Respond(commands::groups::Respond),
    /// Rows between databases: compare, clear, sync.
    Data(commands::groups::Data),
    /// The record of what ran: adopt another tool's history, repair a checksum.
    History(commands::groups::History),
    /// Run the verification suite of [verify] (exit 1 when a critical check fails).
    Verify(commands::verify::Args),
    /// Play the v1 -> v2 migration story on a throwaway cluster.
    Demo(commands::demo::Args),
    /// Print a shell's completion script (`--help`: the shells, and where each script goes).
    Completions(commands::completions::Args),
    /// Print the man page (roff), or write one page per command with --dir.
    #[command(hide = true)]
    Man(commands::man::Args),
    /// `backstop respond decide`, by its old word.
    #[command(hide = true)]
    Decide(commands::decide::Args),
    /// `backstop respond watch`, by its old word.
    #[command(hide = true)]
    Watch(commands::watch::Args),
    /// `backstop respond incident`, by its old word.
    #[command(hide = true)]
    Incident(commands::incident::Args),
    /// `backstop data compare`, by its old word.
    #[command(hide = true)]
    Compare(commands::compare::Args),
    /// `backstop data clear`, by its old word.
    #[command(hide = true)]
    Clear(commands::clear::Args),
    /// `backstop data sync`, by its old word.
    #[command(hide = true)]
    Sync(commands::sync::Args),
    /// `backstop history adopt`, by its old word.
    #[command(hide = true)]
    Adopt(commands::adopt::Args),
    /// `backstop history repair`, by its old word.
    #[command(hide = true)]
    Repair(commands::repair::Args),
    /// `backstop backup restore`, by its old word.
    #[command(hide = true)]
    Restore(commands::restore::Args),
    /// `backstop backup freeze`, by its old word.
    #[command(hide = true)]
    Freeze(commands::freeze::Args),
    /// `backstop backup unfreeze`, by its old word.
    #[command(hide = true)]
    Unfreeze(commands::unfreeze::Args),
    /// `backstop backup drill`, by its old word.
    #[command(hide = true)]
    Drill(commands::drill::Args),
    /// `backstop flags serve`, by its old word.
    #[command(hide = true)]
    Serve(commands::serve::Args),
}

/// `--database-url`, shared by every command that talks to a database;
/// global, so it may also come before the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Database URL; overrides [database] url in backstop.toml.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// For programs: one JSON document on stdout.
    Json,
}

/// `--format`, shared by commands with machine-readable output.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) if asked_json_raw() && e.use_stderr() => {
            // A usage error of a command asked for JSON: still one document.
            let _ = write!(std::io::stderr(), "{}", e.render());
            let message = e.kind().to_string();
            return json_error(&message, &[e.render().to_string()], 2);
        }
        Err(e) => e.exit(),
    };
    let json = asked_json(&matches);
    commands::groups::note_old_word(matches.subcommand_name());
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Init(args) => commands::init::run(args, config),
        Command::New(args) => commands::new::run(args, config),
        Command::Status(args) => commands::status::run(args, config),
        Command::Migrate(args) => commands::migrate::run(args, config),
        Command::Rollback(args) => commands::rollback::run(args, config),
        Command::Rollout(args) => commands::rollout::run(args, config),
        Command::Rehearse(args) => commands::rehearse::run(args, config),
        Command::Downs(args) => commands::downs::run(args, config),
        Command::Repair(args) => commands::repair::run(args, config),
        Command::Adopt(args) => commands::adopt::run(args, config),
        Command::Flags(group) => commands::groups::flags(group, config),
        Command::Decide(args) => commands::decide::run(args, config),
        Command::Watch(args) => commands::watch::run(args, config),
        Command::Incident(args) => commands::incident::run(args, config),
        Command::Compare(args) => commands::compare::run(args, config),
        Command::Clear(args) => commands::clear::run(args, config),
        Command::Sync(args) => commands::sync::run(args),
        Command::Freeze(args) => commands::freeze::run(args, config),
        Command::Serve(args) => commands::serve::run(args, config),
        Command::Drill(args) => commands::drill::run(args, config),
        Command::Demo(args) => commands::demo::run(args),
        Command::Check(args) => commands::check::run(args, config),
        Command::Explain(args) => commands::explain::run(args),
        Command::Backup(group) => commands::groups::backup(group, config),
        Command::Restore(args) => commands::restore::run(args, config),
        Command::Unfreeze(args) => commands::unfreeze::run(args, config),
        Command::Verify(args) => commands::verify::run(args, config),
        Command::Respond(group) => commands::groups::respond(group, config),
        Command::Data(group) => commands::groups::data(group, config),
        Command::History(group) => commands::groups::history(group, config),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
        Command::Man(args) => commands::man::run(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            let code = commands::exit_code(&err);
            if json && !commands::printed_json() {
                let causes: Vec<String> = err.chain().map(|c| c.to_string()).collect();
                return json_error(&format!("{err:#}"), &causes, code);
            }
            ExitCode::from(code)
        }
    }
}

/// Whether the command (or a subcommand of it) was given `--format json`.
fn asked_json(matches: &clap::ArgMatches) -> bool {
    let here = matches
        .try_get_raw("format")
        .ok()
        .flatten()
        .is_some_and(|mut values| values.any(|v| v == "json"));
    here || matches.subcommand().is_some_and(|(_, sub)| asked_json(sub))
}

/// `--format json` among the words of a command line clap refused.
fn asked_json_raw() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--format=json")
        || args.windows(2).any(|w| w[0] == "--format" && w[1] == "json")
}

/// The one JSON document of a command that failed before it could print
/// its own: `{"error": {"message", "causes", "exit_code"}}` on stdout, the
/// exit code unchanged.
fn json_error(message: &str, causes: &[String], code: u8) -> ExitCode {
    let doc = serde_json::json!({
        "error": { "message": message, "causes": causes, "exit_code": code }
    });
    let _ = commands::print_json(&doc);
    ExitCode::from(code)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
