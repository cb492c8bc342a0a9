//! What a rehearsal asks of the engine that works out and proves downs,
//! for the migrations it plays that have none: the up applied and its
//! down worked out and proved on the rehearsal's own copy
//! ([`DownMaker::up_and_down`]), and each own down that held kept as a
//! proof ([`DownMaker::mark`], [`DownMaker::held`]). `downs::maker`
//! implements it; `rehearse` calls it, one floor over nothing: rehearse
//! uses downs, and downs knows nothing of rehearse.

use postgres::Client;

use super::DownsError;
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
    ) -> Result<MadeDown, DownsError>;

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
    ) -> Result<Mark, DownsError>;

    /// That round trip of `m`, begun at `mark`, held (its own down gave
    /// back the schema before, and its up ran again): its proof is kept,
    /// so `migrate` need not prove that down again.
    fn held(
        &mut self,
        client: &mut Client,
        picture: (&mut Tracked, &mut Prepared),
        m: &Migration,
        mark: Mark,
    ) -> Result<(), DownsError>;
}

/// Where a copy stands, as a proof's key reads it: its fingerprint and
/// the digest of its picture.
pub type Mark = (String, crate::adopt::keyed::Digest);

impl Makers<'_> {
    /// `migrations`, each without a down of its own given the down made
    /// for it where one would be kept (see [`DownMaker::kept_down`]).
    pub fn with_downs(&self, migrations: &[Migration]) -> Vec<Migration> {
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
