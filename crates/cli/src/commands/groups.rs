//! The noun groups among the top-level words: `backup` (the backups' own
//! commands and those that use a backup), `flags` (the flags' own and
//! `serve`), `respond` (deciding and answering when production goes bad),
//! `data` (rows between databases) and `history` (the record of what
//! ran). Each command keeps its module; a group only names and dispatches
//! them. The words that were commands of their own still answer, hidden,
//! for a release ([`OLD_WORDS`]).

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

/// Each word that was a command of its own, and the words that now say it.
pub const OLD_WORDS: &[(&str, &str)] = &[
    ("decide", "respond decide"),
    ("watch", "respond watch"),
    ("incident", "respond incident"),
    ("compare", "data compare"),
    ("clear", "data clear"),
    ("sync", "data sync"),
    ("adopt", "history adopt"),
    ("repair", "history repair"),
    ("restore", "backup restore"),
    ("freeze", "backup freeze"),
    ("unfreeze", "backup unfreeze"),
    ("drill", "backup drill"),
    ("serve", "flags serve"),
];

/// Says on a terminal that `word`, the command line's top-level word, is
/// an old one and what it is now; scripts (no terminal) are left as they
/// run, their output unchanged.
pub fn note_old_word(word: Option<&str>) {
    let Some((old, new)) = OLD_WORDS.iter().find(|(old, _)| Some(*old) == word) else {
        return;
    };
    if std::io::stderr().is_terminal() {
        eprintln!(
            "note: `backstop {old}` is now `backstop {new}`; the old word answers until a later \
             release"
        );
    }
}

/// `backstop backup create|list|verify|prune|restore|freeze|unfreeze|drill`.
#[derive(Debug, clap::Args)]
pub struct Backup {
    #[command(subcommand)]
    command: BackupSub,
}

#[derive(Debug, clap::Subcommand)]
enum BackupSub {
    #[command(flatten)]
    Own(super::backup::Sub),
    /// Restore a backup over the database (writes frozen, current state kept).
    Restore(super::restore::Args),
    /// Stop a role's writes: its write grants revoked, exactly which recorded for unfreeze.
    Freeze(super::freeze::Args),
    /// Lift a write freeze left by an interrupted restore.
    Unfreeze(super::unfreeze::Args),
    /// Play the runbook's rollbacks on a copy of the latest backup, timed against [drill]; --list, --due.
    Drill(super::drill::Args),
}

pub fn backup(group: Backup, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match group.command {
        BackupSub::Own(command) => super::backup::run(command, config),
        BackupSub::Restore(args) => super::restore::run(args, config),
        BackupSub::Freeze(args) => super::freeze::run(args, config),
        BackupSub::Unfreeze(args) => super::unfreeze::run(args, config),
        BackupSub::Drill(args) => super::drill::run(args, config),
    }
}

/// `backstop flags list|enable|disable|kill|ramp|history|sync|serve`.
#[derive(Debug, clap::Args)]
pub struct Flags {
    #[command(subcommand)]
    command: FlagsSub,
}

#[derive(Debug, clap::Subcommand)]
enum FlagsSub {
    #[command(flatten)]
    Own(super::flags::Sub),
    /// Serve the flags to applications (flagd JSON, OFREP, event stream), a status page and metrics.
    Serve(super::serve::Args),
}

pub fn flags(group: Flags, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match group.command {
        FlagsSub::Own(command) => super::flags::run(command, config),
        FlagsSub::Serve(args) => super::serve::run(args, config),
    }
}

/// `backstop respond decide|watch|incident|method`.
#[derive(Debug, clap::Args)]
pub struct Respond {
    #[command(subcommand)]
    command: RespondSub,
}

#[derive(Debug, clap::Subcommand)]
enum RespondSub {
    /// The rollback decision on recorded samples: verdict, method and evidence (exit 1 on rollback).
    Decide(super::decide::Args),
    /// Sample the [[triggers]], decide, and carry out methods up to --auto (A, B or C).
    Watch(super::watch::Args),
    /// Incident texts from the timeline: report, Slack, status page, users' e-mail.
    Incident(super::incident::Args),
    /// Carry out a rollback method of the runbook: A flags off, B a restore, C the full rollback.
    Method(super::method::Args),
}

pub fn respond(group: Respond, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match group.command {
        RespondSub::Decide(args) => super::decide::run(args, config),
        RespondSub::Watch(args) => super::watch::run(args, config),
        RespondSub::Incident(args) => super::incident::run(args, config),
        RespondSub::Method(args) => super::method::run(args.into(), config),
    }
}

/// `backstop data compare|clear|sync`.
#[derive(Debug, clap::Args)]
pub struct Data {
    #[command(subcommand)]
    command: DataSub,
}

#[derive(Debug, clap::Subcommand)]
enum DataSub {
    /// Compare two databases table by table, every column; the rows that differ named by key.
    Compare(super::compare::Args),
    /// Empty every table of a database in one transaction, after a verified backup (dry run unless --yes).
    Clear(super::clear::Args),
    /// Bring the rows that differ from one database into another by key, in one transaction (dry run unless --yes).
    Sync(super::sync::Args),
}

pub fn data(group: Data, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match group.command {
        DataSub::Compare(args) => super::compare::run(args, config),
        DataSub::Clear(args) => super::clear::run(args, config),
        DataSub::Sync(args) => super::sync::run(args),
    }
}

/// `backstop history adopt|repair`.
#[derive(Debug, clap::Args)]
pub struct History {
    #[command(subcommand)]
    command: HistorySub,
}

#[derive(Debug, clap::Subcommand)]
enum HistorySub {
    /// Take over another migration tool's history (dry run unless --yes).
    Adopt(super::adopt::Args),
    /// Accept the current file's checksum for an applied migration (audited).
    Repair(super::repair::Args),
}

pub fn history(group: History, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match group.command {
        HistorySub::Adopt(args) => super::adopt::run(args, config),
        HistorySub::Repair(args) => super::repair::run(args, config),
    }
}
