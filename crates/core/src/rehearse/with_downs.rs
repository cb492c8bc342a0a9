//! One run proves a release, ups and downs: a rehearsal whose migrations
//! without a down get one worked out and proved on its own copy by the
//! downs engine (`downs::maker`), in the same replay, each proof kept in
//! the store for `migrate` to reuse.

use super::{Options, Rehearsal, RehearseError};
use crate::downs::made::Makers;
use crate::downs::maker::Maker;
use crate::downs::proofs::Store;
use crate::migrate::{Progress, Settings};
use crate::source::Migration;

/// Rehearses the pending migrations of `source_url` with the downs of
/// those that have none worked out and proved on the copy, and keeps each
/// proof in `store` (which is saved). What to say of the store: its notes.
pub fn rehearse(
    source_url: &str,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    store: &mut Store,
    progress: &mut dyn Progress,
) -> Result<(Rehearsal, Vec<String>), RehearseError> {
    let mut maker = Maker::new(migrations);
    let mut second = maker.beside();
    let makers = Makers { first: &mut maker, second: &mut second };
    let r = super::rehearse(source_url, migrations, settings, options, Some(makers), progress)?;
    Ok((r, maker.keep_made(migrations, store)))
}
