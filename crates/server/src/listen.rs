//! The listener: one database session that `LISTEN`s on the flags channel
//! and reloads the flags (and the status page's overview) when a change
//! commits, or every half minute in case a notification was lost with a
//! dropped connection. Runs on its own thread: the postgres client blocks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_core::backup::store::Store;
use backstop_core::flags::{self, Evaluator};
use backstop_core::schema;
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
            if shared.loaded.load(Ordering::SeqCst) {
                // From now on the flags served are the last ones read.
                let mut since = shared.stale_since.lock().unwrap_or_else(|e| e.into_inner());
                since.get_or_insert_with(chrono::Utc::now);
            }
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
    shared.loaded.store(true, Ordering::SeqCst);
    *shared.stale_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
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

/// The latest rollout of the control database, read on this session when
/// it is the served database; nothing when it cannot be read (the page is
/// not the place to fail over it).
fn rollout(shared: &Shared, client: &mut Client) -> Option<backstop_core::rollout::Record> {
    let control = shared.options.rollout_control.as_deref()?;
    if control == shared.options.url {
        return backstop_core::rollout::current(client).ok().flatten();
    }
    let mut other = backstop_core::pg::connect(control, "backstop serve").ok()?;
    backstop_core::rollout::current(&mut other).ok().flatten()
}

fn overview(shared: &Shared, client: &mut Client) -> anyhow::Result<Overview> {
    let mut out = Overview::default();
    // Applied, pending and drifted by the same rules as `backstop status`.
    let status = backstop_core::migrate::status(client, &shared.options.migrations)?;
    out.applied = status
        .applied
        .iter()
        .map(|e| (e.version.clone(), e.name.clone(), e.applied_at.unwrap_or_default()))
        .collect();
    out.pending = status.pending.iter().map(|e| format!("{} {}", e.version, e.name)).collect();
    out.rehearsal = schema::rehearsals::latest(client)?.map(|r| (r.at, r.ok, r.report));
    for e in schema::events::recent(client, 15)? {
        out.events.push((e.at, e.kind, e.outcome, e.actor));
    }
    // A method whose latest event is its start is running now.
    out.running = schema::events::latest(client, "method")?
        .filter(|e| e.outcome == "started")
        .map(|e| (e.at, format!("by {}", e.actor)));
    out.incident = schema::incidents::current(client)?;
    out.watching = schema::watching::latest(client)?;
    let every = shared.options.drill_every;
    out.drill = Some(backstop_core::drill::due(client, every, chrono::Utc::now())?);
    out.ramps = flags::ramp::statuses(client)?;
    out.rollout = rollout(shared, client);
    out.expand = backstop_core::expand::Open::read(client)?;
    if let Some(e) = schema::events::latest(client, "decide")? {
        out.last_decision = Some(e.at);
        out.decision = Some(e.details);
    }
    // A backup folder that cannot be read leaves the list empty; the page
    // is not the place to fail over it.
    if let Ok((mut backups, _)) = Store::new(&shared.options.backup_dir).list() {
        backups.sort_by_key(|b| std::cmp::Reverse(b.created_at));
        out.backups = backups;
    }
    Ok(out)
}
