//! `backstop.ramps`: each release ramp as recorded, its plan (the shares
//! and the time between them), the step it is at with when that step was
//! served and when the next one is due, how it ended, and the latest
//! judgement of the triggers. A ramp is carried on by one process at a
//! time: that process holds a session advisory lock keyed by the ramp's
//! id, which PostgreSQL drops with the session when the process dies, so
//! a restarted `flags ramp` or a `watch` can take it over. The rules (what
//! a step does, when it is due) are the flags domain's; this is where they
//! are read and written.

use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde::Serialize;
use serde_json::Value;

use super::Error;

/// The first key of the advisory lock a ramp's carrier holds: "ramp".
const DRIVE_CLASS: i32 = i32::from_be_bytes(*b"ramp");

/// Where a ramp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RampState {
    /// Moving on, step by step.
    Running,
    /// Reached its last step.
    Done,
    /// Stopped by a breach or by its flags going off: the release is off.
    Killed,
    /// Stopped by a person; the share stays where it was.
    Aborted,
}

impl RampState {
    pub fn as_str(self) -> &'static str {
        match self {
            RampState::Running => "running",
            RampState::Done => "done",
            RampState::Killed => "killed",
            RampState::Aborted => "aborted",
        }
    }

    fn parse(text: &str) -> RampState {
        match text {
            "running" => RampState::Running,
            "done" => RampState::Done,
            "killed" => RampState::Killed,
            _ => RampState::Aborted,
        }
    }
}

/// One ramp, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ramp {
    pub id: i64,
    pub release: String,
    /// The shares, in per cent, rising.
    pub steps: Vec<i32>,
    /// The least time between two steps, in milliseconds.
    pub every_ms: i64,
    /// The index in `steps` of the share served now.
    pub step: i32,
    /// When that share was first served.
    pub step_at: DateTime<Utc>,
    /// When the next step is due; none at the last step.
    pub next_at: Option<DateTime<Utc>>,
    pub state: RampState,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    pub reason: String,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub end_note: Option<String>,
    /// Who last took it over to carry it on (`user@host pid N`).
    pub driven_by: Option<String>,
    /// When the triggers were last judged for it, and what they said.
    pub judged_at: Option<DateTime<Utc>>,
    pub judgement: Option<Value>,
    /// The database's clock when the row was read: due times are compared
    /// with it, not with the local clock.
    pub as_of: DateTime<Utc>,
}

const COLUMNS: &str = "id, release, steps, every_ms, step, step_at, next_at, state, started_at,
    started_by, reason, ended_at, ended_by, end_note, driven_by, judged_at, judgement,
    clock_timestamp()";

fn ramp(r: &postgres::Row) -> Ramp {
    Ramp {
        id: r.get(0),
        release: r.get(1),
        steps: r.get(2),
        every_ms: r.get(3),
        step: r.get(4),
        step_at: r.get(5),
        next_at: r.get(6),
        state: RampState::parse(r.get(7)),
        started_at: r.get(8),
        started_by: r.get(9),
        reason: r.get(10),
        ended_at: r.get(11),
        ended_by: r.get(12),
        end_note: r.get(13),
        driven_by: r.get(14),
        judged_at: r.get(15),
        judgement: r.get(16),
        as_of: r.get(17),
    }
}

/// A ramp to record, at its first step (already served by the caller).
#[derive(Debug, Clone)]
pub struct NewRamp<'a> {
    pub release: &'a str,
    pub steps: &'a [i32],
    pub every_ms: i64,
    pub by: &'a str,
    pub reason: &'a str,
}

/// Records a ramp at its first step, running (done when that step is its
/// only one); its id.
pub fn insert(client: &mut impl GenericClient, r: &NewRamp<'_>) -> Result<i64, Error> {
    let row = client.query_one(
        "insert into backstop.ramps (release, steps, every_ms, step, step_at, next_at, state,
                                     started_by, reason, ended_at, ended_by, end_note)
         select $1, $2, $3::bigint, 0, clock_timestamp(),
                case when last then null else clock_timestamp() + $3::bigint * interval '1 millisecond' end,
                case when last then 'done' else 'running' end,
                $4, $5,
                case when last then clock_timestamp() end,
                case when last then $4 end,
                case when last then 'reached its last step' end
           from (select cardinality($2::integer[]) = 1 as last) s
         returning id",
        &[&r.release, &r.steps, &r.every_ms, &r.by, &r.reason],
    )?;
    Ok(row.get(0))
}

/// The running ramps, oldest first; none when the table does not exist yet.
pub fn running(client: &mut impl GenericClient) -> Result<Vec<Ramp>, Error> {
    if !super::has(client, "backstop.ramps")? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        &format!("select {COLUMNS} from backstop.ramps where state = 'running' order by id"),
        &[],
    )?;
    Ok(rows.iter().map(ramp).collect())
}

/// The ramp of `release` that runs, else its newest.
pub fn latest(client: &mut impl GenericClient, release: &str) -> Result<Option<Ramp>, Error> {
    if !super::has(client, "backstop.ramps")? {
        return Ok(None);
    }
    let row = client.query_opt(
        &format!(
            "select {COLUMNS} from backstop.ramps where release = $1
              order by state = 'running' desc, id desc limit 1"
        ),
        &[&release],
    )?;
    Ok(row.as_ref().map(ramp))
}

/// The ramp `id`, locked for a change in this transaction.
pub fn lock(client: &mut impl GenericClient, id: i64) -> Result<Option<Ramp>, Error> {
    let row = client.query_opt(
        &format!("select {COLUMNS} from backstop.ramps where id = $1 for update"),
        &[&id],
    )?;
    Ok(row.as_ref().map(ramp))
}

/// Moves ramp `id` to step `to`, served from now; at its last step it is
/// done. Whether it moved: only a running ramp at step `from` does, so two
/// carriers never serve one step twice nor skip one.
pub fn set_step(
    client: &mut impl GenericClient,
    id: i64,
    from: i32,
    to: i32,
    by: &str,
) -> Result<bool, Error> {
    let n = client.execute(
        "update backstop.ramps
            set step = $3, step_at = clock_timestamp(),
                next_at = case when $3 + 1 >= cardinality(steps) then null
                               else clock_timestamp() + every_ms * interval '1 millisecond' end,
                state = case when $3 + 1 >= cardinality(steps) then 'done' else state end,
                ended_at = case when $3 + 1 >= cardinality(steps) then clock_timestamp() end,
                ended_by = case when $3 + 1 >= cardinality(steps) then $4 end,
                end_note = case when $3 + 1 >= cardinality(steps) then 'reached its last step' end
          where id = $1 and step = $2 and state = 'running' and $3 < cardinality(steps)",
        &[&id, &from, &to, &by],
    )?;
    Ok(n == 1)
}

/// Ends running ramp `id` as `state` (killed or aborted); whether it was running.
pub fn end(
    client: &mut impl GenericClient,
    id: i64,
    state: RampState,
    by: &str,
    note: &str,
) -> Result<bool, Error> {
    let n = client.execute(
        "update backstop.ramps
            set state = $2, next_at = null, ended_at = clock_timestamp(), ended_by = $3, end_note = $4
          where id = $1 and state = 'running'",
        &[&id, &state.as_str(), &by, &note],
    )?;
    Ok(n == 1)
}

/// Keeps the latest judgement of the triggers for ramp `id`.
pub fn judged(client: &mut impl GenericClient, id: i64, judgement: &Value) -> Result<(), Error> {
    client.execute(
        "update backstop.ramps set judged_at = clock_timestamp(), judgement = $2 where id = $1",
        &[&id, &judgement],
    )?;
    Ok(())
}

/// Takes ramp `id` over for this session, recorded as `by`; whether it
/// could (no other session carries it on). Held until [`let_go`] or the
/// session ends.
pub fn take_over(client: &mut impl GenericClient, id: i64, by: &str) -> Result<bool, Error> {
    let got: bool = client
        .query_one(
            "select pg_try_advisory_lock($1, ($2::bigint & 2147483647)::integer)",
            &[&DRIVE_CLASS, &id],
        )?
        .get(0);
    if got {
        client.execute("update backstop.ramps set driven_by = $2 where id = $1", &[&id, &by])?;
    }
    Ok(got)
}

/// The session that carries ramp `id` on now (holds its advisory lock),
/// read live from `pg_locks`: `driven_by` names the process that last
/// took it, which may since have died and been followed by another.
pub fn holder(
    client: &mut impl GenericClient,
    id: i64,
) -> Result<Option<crate::pg::lock::LockHolder>, Error> {
    crate::pg::lock::holder_of_pair(client, DRIVE_CLASS, (id & 2_147_483_647) as i32)
}

/// Lets ramp `id` go: another process may carry it on.
pub fn let_go(client: &mut impl GenericClient, id: i64) -> Result<(), Error> {
    client.execute(
        "select pg_advisory_unlock($1, ($2::bigint & 2147483647)::integer)",
        &[&DRIVE_CLASS, &id],
    )?;
    Ok(())
}

/// Whether some session (this one included) carries ramp `id` on now.
pub fn carried(client: &mut impl GenericClient, id: i64) -> Result<bool, Error> {
    Ok(client
        .query_one(
            "select exists (select from pg_locks
                             where locktype = 'advisory' and granted and objsubid = 2
                               and database = (select oid from pg_database where datname = current_database())
                               and classid::bigint = ($1::integer::bigint & 4294967295)
                               and objid::bigint = ($2::bigint & 2147483647))",
            &[&DRIVE_CLASS, &id],
        )?
        .get(0))
}

/// Makes `to`'s ramps what `from`'s are: a restore does not rewind them
/// (a ramp killed before the restore stays killed).
pub fn carry_over(from: &mut Client, to: &mut Client) -> Result<u64, Error> {
    if !super::has(from, "backstop.ramps")? {
        return Ok(0);
    }
    let rows: Value = from
        .query_one("select coalesce(jsonb_agg(to_jsonb(r)), '[]') from backstop.ramps r", &[])?
        .get(0);
    super::ensure(to)?;
    let mut tx = to.transaction()?;
    tx.execute("delete from backstop.ramps", &[])?;
    let n = tx.execute(
        "insert into backstop.ramps overriding system value
         select * from jsonb_populate_recordset(null::backstop.ramps, $1)",
        &[&rows],
    )?;
    // Ramps recorded after the restore continue the carried ids.
    tx.execute(
        "select setval(pg_get_serial_sequence('backstop.ramps', 'id'), max(id))
           from backstop.ramps having count(*) > 0",
        &[],
    )?;
    tx.commit()?;
    Ok(n)
}
