//! The round trip of a migration that has no down: its down is worked out
//! and proved on the rehearsal's own copy by a [`DownMaker`] (the `downs`
//! engine's, `downs::made`), and the trip says how that went in the
//! classes `backstop downs` uses: proved, losing values only the backup
//! holds, unprovable.

use std::time::Instant;

use postgres::Client;

use super::locks::Tracing;
use super::ms;
use super::outcome::{MigrationTrip, TripClass};
use super::round_trip::OneTrip;
use super::RehearseError;
use crate::copies::clone::CopyDb;
use crate::downs::made::{DownMaker, Made};
use crate::migrate::Settings;
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// The round trip of `m`, which has no down, through `maker`.
#[allow(clippy::too_many_arguments)]
pub(super) fn round_trip(
    client: &mut Client,
    copy: &CopyDb,
    (tracked, prepared): (&mut Tracked, &mut Prepared),
    known: &[Migration],
    settings: &Settings,
    m: &Migration,
    tracing: &mut Tracing<'_>,
    maker: &mut dyn DownMaker,
) -> Result<OneTrip, RehearseError> {
    let t = Instant::now();
    // The maker brings the picture up to date first thing, and says when
    // the up may write the catalogs right before it runs.
    let made = maker
        .up_and_down(client, copy, (tracked, prepared), known, m, settings, tracing)
        .map_err(|e| RehearseError::Down { version: m.version.clone(), source: Box::new(e) })?;
    let locks = tracing.drain_locks();
    tracked.wrote(tracing.take_written());
    let (class, detail) = match made.made {
        Made::Proved => (TripClass::Proved, made.detail),
        Made::ProvedLosing => (TripClass::ProvedLosing, made.detail),
        Made::Irreversible => (
            TripClass::Irreversible,
            format!(
                "{}; the computed down puts the schema back, and only the backup taken before it \
                 holds those rows (accept with `backstop rehearse --accept-irreversible {} \
                 --reason \"…\"`)",
                made.detail, m.version
            ),
        ),
        Made::Unprovable => (
            TripClass::Unprovable,
            format!("{}; `backstop downs {}` shows the down it tried", made.detail, m.version),
        ),
        Made::UpFails => (TripClass::UpFails, made.detail),
    };
    let trip = MigrationTrip {
        version: m.version.clone(),
        name: m.name.clone(),
        class,
        verdict: None,
        detail,
        differences: Vec::new(),
        relations: Vec::new(),
        definitions: Vec::new(),
        cosmetic: Vec::new(),
        added: Vec::new(),
        duration_ms: ms(t.elapsed()),
    };
    Ok(OneTrip { trip, locks, stops: made.stops })
}
