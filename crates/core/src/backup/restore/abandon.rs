//! Giving up an unfinished restore (`restore --abandon`) where that leaves
//! the database as it was: a swap that never swapped (the database was
//! never touched: the restored copy is dropped), or a restore in place that
//! had not begun to change it. The journal is forgotten, the freeze the
//! restore set is lifted, and the abandonment is audited. A restore that
//! had already changed the database is refused: finishing it, or restoring
//! its pre-restore backup, are the ways back.

use serde_json::json;

use super::databases::{database_exists, maintenance};
use super::journal::{journal, Journal, Step, Strategy};
use crate::backup::{BackupError, Store};
use crate::freeze;
use crate::schema::events;

/// What abandoning did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Abandoned {
    pub backup_id: String,
    /// The restored copy dropped, if there was one.
    pub dropped: Option<String>,
    /// Whether a write freeze was lifted.
    pub unfrozen: bool,
}

/// Abandons the unfinished restore of the database at `url`; `None` when
/// there is none. A swap is looked at from the maintenance database first
/// (it may have stopped with the target closed to sessions, or after its
/// renames committed: then it is refused). The journal goes last, once the
/// abandonment is audited, so that a run that fails half-way can be
/// repeated.
pub fn abandon(url: &str, store: &Store) -> Result<Option<Abandoned>, BackupError> {
    let Some(j) = journal(store)? else { return Ok(None) };
    let swapped = j.strategy == Strategy::Swap && super::swap::reopen(url, store, &j)?;
    refuse_past_the_point_of_no_return(&j, swapped)?;
    let mut dropped = None;
    if j.strategy == Strategy::Physical {
        super::physical::remove_copy(&j).map_err(|cleanup| {
            BackupError::Refused(format!("could not remove the restore's copy: {cleanup}"))
        })?;
        dropped = j
            .physical
            .as_ref()
            .filter(|p| p.incoming.is_none())
            .map(|p| p.restoring(&j.restore_id).display().to_string());
    }
    if let Some(temp) = j.temp_database.as_deref().filter(|t| *t != j.database) {
        let mut admin = maintenance(url)?;
        if database_exists(&mut admin, temp)? {
            super::databases::drop_database(&mut admin, temp)
                .map_err(BackupError::db("dropping the restored copy"))?;
            dropped = Some(temp.to_string());
        }
    }
    if j.strategy == Strategy::Swap {
        super::swap::keep_incoming_frozen(url, store, &j)?;
    }
    let mut client = crate::pg::connect(url, "backstop")?;
    let unfrozen = freeze::unfreeze(&mut client)?.is_some();
    let event = events::Event {
        kind: "restore",
        outcome: "abandoned",
        versions: Vec::new(),
        details: json!({
            "backup_id": j.backup_id,
            "restore_id": j.restore_id,
            "step": j.step,
            "dropped": dropped,
        }),
    };
    events::record_if_logged(&mut client, &event)
        .map_err(BackupError::db("writing the abandon event"))?;
    Journal::remove(store)?;
    Ok(Some(Abandoned { backup_id: j.backup_id, dropped, unfrozen }))
}

/// Whether the unfinished restore `j` of the database at `url` can still
/// be given up: it has not begun to change the database. A swap is also
/// looked at on the server, changing nothing there: its renames may have
/// committed after its journal was last written (its snapshot database
/// exists then). Where the server cannot be asked, the journal says.
pub fn abandonable(url: &str, j: &Journal) -> bool {
    if !by_journal(j) {
        return false;
    }
    let swapped = || -> Result<bool, BackupError> {
        let Some(snapshot) = &j.snapshot_database else { return Ok(false) };
        database_exists(&mut maintenance(url)?, snapshot)
    };
    j.strategy != Strategy::Swap || !swapped().unwrap_or(false)
}

/// Whether `j`'s journal says it has not begun to change the database.
fn by_journal(j: &Journal) -> bool {
    match j.strategy {
        Strategy::Swap => j.step != Step::Swapped,
        Strategy::Physical => !super::physical::past_no_return(j),
        Strategy::InPlace => !matches!(j.step, Step::Restoring | Step::Restored | Step::Swapped),
    }
}

/// A restore that may have changed the database cannot be given up; a
/// swap has when its renames committed (`swapped`), whatever its journal
/// says.
fn refuse_past_the_point_of_no_return(j: &Journal, swapped: bool) -> Result<(), BackupError> {
    if !swapped && by_journal(j) {
        return Ok(());
    }
    let back = match &j.snapshot_id {
        Some(s) => format!(", or restore its pre-restore backup {s} to go back"),
        None => String::new(),
    };
    let how_far = if swapped {
        "its databases were already swapped: the database is the restored one".to_string()
    } else {
        format!(
            "it stopped at \"{}\"; abandoning it would leave the database half-restored",
            j.step
        )
    };
    Err(BackupError::Refused(format!(
        "the restore of backup {} had already changed database {} ({how_far}); finish it with \
         `backstop backup restore {} --resume`{back}",
        j.backup_id, j.database, j.backup_id
    )))
}
