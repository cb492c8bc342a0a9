//! The listener: one database session that `LISTEN`s on the flags channel
//! and reloads the flags (and the status page's overview) when a change
//! commits, or every half minute in case a notification was lost with a
//! dropped connection. Runs on its own thread: the postgres client blocks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_core::backup::store::Store;
use backstop_core::flags::{self, Evaluator};
use postgres::fallible_iterator::FallibleIterator as _;
use postgres::Client;

use crate::{Change, Overview, Shared};

/// How often the flags are read again without a notification.
const REFRESH: Duration = Duration::from_secs(30);
/// How long to wait before reconnecting after the session was lost.
const RECONNECT: Duration = Duration::from_secs(1);

pub(crate) fn start(shared: Arc<Shared>) {
    std::thread::Builder::new()
        .name("backstop-serve-listen".into())
        .spawn(move || run(&shared))
        .expect("a thread can be started");
}

fn stopping(shared: &Shared) -> bool {
    *shared.shutdown.borrow()
}

fn run(shared: &Shared) {
    while !stopping(shared) {
        if let Err(e) = session(shared) {
            shared.ready.store(false, Ordering::SeqCst);
            tracing::warn!(error = %e, "flag listener lost the database; reconnecting");
            std::thread::sleep(RECONNECT);
        }
    }
}

/// One listening session, until it fails or the server stops.
fn session(shared: &Shared) -> anyhow::Result<()> {
    let mut client = backstop_core::pg::connect(&shared.options.url, "backstop serve")?;
    client.batch_execute(&format!("LISTEN {}", flags::CHANNEL))?;
    reload(shared, &mut client)?;
    shared.ready.store(true, Ordering::SeqCst);
    let mut last = Instant::now();
    while !stopping(shared) {
        let mut changed = false;
        {
            // Wait for the first notification, then take what else is
            // already there without waiting again: a change goes out at once.
            let mut notes = client.notifications();
            let first = notes.timeout_iter(Duration::from_millis(500)).next()?;
            changed |= first.is_some_and(|n| n.channel() == flags::CHANNEL);
            let mut rest = notes.iter();
            while let Some(n) = rest.next()? {
                changed |= n.channel() == flags::CHANNEL;
            }
        }
        if changed || last.elapsed() >= REFRESH {
            reload(shared, &mut client)?;
            last = Instant::now();
        }
        // The session is alive: a notification wait does not notice a
        // server that went away.
        if client.is_closed() {
            return Err(anyhow::anyhow!("the listening session closed"));
        }
    }
    Ok(())
}

/// Reads the flags and the overview; announces a new ETag.
fn reload(shared: &Shared, client: &mut Client) -> anyhow::Result<()> {
    let list = flags::list(client)?;
    let evaluator = Arc::new(Evaluator::new(list));
    let etag = evaluator.etag().to_string();
    let before = {
        let mut slot = shared.evaluator.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, evaluator)
    };
    if before.etag() != etag {
        let _ = shared.changes.send(Change { etag });
    }
    let overview = overview(shared, client)?;
    *shared.overview.write().unwrap_or_else(|e| e.into_inner()) = overview;
    Ok(())
}

fn overview(shared: &Shared, client: &mut Client) -> anyhow::Result<Overview> {
    let mut out = Overview::default();
    let has = |client: &mut Client, table: &str| -> Result<bool, postgres::Error> {
        Ok(client.query_one("select to_regclass($1) is not null", &[&table])?.get(0))
    };
    if has(client, "backstop.applied")? {
        for row in client
            .query("select version, name, applied_at from backstop.applied order by version", &[])?
        {
            out.applied.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    let applied: std::collections::HashSet<&str> =
        out.applied.iter().map(|(v, _, _)| v.as_str()).collect();
    out.pending = shared
        .options
        .migrations
        .iter()
        .filter(|m| !applied.contains(m.version.as_str()))
        .map(|m| format!("{} {}", m.version, m.name))
        .collect();
    if has(client, "backstop.rehearsals")? {
        if let Some(row) = client.query_opt(
            "select at, ok, report from backstop.rehearsals order by at desc limit 1",
            &[],
        )? {
            out.rehearsal = Some((row.get(0), row.get(1), row.get(2)));
        }
    }
    if has(client, "backstop.events")? {
        for row in client.query(
            "select at, kind, outcome, actor from backstop.events
              where outcome <> 'started' order by id desc limit 15",
            &[],
        )? {
            out.events.push((row.get(0), row.get(1), row.get(2), row.get(3)));
        }
        if let Some(row) = client.query_opt(
            "select at, details from backstop.events where kind = 'decide' order by id desc limit 1",
            &[],
        )? {
            out.last_decision = Some(row.get(0));
            out.decision = Some(row.get(1));
        }
    }
    // A backup folder that cannot be read leaves the list empty; the page
    // is not the place to fail over it.
    if let Ok((mut backups, _)) = Store::new(&shared.options.backup_dir).list() {
        backups.sort_by_key(|b| std::cmp::Reverse(b.created_at));
        out.backups = backups;
    }
    Ok(out)
}
