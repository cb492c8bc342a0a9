//! The downs engine as a rehearsal's [`DownMaker`]: one run proves a
//! release, ups and downs (`rehearse::with_downs`), the downs of the
//! migrations that have none worked out and proved on the rehearsal's own
//! copy, in the same replay, and each proof kept in the store for
//! `migrate` to reuse ([`Maker::keep_made`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use postgres::Client;

use super::made::{DownMaker, Made, MadeDown, Mark};
use super::proofs::{self, Store, ToolHistory};
use super::run::{Replay, Start};
use super::{keep, Down, DownsError, Status};
use crate::copies::clone::CopyDb;
use crate::migrate::{Progress, Settings};
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// Works out and proves downs on a rehearsal's copy, remembering what it
/// knows of the copy between migrations while nothing else changes it.
pub struct Maker<'a> {
    /// The migrations as written (the rehearsal replays them with the
    /// calls that reach outside taken out).
    originals: &'a [Migration],
    pg_dump: Option<PathBuf>,
    /// What every maker of the rehearsal made, this one and those it gave
    /// a second copy (`beside`).
    made: Arc<Mutex<Record>>,
    /// Where the project's tool keeps its history, found once.
    history: Option<ToolHistory>,
    /// The copy whose history tables this maker has made sure of.
    ensured: Option<String>,
}

/// The downs made, and the major of the server and the role they were
/// proved on and as.
#[derive(Default)]
struct Record {
    downs: Vec<Down>,
    major: u32,
    /// The role they ran as, where no superuser.
    role: Option<String>,
}

impl<'a> Maker<'a> {
    pub fn new(originals: &'a [Migration]) -> Maker<'a> {
        Maker { originals, pg_dump: None, made: Arc::default(), history: None, ensured: None }
    }

    /// A maker for a second copy worked on beside this one's, whose downs
    /// join this one's.
    pub fn beside(&self) -> Maker<'a> {
        let made = Arc::clone(&self.made);
        Maker {
            originals: self.originals,
            pg_dump: self.pg_dump.clone(),
            made,
            history: None,
            ensured: None,
        }
    }

    fn made_lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `pg_dump` for the copy's server, found once.
    fn pg_dump(&mut self, client: &mut Client) -> Result<PathBuf, DownsError> {
        if let Some(p) = &self.pg_dump {
            return Ok(p.clone());
        }
        let tool_err = |e: crate::backup::BackupError| DownsError::Tool {
            tool: "pg_dump",
            why: crate::kit::error::chain(&e),
        };
        let server = crate::pg::server_version_num(client).map_err(|e| {
            DownsError::Db(crate::pg::DbError::new("reading the server version", e))
        })?;
        self.made_lock().major = crate::pg::bins::major_of_num(server);
        // The role the copy's sessions work as, where no superuser.
        self.made_lock().role = crate::copies::RunsAs::of(client)?.map(|r| r.role);
        let tools = crate::backup::tools::Tools::find().and_then(|t| t.fit(server));
        let path = tools.map_err(tool_err)?.dir.join("pg_dump");
        self.pg_dump = Some(path.clone());
        Ok(path)
    }

    /// Where the project's tool keeps its history, found once on the copy.
    fn history(&mut self, client: &mut Client) -> Result<&ToolHistory, DownsError> {
        if self.history.is_none() {
            let history = ToolHistory::of(self.originals).leaving_out(client).map_err(|e| {
                DownsError::Db(crate::pg::DbError::new("reading which tables the role may read", e))
            })?;
            self.history = Some(history);
        }
        Ok(self.history.as_ref().expect("set above"))
    }

    #[allow(clippy::too_many_arguments)]
    fn made(
        &mut self,
        client: &mut Client,
        copy: &CopyDb,
        picture: (&mut Tracked, &mut Prepared),
        known: &[Migration],
        m: &Migration,
        settings: &Settings,
        progress: &mut dyn Progress,
    ) -> Result<(Down, bool), DownsError> {
        let pg_dump = self.pg_dump(client)?;
        self.history(client)?;
        // A copy of a database Backstop never migrated has no history yet;
        // once made, its tables stay for the rest of the rehearsal.
        if self.ensured.as_deref() != Some(copy.dbname.as_str()) {
            crate::schema::ensure(client).map_err(|e| {
                DownsError::Db(crate::pg::DbError::new("creating Backstop's tables on the copy", e))
            })?;
            self.ensured = Some(copy.dbname.clone());
        }
        let mut replay = Replay::over(
            client,
            copy.clone(),
            pg_dump,
            (known, self.originals),
            settings,
            progress,
            picture,
            Start::Target,
        );
        let history = self.history.as_ref().expect("read above");
        let (start, before) = replay.ends(history)?;
        let (mut down, stops) = replay.one(m)?;
        down.start = Some(start);
        if !stops {
            let (end, now) = replay.ends_after_up(history)?;
            down.ended(end, &now, &before);
        }
        Ok((down, stops))
    }
}

impl DownMaker for Maker<'_> {
    fn up_and_down(
        &mut self,
        client: &mut Client,
        copy: &CopyDb,
        picture: (&mut Tracked, &mut Prepared),
        known: &[Migration],
        m: &Migration,
        settings: &Settings,
        progress: &mut dyn Progress,
    ) -> Result<MadeDown, DownsError> {
        let (down, stops) = self.made(client, copy, picture, known, m, settings, progress)?;
        let first_note = down.notes.first().cloned().unwrap_or_default();
        // Why it is not proved, where a note says it: the first note may be
        // only what a rollback does with it (a table's rows exported).
        let why_not = down.notes.iter().find(|n| n.starts_with("not proved")).cloned();
        let made = match down.status {
            Status::Computed if down.proved => MadeDown {
                made: if down.loses.is_empty() { Made::Proved } else { Made::ProvedLosing },
                // The same words as `downs` and `rollback`: a proved down
                // that drops what the up added, or adds back empty what it
                // dropped, names the values only a backup holds.
                detail: match down.loses.as_slice() {
                    [] => format!(
                        "{} statement(s) undo its up on the copy; kept for `migrate`",
                        down.sql.as_deref().map_or(0, count_statements)
                    ),
                    loses => format!(
                        "{} statement(s) undo its up on the copy, losing named values only the \
                         backup holds: {}; kept for `migrate`",
                        down.sql.as_deref().map_or(0, count_statements),
                        loses.join("; ")
                    ),
                },
                stops,
            },
            Status::Irreversible => MadeDown {
                made: Made::Irreversible,
                detail: if down.loses.is_empty() {
                    "rows the up changed cannot be put back by SQL".into()
                } else {
                    format!("it loses {}", down.loses.join("; "))
                },
                stops,
            },
            _ if stops && first_note.contains("the up fails") => {
                MadeDown { made: Made::UpFails, detail: first_note, stops }
            }
            _ => MadeDown {
                made: Made::Unprovable,
                detail: match why_not {
                    Some(why) => why,
                    None if first_note.is_empty() => "no down could be proved".into(),
                    None => first_note,
                },
                stops,
            },
        };
        self.made_lock().downs.push(down);
        Ok(made)
    }

    fn moved(&mut self) {}

    fn kept_down(&self, version: &str) -> Option<String> {
        let made = self.made_lock();
        let down = made.downs.iter().rev().find(|d| d.version == version)?;
        keep::class_of(down).and(down.sql.clone())
    }

    fn mark(
        &mut self,
        client: &mut Client,
        picture: (&mut Tracked, &mut Prepared),
    ) -> Result<Mark, DownsError> {
        // The server's major and the role, as the proofs it keeps say them.
        self.pg_dump(client)?;
        let history = self.history(client)?;
        super::run::ends_of(client, picture, history)
    }

    fn held(
        &mut self,
        client: &mut Client,
        picture: (&mut Tracked, &mut Prepared),
        m: &Migration,
        (start, before): Mark,
    ) -> Result<(), DownsError> {
        let history = self.history(client)?;
        let (end, now) = super::run::ends_of(client, picture, history)?;
        let mut down = Down::holds(m, &[]);
        down.start = Some(start);
        down.ended(end, &now, &before);
        self.made_lock().downs.push(down);
        Ok(())
    }
}

fn count_statements(sql: &str) -> usize {
    backstop_sql::split(sql).map_or(0, |s| s.len())
}

impl Maker<'_> {
    /// Keeps the proof of each down the rehearsal made (and of each own
    /// down that held) in `store`, which is saved: what to say of it.
    pub fn keep_made(&self, migrations: &[Migration], store: &mut Store) -> Vec<String> {
        let mut notes: Vec<String> =
            store.note.take().map(|n| format!("note: {n}")).into_iter().collect();
        let (mut kept, mut own) = (0, 0);
        let made = std::mem::take(&mut *self.made_lock());
        for d in &made.downs {
            let Some(m) = migrations.iter().find(|m| m.version == d.version) else { continue };
            if let Some(proof) = keep::proof_of(m, d, (made.major, made.role.clone()), "rehearse") {
                match (proof.class, &proof.own) {
                    (proofs::Class::Unprovable, _) => {}
                    (_, Some(proofs::Own::Holds)) => own += 1,
                    _ => kept += 1,
                }
                store.put(proof);
            }
        }
        let what = match (kept, own) {
            (0, own) => format!("{own} migration(s)' own down(s)"),
            (kept, 0) => format!("{kept} computed down(s)"),
            (kept, own) => format!("{kept} computed down(s) and {own} migration(s)' own"),
        };
        if store.has_unsaved() {
            match store.save() {
                Ok(()) if kept + own > 0 => notes.push(format!(
                    "kept the proof of {what} in {} for `migrate` to reuse",
                    store.path().map_or_else(|| "memory".into(), |p| p.display().to_string())
                )),
                Ok(()) => {}
                Err(e) => notes.push(format!("warning: the proofs were not kept: {e}")),
            }
        }
        notes
    }
}
