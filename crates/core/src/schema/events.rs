//! `backstop.events`: the append-only audit log. Every migrate, rollback,
//! repair, flag flip, decision, freeze, restore and method step, with who,
//! when, outcome and details. Outcome events are written in their own
//! transaction after the work's COMMIT or ROLLBACK, so a failure is never
//! rolled back out of the log; a trigger refuses UPDATE and DELETE.

use std::io::{Read as _, Write as _};

use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde_json::Value;

use super::Error;

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// What happened: `migrate`, `rollback`, `repair`, `flag`, `decide`...
    pub kind: &'a str,
    /// `ok`, `failed`, `rolled_back`, `refused`, `started`...
    pub outcome: &'a str,
    /// The migration versions concerned.
    pub versions: Vec<String>,
    pub details: Value,
}

/// Appends `event` to the log as [`super::actor`]. The details carry the
/// writing session's backend pid (`session`), which pairs a run's
/// `started` event with its outcome: a start without one is a run that was
/// killed or lost its server.
pub fn record(client: &mut impl GenericClient, event: &Event<'_>) -> Result<(), Error> {
    record_as(client, event, &super::actor())
}

/// [`record`] with another actor (a server's named token).
pub fn record_as(
    client: &mut impl GenericClient,
    event: &Event<'_>,
    actor: &str,
) -> Result<(), Error> {
    // An event of the response belongs to the incident open when it is
    // written. A schema older than incidents has no column for it.
    if !super::incidents::recorded(client)? {
        client.execute(
            "insert into backstop.events (kind, actor, outcome, versions, details)
             values ($1, $2, $3, $4,
                     case when jsonb_typeof($5::jsonb) = 'object'
                          then $5::jsonb || jsonb_build_object('session', pg_backend_pid())
                          else $5::jsonb end)",
            &[&event.kind, &actor, &event.outcome, &event.versions, &event.details],
        )?;
        return Ok(());
    }
    let incident = if super::incidents::KINDS.contains(&event.kind) {
        super::incidents::current(client)?.map(|r| r.id)
    } else {
        None
    };
    client.execute(
        "insert into backstop.events (kind, actor, outcome, versions, details, incident)
         values ($1, $2, $3, $4,
                 case when jsonb_typeof($5::jsonb) = 'object'
                      then $5::jsonb || jsonb_build_object('session', pg_backend_pid())
                      else $5::jsonb end, $6)",
        &[&event.kind, &actor, &event.outcome, &event.versions, &event.details, &incident],
    )?;
    Ok(())
}

/// Whether the database has Backstop's audit log (a database Backstop has
/// never migrated has none, and commands that only read or act on it do
/// not create one).
pub fn logged(client: &mut impl GenericClient) -> Result<bool, Error> {
    super::has(client, "backstop.events")
}

/// The id of the newest event, 0 without the log (ids start at 1): the
/// mark a backup keeps of where the log stood, to tell later what ran
/// after it.
pub fn newest_id(client: &mut impl GenericClient) -> Result<i64, Error> {
    if !logged(client)? {
        return Ok(0);
    }
    let newest: Option<i64> = client.query_one("select max(id) from backstop.events", &[])?.get(0);
    Ok(newest.unwrap_or(0))
}

/// The kinds of the runs that changed the database's schema or data after
/// event `after` (or, without that mark, after the time `since`), each
/// with how many: migrations applied or reverted, restores, syncs and
/// clears that got as far as writing. Runs that only started, were
/// refused or rolled back changed nothing.
pub fn changes_after(
    client: &mut impl GenericClient,
    after: Option<i64>,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select kind, count(*)
           from backstop.events
          where (id > $1 or ($1 is null and at > $2))
            and kind in ('migrate', 'rollback', 'restore', 'sync', 'clear')
            and outcome not in ('started', 'refused', 'rolled_back', 'abandoned')
          group by kind
          order by min(id)",
        &[&after, &since],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// [`record`] when the database has the audit log; whether it had.
pub fn record_if_logged(client: &mut impl GenericClient, event: &Event<'_>) -> Result<bool, Error> {
    let logged = logged(client)?;
    if logged {
        record(client, event)?;
    }
    Ok(logged)
}

/// One event as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Logged {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub outcome: String,
    pub actor: String,
    pub versions: Vec<String>,
    pub details: Value,
}

fn logged_row(r: &postgres::Row) -> Logged {
    Logged {
        id: r.get(0),
        at: r.get(1),
        kind: r.get(2),
        outcome: r.get(3),
        actor: r.get(4),
        versions: r.get(5),
        details: r.get(6),
    }
}

const COLUMNS: &str = "id, at, kind, outcome, actor, versions, details";

/// The newest `limit` events, newest first, leaving out `started` markers;
/// none without the log.
pub fn recent(client: &mut impl GenericClient, limit: i64) -> Result<Vec<Logged>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "select {COLUMNS} from backstop.events where outcome <> 'started'
                  order by id desc limit $1"
            ),
            &[&limit],
        )?
        .iter()
        .map(logged_row)
        .collect())
}

/// The latest event of `kind`, if any.
pub fn latest(client: &mut impl GenericClient, kind: &str) -> Result<Option<Logged>, Error> {
    if !logged(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            &format!(
                "select {COLUMNS} from backstop.events where kind = $1 order by id desc limit 1"
            ),
            &[&kind],
        )?
        .as_ref()
        .map(logged_row))
}

/// Events of the given kinds from `since` on, oldest first.
pub fn since(
    client: &mut impl GenericClient,
    since: DateTime<Utc>,
    kinds: &[&str],
) -> Result<Vec<Logged>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "select {COLUMNS} from backstop.events where at >= $1 and kind = any($2)
                  order by id"
            ),
            &[&since, &kinds],
        )?
        .iter()
        .map(logged_row)
        .collect())
}

/// The events of incident `id`, oldest first.
pub fn of_incident(client: &mut impl GenericClient, id: i64) -> Result<Vec<Logged>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!("select {COLUMNS} from backstop.events where incident = $1 order by id"),
            &[&id],
        )?
        .iter()
        .map(logged_row)
        .collect())
}

/// When the first rollback decision or method start after `after` was,
/// or now when there was none.
pub fn first_rollback_since(
    client: &mut impl GenericClient,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, Error> {
    Ok(client
        .query_one(
            "select coalesce(min(at), now()) from backstop.events
              where at > $1
                and ((kind = 'decide' and outcome = 'rollback') or (kind = 'method' and outcome = 'started'))",
            &[&after],
        )?
        .get(0))
}

/// Events with `details ->> key = value`, of `kind`, oldest first.
pub fn with_detail(
    client: &mut impl GenericClient,
    kind: &str,
    key: &str,
    value: &str,
) -> Result<Vec<Logged>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            &format!(
                "select {COLUMNS} from backstop.events
                  where kind = $1 and details ->> $2 = $3 order by id"
            ),
            &[&kind, &key, &value],
        )?
        .iter()
        .map(logged_row)
        .collect())
}

/// The versions the newest deploy that applied any applied; none without
/// the log.
pub fn last_deploy(client: &mut impl GenericClient) -> Result<Vec<String>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    Ok(client
        .query_opt(
            "select versions from backstop.events
              where kind = 'migrate' and outcome = 'ok' and cardinality(versions) > 0
              order by id desc limit 1",
            &[],
        )?
        .map(|r| r.get(0))
        .unwrap_or_default())
}

/// A deploy's proof of downs run together: the event, the versions whose
/// downs ran (in the order applied), `proved` or why not, and the version
/// whose down failed after the ones before it, if one did.
pub type ChainProof = (Logged, Vec<String>, String, Option<String>);

/// The downs a deploy proved together, as its migrate event records them
/// (the keep gate's `together`), newest first.
pub fn chains(client: &mut impl GenericClient) -> Result<Vec<ChainProof>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        &format!(
            "select {COLUMNS}, details -> 'gates' -> 'keep_downs' -> 'together_versions',
                    details -> 'gates' -> 'keep_downs' ->> 'together',
                    details -> 'gates' -> 'keep_downs' ->> 'together_stops_at'
               from backstop.events
              where kind = 'migrate' and outcome = 'ok'
                and jsonb_typeof(details -> 'gates' -> 'keep_downs' -> 'together_versions') = 'array'
              order by id desc"
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let versions: serde_json::Value = r.get(7);
            let versions = versions
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            (logged_row(r), versions, r.get(8), r.get(9))
        })
        .collect())
}

/// A run that recorded its start but no outcome, and whose session is gone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interrupted {
    pub kind: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub versions: Vec<String>,
    /// A method's letter and what it turned off (`release v2`, `flag k`),
    /// from its start event; a method names no versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Interrupted {
    /// What to run now, as `backstop status` says it after the run.
    pub fn next(&self) -> String {
        match self.kind.as_str() {
            "migrate" => "run `backstop migrate` again: it applies what is still pending (the \
                          list above), each group checked again"
                .into(),
            "rollback" => "run the same `backstop rollback` again: it reverts what of these is \
                           still applied (the list above), its check before COMMIT included"
                .into(),
            "method" => {
                "read `backstop respond incident` for what it did, then run the same response \
                         again or `backstop status` once it is settled"
                    .into()
            }
            other => format!("run the {other} again once you have read what it left"),
        }
    }

    /// What ran, as a person names it, with no blank name in it:
    /// `a migrate of 1, 2`, `method A of release v2`, `a restore`.
    pub fn what(&self) -> String {
        let filled = |s: &&String| !s.trim().is_empty();
        if self.kind == "method" {
            let method = match self.method.as_ref().filter(filled) {
                Some(letter) => format!("method {letter}"),
                None => "a method".to_string(),
            };
            return match self.target.as_ref().filter(filled) {
                Some(target) => format!("{method} of {target}"),
                None => method,
            };
        }
        let versions: Vec<&str> = self.versions.iter().filter(filled).map(String::as_str).collect();
        match versions.as_slice() {
            [] => format!("a {}", self.kind),
            _ => format!("a {} of {}", self.kind, versions.join(", ")),
        }
    }
}

/// The runs that started and never recorded an outcome (killed, or their
/// server went away) since the last run of their kind that did, newest
/// first; a run still going (its session alive) is not one of them.
pub fn interrupted(client: &mut impl GenericClient) -> Result<Vec<Interrupted>, Error> {
    if !logged(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select s.kind, s.at, s.actor, s.versions, s.details ->> 'method',
                coalesce('release ' || nullif(btrim(s.details -> 'target' ->> 'release'), ''),
                         'flag ' || nullif(btrim(s.details -> 'target' ->> 'flag'), ''))
           from backstop.events s
          where s.outcome = 'started'
            and not exists (select from backstop.events o
                             where o.id > s.id and o.kind = s.kind and o.outcome <> 'started')
            and not exists (select from pg_stat_activity a
                             where a.pid::text = s.details ->> 'session' and a.backend_start <= s.at)
          order by s.id desc
          limit 5",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Interrupted {
            kind: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            versions: r.get(3),
            method: r.get(4),
            target: r.get(5),
        })
        .collect())
}

/// The latest migrate outcome of each of `versions`, where it is a
/// failure that left statements committed (a no-transaction migration that
/// stopped half-way): the version, the failure's details and when.
pub fn half_applied(
    client: &mut impl GenericClient,
    versions: &[String],
) -> Result<Vec<(String, Value, DateTime<Utc>)>, Error> {
    if versions.is_empty() || !super::exists(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select v, e.details -> 'failure', e.at
           from (select distinct on (v) v, e.id
                   from backstop.events e, unnest(e.versions) v
                  where e.kind = 'migrate' and e.outcome in ('ok', 'failed', 'rolled_back')
                    and v = any($1)
                  order by v, e.id desc) latest
           join backstop.events e on e.id = latest.id
          where e.outcome = 'failed'
            and coalesce((e.details -> 'failure' ->> 'committed_statements')::int, 0) > 0",
        &[&versions],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// When each version was last reverted by a rollback that committed: a
/// row another tool wrote before then is stale, not a version it applied.
pub fn last_reverted(
    client: &mut impl GenericClient,
) -> Result<std::collections::HashMap<String, DateTime<Utc>>, Error> {
    if !super::exists(client)? {
        return Ok(Default::default());
    }
    let rows = client.query(
        "select v, max(e.at)
           from backstop.events e, unnest(e.versions) v
          where e.kind = 'rollback' and e.outcome = 'ok'
          group by v",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The history table (`schema.name`) the latest adoption from the tool
/// `from` read: the table that tool's history is kept in step in.
pub fn adopted_from(client: &mut impl GenericClient, from: &str) -> Result<Option<String>, Error> {
    if !super::exists(client)? {
        return Ok(None);
    }
    let row = client.query_opt(
        "select details->>'table' from backstop.events
          where kind = 'adopt' and outcome = 'ok' and details->>'from' = $1
          order by id desc limit 1",
        &[&from],
    )?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Why the log could not be carried over to a restored database.
#[derive(Debug, thiserror::Error)]
pub enum CarryError {
    #[error(transparent)]
    Db(#[from] postgres::Error),
    #[error("copying backstop.events")]
    Io(#[from] std::io::Error),
}

/// Carries the log over from `from` to `to`: every event of `from` that
/// `to` lacks (the log of a backup is a prefix of the live one, ids
/// included), so a restore never rewinds the audit log.
pub fn carry_over(from: &mut Client, to: &mut Client) -> Result<u64, CarryError> {
    if !super::exists(from)? {
        return Ok(0);
    }
    super::ensure(to)?;
    // An older log has no incident column; the incidents go along with it.
    let with_incidents = super::incidents::recorded(from)?;
    let copied = if with_incidents {
        "id, at, kind, actor, outcome, versions, details, incident"
    } else {
        "id, at, kind, actor, outcome, versions, details"
    };
    let mut data = Vec::new();
    let mut reader = from.copy_out(&format!("COPY backstop.events ({copied}) TO STDOUT"))?;
    reader.read_to_end(&mut data)?;
    drop(reader);
    let mut tx = to.transaction()?;
    tx.batch_execute(
        "CREATE TEMP TABLE backstop_restore_events (LIKE backstop.events) ON COMMIT DROP",
    )?;
    let mut w = tx.copy_in(&format!("COPY backstop_restore_events ({copied}) FROM STDIN"))?;
    w.write_all(&data)?;
    w.finish()?;
    let n = tx.execute(
        &format!(
            "INSERT INTO backstop.events ({copied}) OVERRIDING SYSTEM VALUE
             SELECT {copied} FROM backstop_restore_events e
              WHERE NOT EXISTS (SELECT FROM backstop.events x WHERE x.id = e.id) ORDER BY id"
        ),
        &[],
    )?;
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('backstop.events', 'id'), (SELECT max(id) FROM backstop.events))",
    )?;
    if with_incidents {
        carry_incidents(from, &mut tx)?;
    }
    tx.commit()?;
    Ok(n)
}

/// The incidents as `from` has them replace those of `to` (a restore
/// must not reopen or forget one).
fn carry_incidents(
    from: &mut Client,
    to: &mut postgres::Transaction<'_>,
) -> Result<(), CarryError> {
    const COLUMNS: &str = "id, opened_at, opened_by, closed_at, closed_by, close_note";
    let mut data = Vec::new();
    let mut reader = from.copy_out(&format!("COPY backstop.incidents ({COLUMNS}) TO STDOUT"))?;
    reader.read_to_end(&mut data)?;
    drop(reader);
    to.batch_execute(
        "CREATE TEMP TABLE backstop_restore_incidents (LIKE backstop.incidents) ON COMMIT DROP",
    )?;
    let mut w = to.copy_in(&format!("COPY backstop_restore_incidents ({COLUMNS}) FROM STDIN"))?;
    w.write_all(&data)?;
    w.finish()?;
    to.batch_execute(&format!(
        "DELETE FROM backstop.incidents;
         INSERT INTO backstop.incidents ({COLUMNS}) OVERRIDING SYSTEM VALUE
         SELECT {COLUMNS} FROM backstop_restore_incidents ORDER BY id;
         SELECT setval(pg_get_serial_sequence('backstop.incidents', 'id'),
                       greatest((SELECT max(id) FROM backstop.incidents), 1))"
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        kind: &str,
        versions: &[&str],
        method: Option<&str>,
        target: Option<&str>,
    ) -> Interrupted {
        Interrupted {
            kind: kind.into(),
            at: Utc::now(),
            actor: "ops".into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            method: method.map(str::to_string),
            target: target.map(str::to_string),
        }
    }

    /// Regression: "a method of  started", a method naming no versions.
    #[test]
    fn an_interrupted_run_is_named_without_a_blank() {
        assert_eq!(run("migrate", &["1", "2"], None, None).what(), "a migrate of 1, 2");
        assert_eq!(
            run("method", &[], Some("A"), Some("release v2")).what(),
            "method A of release v2"
        );
        assert_eq!(run("method", &[], Some("B"), None).what(), "method B");
        assert_eq!(run("method", &[], Some(" "), Some("")).what(), "a method");
        assert_eq!(run("restore", &[""], None, None).what(), "a restore");
    }

    /// Each interrupted run names the command that finishes it.
    #[test]
    fn an_interrupted_run_says_what_to_run_next() {
        assert!(run("rollback", &["3"], None, None)
            .next()
            .starts_with("run the same `backstop rollback` again"));
        assert!(run("migrate", &["1"], None, None)
            .next()
            .starts_with("run `backstop migrate` again"));
        assert!(run("method", &[], Some("A"), None).next().contains("backstop respond incident"));
    }
}
