//! The round trip of a migration that has no down: its down is worked out
//! and proved on the rehearsal's own copy by a [`DownMaker`] (the `downs`
//! engine implements it one floor over, so that this module needs nothing
//! of it), and the trip says how that went in the classes `backstop
//! downs` uses: proved, losing values only the backup holds, unprovable.

use std::time::Instant;

use postgres::Client;

use super::locks::Tracing;
use super::ms;
use super::outcome::{MigrationTrip, TripClass};
use super::round_trip::OneTrip;
use super::RehearseError;
use crate::copies::clone::CopyDb;
use crate::migrate::{Progress, Settings};
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// How a computed down fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Worked out and proved.
    Proved,
    /// Worked out and proved for the schema; values the up dropped with
    /// their columns only the backup holds (the detail names them).
    ProvedLosing,
    /// The schema part is proved; rows the up changed only a backup holds.
    Irreversible,
    /// No down could be proved.
    Unprovable,
    /// The up itself fails: nothing after it can be rehearsed.
    UpFails,
}

/// What a [`DownMaker`] made of one migration.
#[derive(Debug, Clone)]
pub struct MadeDown {
    pub made: Made,
    /// Why, in a line: what it cannot prove, the up's error, what is lost.
    pub detail: String,
    /// The copy is left where the next migrations cannot start.
    pub stops: bool,
}

/// What works out and proves the downs of migrations that have none, on
/// the rehearsal's copy, in the order the rehearsal applies them.
pub trait DownMaker {
    /// Applies the up of `m` (the last of `known`) on `client` through
    /// `progress`, works its down out and proves it; the copy is left at
    /// the state after the up. `picture`: the copy's picture, which the
    /// maker brings up to date before the up (and tells when the up may
    /// write the catalogs), and the statements prepared on `client`.
    #[allow(clippy::too_many_arguments)]
    fn up_and_down(
        &mut self,
        client: &mut Client,
        copy: &CopyDb,
        picture: (&mut Tracked, &mut Prepared),
        known: &[Migration],
        m: &Migration,
        settings: &Settings,
        progress: &mut dyn Progress,
    ) -> Result<MadeDown, RehearseError>;

    /// The copy was changed by other hands since the last call: what the
    /// maker knows of its state is stale.
    fn moved(&mut self);

    /// The SQL of the down made for `version`, where `migrate` would keep
    /// it (proved, or irreversible with its schema part proved): what a
    /// `rollback` after a deploy of the rehearsed files runs.
    fn kept_down(&self, version: &str) -> Option<String>;

    /// Before the round trip of a migration whose down is its author's:
    /// where the copy stands, as a proof's key reads it (its fingerprint,
    /// and the digest that tells what the up touches).
    fn mark(
        &mut self,
        client: &mut Client,
        picture: (&mut Tracked, &mut Prepared),
    ) -> Result<Mark, RehearseError>;

    /// That round trip of `m`, begun at `mark`, held (its own down gave
    /// back the schema before, and its up ran again): its proof is kept,
    /// so `migrate` need not prove that down again.
    fn held(
        &mut self,
        client: &mut Client,
        picture: (&mut Tracked, &mut Prepared),
        m: &Migration,
        mark: Mark,
    ) -> Result<(), RehearseError>;
}

/// Where a copy stands, as a proof's key reads it: its fingerprint and
/// the digest of its picture.
pub type Mark = (String, crate::adopt::keyed::Digest);

impl Makers<'_> {
    /// `migrations`, each without a down of its own given the down made
    /// for it where one would be kept (see [`DownMaker::kept_down`]).
    pub(super) fn with_downs(&self, migrations: &[Migration]) -> Vec<Migration> {
        let kept = |m: &Migration| m.down.is_none().then(|| self.first.kept_down(&m.version));
        migrations
            .iter()
            .map(|m| match kept(m).flatten() {
                Some(sql) => m.with_kept_down(&sql),
                None => m.clone(),
            })
            .collect()
    }
}

/// The makers of a rehearsal: one for its copy, and one for a second
/// copy worked on beside it (`trips`), whose downs join the first's.
pub struct Makers<'a> {
    pub first: &'a mut dyn DownMaker,
    pub second: &'a mut (dyn DownMaker + Send),
}

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
    let made = maker.up_and_down(client, copy, (tracked, prepared), known, m, settings, tracing)?;
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
        detail,
        differences: Vec::new(),
        relations: Vec::new(),
        definitions: Vec::new(),
        cosmetic: Vec::new(),
        duration_ms: ms(t.elapsed()),
    };
    Ok(OneTrip { trip, locks, stops: made.stops })
}
