//! The downs `migrate` keeps with the records of the migrations it
//! applies: each reused from a kept proof where one covers the migration
//! on the schema it will start from, and proved now, on a throwaway copy
//! of the target's schema, where none does. The schema the first pending
//! migration starts from is the target's own (its fingerprint read
//! here); the next one's is where the previous proof ended, so a chain of
//! proofs covers a batch, and the first miss sends the rest to be proved.

use std::collections::BTreeMap;

use postgres::Client;

use super::proofs::{self, Class, Miss, Own, Proof, Store};
use super::{DownsError, Options, Status};
use crate::migrate::expect::Expected;
use crate::migrate::{self, Settings};
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// What was kept, and how each down was come by.
#[derive(Debug, Default)]
pub struct Kept {
    /// The proved downs to keep with the records, by version: those of
    /// migrations without a down of their own (and, where the project
    /// keeps proved downs over defective ones, those, see [`Kept::fixes`]).
    pub downs: BTreeMap<String, String>,
    /// Versions whose down came from a kept proof.
    pub reused: Vec<String>,
    /// Versions proved by this run, each with why no kept proof covered it.
    pub proved_now: Vec<Miss>,
    /// Versions for which no down could be proved (`backstop downs` says why).
    pub unproved: Vec<String>,
    /// Versions no kept proof covers, each with why, where none is proved
    /// now.
    pub uncovered: Vec<Miss>,
    /// Migrations whose own down does not bring the schema back.
    pub defective: Vec<Defect>,
    /// Migrations whose own down could not be tried in a transaction, so
    /// it is not proved: each with why.
    pub not_tried: Vec<Miss>,
    /// What a rollback of each must bring back, by version: where its up
    /// started and ended on the copy, and what it touched.
    pub undo: BTreeMap<String, Expected>,
    /// How the downs proved now fared together (a rollback of the run).
    pub chain: Option<super::chain::Chain>,
    /// Proved downs that lose named values only the backup holds (a
    /// column the up dropped comes back empty), by version.
    pub losing: Vec<(String, Vec<String>)>,
    /// What to tell the operator about the store itself (a file set aside,
    /// a save that failed).
    pub notes: Vec<String>,
    /// Ups that failed on the copy: the statement, its place and the
    /// server's error. The migrations after the first are not tried.
    pub up_failed: Vec<crate::migrate::Failure>,
    /// How long proving the downs not covered took (the replay on a copy),
    /// and of it the replay's reads of the schema ([`super::Computed::reading`]).
    pub proving: Option<std::time::Duration>,
    pub reading: Option<std::time::Duration>,
}

/// A migration whose own down, run after its up on a copy, does not give
/// back the schema before.
#[derive(Debug, Clone)]
pub struct Defect {
    pub version: String,
    pub label: String,
    /// Where its down is.
    pub path: std::path::PathBuf,
    /// What differs after it (or why it fails).
    pub differences: Vec<String>,
    /// The whole down that was proved instead, where one was.
    pub fix: Option<String>,
}

impl Kept {
    /// The proved downs that replace defective ones, by version.
    pub fn fixes(&self) -> BTreeMap<String, String> {
        let fixes = self.defective.iter().filter_map(|d| Some((d.version.clone(), d.fix.clone()?)));
        fixes.collect()
    }

    /// Takes in what a proof (kept or made now) says of `m`.
    fn take(&mut self, m: &Migration, proof: &Proof) {
        let defect = |differences: &[String], fix: Option<String>| Defect {
            version: m.version.clone(),
            label: m.label(),
            path: m.down.as_ref().map(|d| d.path.clone()).unwrap_or_default(),
            differences: differences.to_vec(),
            fix,
        };
        let proved = proof.class != Class::Unprovable;
        let expected = Expected {
            before: proof.start.clone(),
            after: proof.end.clone(),
            touched: proof.touched.clone(),
        };
        self.undo.insert(m.version.clone(), expected);
        match &proof.own {
            Some(Own::Holds) => {}
            Some(Own::Defective(differences)) => {
                self.defective.push(defect(differences, proved.then(|| proof.down.clone())));
            }
            Some(Own::NotTried(why)) => self.not_tried.push(miss(m, why)),
            None if proved => {
                self.downs.insert(m.version.clone(), proof.down.clone());
            }
            None => {}
        }
        if !proved {
            self.unproved.push(m.version.clone());
        } else if !proof.loses.is_empty() {
            self.losing.push((m.version.clone(), proof.loses.clone()));
        }
    }
}

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// The downs of `wanted` (versions of `pending`, in the order they will
/// be applied) for the target `client` at `url`, whose schema is `read`
/// where the caller has just read it (else it is read here): reused from
/// `store` where a proof covers them, proved now for the rest where
/// `prove` (each added to the store, which is saved). A migration with a
/// down of its own is proved like one without: its author's down, tried
/// after its up, and where it does not hold, the down that does.
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
    let role = crate::copies::RunsAs::of(client)?.map(|r| r.role);
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
            // Where an up not asked about leaves the schema is not known.
            start = None;
            continue;
        }
        let found = match &start {
            Some(fp) => store.find(m, fp, (major, role.as_deref())).cloned(),
            None if store.is_empty() => Err(miss(m, "no proof of it was kept")),
            None => Err(miss(m, "a migration before it in this run was not covered")),
        };
        match found {
            // Tried on this very start before: where its up ends is
            // known, so the next one's proof still serves.
            Ok(p) => {
                start = p.end.clone();
                kept.take(m, &p);
                if p.class != Class::Unprovable {
                    kept.reused.push(m.version.clone());
                }
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
        // No longer than the migration itself waits for a lock.
        lock_wait: Some(settings.lock_timeout).filter(|t| !t.is_zero()),
    };
    let started = std::time::Instant::now();
    let computed = super::compute(url, migrations, settings, &options, &mut migrate::Quiet)?;
    kept.proving = Some(started.elapsed());
    kept.reading = Some(computed.reading);
    kept.notes.extend(computed.start.iter().map(|n| format!("note: {n}")));
    kept.chain = computed.chain.clone();
    for d in computed.downs {
        kept.up_failed.extend(d.up_failed.clone());
        let Some(m) = migrations.iter().find(|m| m.version == d.version) else { continue };
        match proof_of(m, &d, (computed.major, role.clone()), "migrate") {
            Some(proof) => {
                kept.take(m, &proof);
                store.put(proof);
            }
            // Neither proved nor known where its up ends.
            None => {
                if let Some(Own::Defective(differences)) = &d.own {
                    let fix = None;
                    let path = m.down.as_ref().map(|d| d.path.clone()).unwrap_or_default();
                    let (version, label) = (m.version.clone(), m.label());
                    let differences = differences.clone();
                    kept.defective.push(Defect { version, label, path, differences, fix });
                }
                kept.unproved.push(d.version.clone());
            }
        }
        if kept.unproved.contains(&d.version) {
            kept.proved_now.retain(|p| p.version != d.version);
        }
    }
    if let Err(e) = store.save() {
        kept.notes.push(format!("warning: the proofs made now were not kept: {e}"));
    }
    Ok(kept)
}

/// Keeps in `store` (and saves it) the proofs of what `by` computed: the
/// next `migrate` on the same schema reuses them, whether the downs are
/// then saved as files or not.
pub fn keep_computed(
    migrations: &[Migration],
    computed: &super::Computed,
    by: &str,
    store: &mut Store,
) -> Result<(), String> {
    for d in &computed.downs {
        let Some(m) = migrations.iter().find(|m| m.version == d.version) else { continue };
        if let Some(proof) = proof_of(m, d, (computed.major, computed.role.clone()), by) {
            store.put(proof);
        }
    }
    store.save()
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
/// Where the migration has a down of its own, the proof says how that
/// one fared (`own`): its text where it holds, the whole down that does
/// hold where it is defective.
pub fn proof_of(
    m: &Migration,
    d: &super::Down,
    (major, role): (u32, Option<String>),
    by: &str,
) -> Option<Proof> {
    let unprovable =
        matches!(d.status, Status::Unprovable | Status::Computed | Status::Fixed) && !d.proved;
    let (class, down) = match (class_of(d), d.status) {
        (Some(class), _) => (class, d.replacement.clone().or_else(|| d.sql.clone())?),
        (None, Status::Ok) if d.proved => (Class::Proved, m.down.as_ref()?.text.to_string()),
        (None, Status::Fixed) if d.proved => (Class::Proved, d.replacement.clone()?),
        (None, _) if unprovable && d.end.is_some() => (Class::Unprovable, String::new()),
        _ => return None,
    };
    Some(Proof {
        version: m.version.clone(),
        name: m.name.clone(),
        file: proofs::file_key(m),
        own_file: proofs::own_key(m),
        own: d.own.clone(),
        start: d.start.clone()?,
        end: d.end.clone(),
        major,
        role,
        class,
        down,
        loses: d.loses.clone(),
        touched: d.touched.clone(),
        by: by.to_string(),
        at: chrono::Utc::now(),
        seal: String::new(),
    })
}
