//! `backstop.rollouts`, `backstop.rollout_waves` and
//! `backstop.rollout_targets`, in the control database of a rollout: the
//! plan (which database goes in which wave, in which order), and each
//! database's state with its times and error. Every step writes here
//! before it starts and after it ends, so a rollout killed at any point
//! is resumed from what these rows say. URLs are kept with the password
//! masked: a resumed run finds the real ones in the configuration again.

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;

use super::Error;

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// A run is carrying it out (or was killed while it did).
    Running,
    /// Stopped: too many databases failed, or a trigger breached during a bake.
    Halted,
    /// Every wave ran.
    Done,
    /// `rollout --undo` is taking the databases back (or was killed while it did).
    Undoing,
    /// Every database that got the release went back.
    Undone,
}

/// Where a wave stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveState {
    Pending,
    Running,
    /// Its databases ran; the triggers are being watched for `bake`.
    Baking,
    Done,
    Halted,
    Undone,
}

/// Where one database stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Untouched by this rollout.
    Pending,
    /// Being migrated (or the run was killed while it was).
    Running,
    /// Migrated with every gate.
    Done,
    /// Its migration did not go through (unreachable, refused by a gate,
    /// rolled back); `error` says why.
    Failed,
    /// Being taken back by `rollout --undo`.
    Undoing,
    /// Taken back to the version it had before the rollout.
    Undone,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            fn parse(text: &str) -> $t {
                match text { $($s => <$t>::$v,)* _ => unreachable!("the table's CHECK allows no other state") }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(RolloutState { Running => "running", Halted => "halted", Done => "done", Undoing => "undoing", Undone => "undone" });
text_enum!(WaveState { Pending => "pending", Running => "running", Baking => "baking", Done => "done", Halted => "halted", Undone => "undone" });
text_enum!(TargetState { Pending => "pending", Running => "running", Done => "done", Failed => "failed", Undoing => "undoing", Undone => "undone" });

/// One rollout as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    pub state: RolloutState,
    /// The migrations it carries: `[[version, checksum], ...]` in order.
    pub release: serde_json::Value,
    /// The last version it applies (later files are not part of it).
    pub to_version: Option<String>,
    /// Why it halted, or what the last run said.
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// An expand rollout: the schema whose tables the expands serve.
    pub expand: Option<String>,
}

/// One wave of a rollout as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    pub idx: i32,
    pub name: String,
    pub parallel: i32,
    pub halt_after: i32,
    pub bake_ms: i64,
    pub state: WaveState,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What the bake decided on: the triggers' evidence.
    pub evidence: Option<serde_json::Value>,
}

/// One database of a rollout as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub wave: i32,
    pub position: i32,
    pub kind: String,
    /// With the password masked.
    pub url: String,
    pub state: TargetState,
    /// Whether `before_version` was read (it may be null: nothing applied).
    #[serde(skip)]
    pub positioned: bool,
    /// The latest migration applied before the rollout reached it.
    pub before_version: Option<String>,
    /// The latest applied when its run ended.
    pub after_version: Option<String>,
    /// The migrations this rollout's runs committed in it.
    pub applied: Vec<String>,
    pub error: Option<String>,
    pub undo_error: Option<String>,
    /// How many runs started on it.
    pub attempts: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A new rollout's plan, written in one transaction.
pub struct NewRollout<'a> {
    pub started_by: &'a str,
    pub release: serde_json::Value,
    pub to_version: Option<&'a str>,
    /// An expand rollout: the schema whose tables the expands serve.
    pub expand: Option<&'a str>,
    /// (name, parallel, halt_after, bake in ms), in order.
    pub waves: Vec<(&'a str, i32, i32, i64)>,
    /// (name, wave index, kind, masked URL), each wave's in order.
    pub targets: Vec<(&'a str, i32, &'a str, String)>,
}

/// Whether this database holds rollouts (an older schema, or none, does not).
pub fn recorded(client: &mut impl GenericClient) -> Result<bool, Error> {
    super::has(client, "backstop.rollouts")
}

/// Writes a new rollout's plan; its id.
pub fn create(client: &mut postgres::Client, new: &NewRollout<'_>) -> Result<i64, Error> {
    let mut tx = client.transaction()?;
    let id: i64 = tx
        .query_one(
            "insert into backstop.rollouts (started_by, state, release, to_version, expand)
             values ($1, 'running', $2, $3, $4) returning id",
            &[&new.started_by, &new.release, &new.to_version, &new.expand],
        )?
        .get(0);
    for (idx, (name, parallel, halt_after, bake_ms)) in new.waves.iter().enumerate() {
        tx.execute(
            "insert into backstop.rollout_waves (rollout, idx, name, parallel, halt_after, bake_ms, state)
             values ($1, $2, $3, $4, $5, $6, 'pending')",
            &[&id, &(idx as i32), name, parallel, halt_after, bake_ms],
        )?;
    }
    let insert = tx.prepare(
        "insert into backstop.rollout_targets (rollout, name, wave, position, kind, url, state)
         values ($1, $2, $3, $4, $5, $6, 'pending')",
    )?;
    for (position, (name, wave, kind, url)) in new.targets.iter().enumerate() {
        tx.execute(&insert, &[&id, name, wave, &(position as i32), kind, url])?;
    }
    tx.commit()?;
    Ok(id)
}

const ROLLOUT_COLUMNS: &str =
    "id, started_at, started_by, state, release, to_version, reason, updated_at, finished_at, expand";

fn rollout(r: &postgres::Row) -> Rollout {
    Rollout {
        id: r.get(0),
        started_at: r.get(1),
        started_by: r.get(2),
        state: RolloutState::parse(r.get(3)),
        release: r.get(4),
        to_version: r.get(5),
        reason: r.get(6),
        updated_at: r.get(7),
        finished_at: r.get(8),
        expand: r.get(9),
    }
}

/// The latest rollout, if any was ever recorded here.
pub fn latest(client: &mut impl GenericClient) -> Result<Option<Rollout>, Error> {
    if !recorded(client)? {
        return Ok(None);
    }
    let row = client.query_opt(
        &format!("select {ROLLOUT_COLUMNS} from backstop.rollouts order by id desc limit 1"),
        &[],
    )?;
    Ok(row.as_ref().map(rollout))
}

/// Rollout `id`.
pub fn get(client: &mut impl GenericClient, id: i64) -> Result<Option<Rollout>, Error> {
    let row = client.query_opt(
        &format!("select {ROLLOUT_COLUMNS} from backstop.rollouts where id = $1"),
        &[&id],
    )?;
    Ok(row.as_ref().map(rollout))
}

/// The waves of rollout `id`, in order.
pub fn waves(client: &mut impl GenericClient, id: i64) -> Result<Vec<Wave>, Error> {
    let rows = client.query(
        "select idx, name, parallel, halt_after, bake_ms, state, started_at, finished_at, evidence
           from backstop.rollout_waves where rollout = $1 order by idx",
        &[&id],
    )?;
    Ok(rows
        .iter()
        .map(|r| Wave {
            idx: r.get(0),
            name: r.get(1),
            parallel: r.get(2),
            halt_after: r.get(3),
            bake_ms: r.get(4),
            state: WaveState::parse(r.get(5)),
            started_at: r.get(6),
            finished_at: r.get(7),
            evidence: r.get(8),
        })
        .collect())
}

/// The databases of rollout `id`, wave by wave, each wave's in order.
pub fn targets(client: &mut impl GenericClient, id: i64) -> Result<Vec<Target>, Error> {
    let rows = client.query(
        "select name, wave, position, kind, url, state, positioned, before_version, after_version,
                applied, error, undo_error, attempts, started_at, finished_at
           from backstop.rollout_targets where rollout = $1 order by wave, position",
        &[&id],
    )?;
    Ok(rows
        .iter()
        .map(|r| Target {
            name: r.get(0),
            wave: r.get(1),
            position: r.get(2),
            kind: r.get(3),
            url: r.get(4),
            state: TargetState::parse(r.get(5)),
            positioned: r.get(6),
            before_version: r.get(7),
            after_version: r.get(8),
            applied: r.get(9),
            error: r.get(10),
            undo_error: r.get(11),
            attempts: r.get(12),
            started_at: r.get(13),
            finished_at: r.get(14),
        })
        .collect())
}

/// Sets the rollout's state, with why (none: the reason is cleared).
pub fn set_state(
    client: &mut impl GenericClient,
    id: i64,
    state: RolloutState,
    reason: Option<&str>,
) -> Result<(), Error> {
    let finished = matches!(state, RolloutState::Done | RolloutState::Undone);
    client.execute(
        "update backstop.rollouts
            set state = $2, reason = $3, updated_at = clock_timestamp(),
                finished_at = case when $4 then clock_timestamp() end
          where id = $1",
        &[&id, &state.as_str(), &reason, &finished],
    )?;
    Ok(())
}

/// Sets a wave's state; `evidence` (what a bake decided on) when given.
pub fn set_wave(
    client: &mut impl GenericClient,
    id: i64,
    idx: i32,
    state: WaveState,
    evidence: Option<&serde_json::Value>,
) -> Result<(), Error> {
    client.execute(
        "update backstop.rollout_waves
            set state = $3, evidence = coalesce($4, evidence),
                started_at = case when $3 = 'running' then coalesce(started_at, clock_timestamp()) else started_at end,
                finished_at = case when $3 in ('done', 'halted', 'undone') then clock_timestamp() end
          where rollout = $1 and idx = $2",
        &[&id, &idx, &state.as_str(), &evidence],
    )?;
    Ok(())
}

/// A run starts on a database: `running`, one more attempt.
pub fn target_running(client: &mut impl GenericClient, id: i64, name: &str) -> Result<(), Error> {
    client.execute(
        "update backstop.rollout_targets
            set state = 'running', attempts = attempts + 1, error = null,
                started_at = clock_timestamp(), finished_at = null, updated_at = clock_timestamp()
          where rollout = $1 and name = $2",
        &[&id, &name],
    )?;
    Ok(())
}

/// The database's latest applied version, read before anything ran on
/// it; kept from the first run only (a resumed run reads it after the
/// killed one may have committed).
pub fn target_positioned(
    client: &mut impl GenericClient,
    id: i64,
    name: &str,
    before: Option<&str>,
) -> Result<(), Error> {
    client.execute(
        "update backstop.rollout_targets
            set before_version = case when positioned then before_version else $3 end,
                positioned = true, updated_at = clock_timestamp()
          where rollout = $1 and name = $2",
        &[&id, &name, &before],
    )?;
    Ok(())
}

/// A run on a database ended: `done` or `failed`, the versions it
/// committed added to those of earlier runs, the version it stands at.
pub fn target_finished(
    client: &mut impl GenericClient,
    id: i64,
    name: &str,
    state: TargetState,
    applied: &[String],
    after: Option<&str>,
    error: Option<&str>,
) -> Result<(), Error> {
    client.execute(
        "update backstop.rollout_targets
            set state = $3, error = $6, after_version = coalesce($5, after_version),
                applied = array(select distinct v from unnest(applied || $4::text[]) v order by v),
                finished_at = clock_timestamp(), updated_at = clock_timestamp()
          where rollout = $1 and name = $2",
        &[&id, &name, &state.as_str(), &applied, &after, &error],
    )?;
    Ok(())
}

/// An undo starts on a database, or ended: `undoing`, then `undone` (or
/// back to `previous` with the undo's error).
pub fn target_undo(
    client: &mut impl GenericClient,
    id: i64,
    name: &str,
    state: TargetState,
    undo_error: Option<&str>,
) -> Result<(), Error> {
    client.execute(
        "update backstop.rollout_targets
            set state = $3, undo_error = $4, updated_at = clock_timestamp(),
                after_version = case when $3 = 'undone' then before_version else after_version end
          where rollout = $1 and name = $2",
        &[&id, &name, &state.as_str(), &undo_error],
    )?;
    Ok(())
}
