//! The downs `migrate` keeps with the records of the migrations it
//! applies: each reused from a kept proof where one covers the migration
//! on the schema it will start from, and proved now, on a throwaway copy
//! of the target's schema, where none does. The schema the first pending
//! migration starts from is the target's own (its fingerprint read
//! here); the next one's is where the previous proof ended, so a chain of
//! proofs covers a batch, and the first miss sends the rest to be proved.

use std::collections::BTreeMap;

use postgres::Client;

use super::proofs::{self, Class, Miss, Proof, Store};
use super::{DownsError, Options, Status};
use crate::migrate::{self, Settings};
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// What was kept, and how each down was come by.
#[derive(Debug, Default)]
pub struct Kept {
    /// The proved downs, by version.
    pub downs: BTreeMap<String, String>,
    /// Versions whose down came from a kept proof.
    pub reused: Vec<String>,
    /// Versions proved by this run, each with why no kept proof covered it.
    pub proved_now: Vec<Miss>,
    /// Versions for which no down could be proved (`backstop downs` says why).
    pub unproved: Vec<String>,
    /// Versions no kept proof covers, each with why, where none is proved
    /// now (a layout with downs: only a rehearsal proves them).
    pub uncovered: Vec<Miss>,
    /// What to tell the operator about the store itself (a file set aside,
    /// a save that failed).
    pub notes: Vec<String>,
}

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// The downs of `wanted` (versions of `pending`, in the order they will
/// be applied) for the target `client` at `url`, whose schema is `read`
/// where the caller has just read it (else it is read here): reused from
/// `store` where a proof covers them, proved now for the rest where
/// `prove` (each added to the store, which is saved).
pub fn keep(
    (client, read): (&mut Client, Option<Schema>),
    url: &str,
    migrations: &[Migration],
    settings: &Settings,
    pending: &[&Migration],
    (wanted, prove): (&[String], bool),
    store: &mut Store,
) -> Result<Kept, DownsError> {
    let mut kept = Kept::default();
    if let Some(note) = store.note.take() {
        kept.notes.push(format!("note: {note}"));
    }
    let major = crate::pg::server_version_num(client)
        .map(crate::pg::bins::major_of_num)
        .map_err(db("reading the server version"))?;
    // The role the migrations run as here, where no superuser: a proof
    // made with other rights does not hold for it.
    let role = crate::rehearse::RunsAs::of(client)?.map(|r| r.role);
    // Where the first pending migration starts: it keys the kept proofs
    // and the copy a previous run kept (`downs::kept`).
    let target = match read {
        Some(schema) => proofs::fingerprint(client, &schema, migrations)
            .map_err(db("reading which tables the role may read"))?,
        None => super::kept::fingerprint(client, migrations)?,
    };
    let mut start = (!store.is_empty()).then(|| target.clone());
    let mut to_prove: Vec<String> = Vec::new();
    for m in pending {
        if !wanted.contains(&m.version) {
            // A migration whose down is its own ends the chain: where its
            // up leaves the schema is not known here.
            start = None;
            continue;
        }
        let found = match &start {
            Some(fp) => store.find(m, fp, (major, role.as_deref())).cloned(),
            None if store.is_empty() => Err(miss(m, "no proof of it was kept")),
            None => Err(miss(m, "a migration before it in this run was not covered")),
        };
        match found {
            // Tried on this very start before, and no down held: where
            // its up ends is known, so the next one's proof still serves.
            Ok(p) if p.class == Class::Unprovable => {
                start = p.end.clone();
                kept.unproved.push(m.version.clone());
            }
            Ok(p) => {
                start = p.end.clone();
                kept.downs.insert(m.version.clone(), p.down.clone());
                kept.reused.push(m.version.clone());
            }
            Err(why) => {
                start = None;
                to_prove.push(m.version.clone());
                kept.proved_now.push(why);
            }
        }
    }
    if !prove {
        kept.uncovered = std::mem::take(&mut kept.proved_now);
    }
    if to_prove.is_empty() || !prove {
        return Ok(kept);
    }
    let options = Options {
        versions: to_prove,
        start: None,
        from_target: true,
        target_fingerprint: Some(target),
    };
    let computed = super::compute(url, migrations, settings, &options, &mut migrate::Quiet)?;
    kept.notes.extend(computed.start.iter().map(|n| format!("note: {n}")));
    for d in computed.downs {
        let Some(m) = migrations.iter().find(|m| m.version == d.version) else { continue };
        match (d.proved, &d.sql) {
            (true, Some(sql)) => {
                kept.downs.insert(d.version.clone(), sql.clone());
                if let Some(proof) = proof_of(m, &d, (computed.major, role.clone()), "migrate") {
                    store.put(proof);
                }
            }
            _ => {
                kept.proved_now.retain(|p| p.version != d.version);
                kept.unproved.push(d.version.clone());
                if let Some(record) = proof_of(m, &d, (computed.major, role.clone()), "migrate") {
                    store.put(record);
                }
            }
        }
    }
    if let Err(e) = store.save() {
        kept.notes.push(format!("warning: the proofs made now were not kept: {e}"));
    }
    Ok(kept)
}

fn miss(m: &Migration, why: &str) -> Miss {
    Miss { version: m.version.clone(), why: why.to_string() }
}

/// How a down made on a copy is kept: proved, or irreversible (its schema
/// part proved); `None` when it is not kept.
pub(super) fn class_of(d: &super::Down) -> Option<Class> {
    match d.status {
        Status::Irreversible => Some(Class::Irreversible),
        Status::Computed if d.proved => Some(Class::Proved),
        _ => None,
    }
}

/// The proof to keep of a down proved on a copy: only a proved down
/// whose start was read. A down that could not be proved on a start
/// whose end was read is kept as [`Class::Unprovable`], without its SQL.
pub fn proof_of(
    m: &Migration,
    d: &super::Down,
    (major, role): (u32, Option<String>),
    by: &str,
) -> Option<Proof> {
    let unprovable = matches!(d.status, Status::Unprovable | Status::Computed) && !d.proved;
    let class = match class_of(d) {
        Some(class) => class,
        None if unprovable && d.end.is_some() => Class::Unprovable,
        None => return None,
    };
    let down = if class == Class::Unprovable { String::new() } else { d.sql.clone()? };
    Some(Proof {
        version: m.version.clone(),
        name: m.name.clone(),
        file: proofs::file_key(m),
        start: d.start.clone()?,
        end: d.end.clone(),
        major,
        role,
        class,
        down,
        loses: d.loses.clone(),
        by: by.to_string(),
        at: chrono::Utc::now(),
        seal: String::new(),
    })
}
