//! Proofs kept and reused. A down's proof (its up, then the down, on a
//! copy gave back the schema before) holds for the same up, applied to a
//! schema with the same semantic fingerprint, on the same PostgreSQL
//! major: nothing else goes into the key, neither the database's name nor
//! its host, so a proof made by `rehearse` on a copy, on staging or on the
//! target itself serves the target's `migrate`, and a rollout's tenants
//! with equal schemas share one. Anything that differs (one byte of the
//! up, the schema changed by hand, another major) is no match, and the
//! miss says which.
//!
//! The store is one JSON file (`[rehearse] proofs`, by default
//! `.backstop/proofs.json` beside `backstop.toml`), written whole to a
//! temporary name and renamed, under an exclusive lock on a file beside
//! it, merged with what another run wrote meanwhile. A store that does not
//! parse, or that another version of Backstop wrote, is set aside with a
//! note and never trusted.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::Migration;

/// The store's own format; a change of it, or of Backstop, starts afresh.
const FORMAT: u32 = 2;

/// Proofs kept per migration version: the newest few (a version proved
/// on several schemas, or rewritten before it shipped).
const PER_VERSION: usize = 4;

/// How a down stood when it was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The down puts the schema back, and the up changed no rows that were there.
    Proved,
    /// The down puts the schema back; rows the up changed only the
    /// backup holds (`loses` names them).
    Irreversible,
    /// No down could be proved on this start: kept for where the up ends
    /// (`end`), so that a chain of proofs goes on past it; its `down` is
    /// empty and never run.
    Unprovable,
}

/// How a migration's own down (its author's file) fared after its up on
/// a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Own {
    /// It gave back the schema before: the proof is of it.
    Holds,
    /// It ran and left these differences, or failed (why): the proof's
    /// `down` is the one that does hold, where one was found.
    Defective(Vec<String>),
    /// It could not be tried inside a transaction (why): not proved; the
    /// proof's `down` is the one worked out instead.
    NotTried(String),
}

/// One kept proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub version: String,
    pub name: String,
    /// BLAKE3 of the up as it runs (every byte counts).
    pub file: String,
    /// BLAKE3 of the migration's own down, where it has one: a proof of
    /// an author's down holds for those bytes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_file: Option<String>,
    /// How the migration's own down fared, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<Own>,
    /// The semantic fingerprint of the schema the up started from.
    pub start: String,
    /// The fingerprint of the schema after the up, where it was read: the
    /// next migration's proof starts there.
    #[serde(default)]
    pub end: Option<String>,
    /// The PostgreSQL major it was proved on.
    pub major: u32,
    /// The role the up and the down ran as, where no superuser (see
    /// `rehearse::RunsAs`): what a role may do is part of what a down
    /// needs, so a proof serves only sessions of the same standing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub class: Class,
    /// The down, as `rollback` runs it.
    pub down: String,
    #[serde(default)]
    pub loses: Vec<String>,
    /// What the up touched (from `start` to `end`): kept with the
    /// migration's record, for the rollback's own check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touched: Vec<crate::adopt::keyed::Touched>,
    /// Which command proved it (`rehearse`, `migrate`, `downs`) and when.
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// BLAKE3 over everything above: a proof edited or damaged since it
    /// was written is not used.
    #[serde(default)]
    pub seal: String,
}

impl Proof {
    /// The seal of what the proof says.
    fn sealed(&self) -> String {
        let mut h = blake3::Hasher::new();
        for part in [&self.version, &self.name, &self.file, &self.start] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        h.update(self.end.as_deref().unwrap_or("").as_bytes());
        h.update(&[0]);
        h.update(&self.major.to_le_bytes());
        if let Some(role) = &self.role {
            h.update(role.as_bytes());
            h.update(&[0]);
        }
        h.update(format!("{:?}", self.class).as_bytes());
        h.update(&[0]);
        if let Some(own) = &self.own_file {
            h.update(own.as_bytes());
            h.update(&[0]);
        }
        if let Some(own) = &self.own {
            h.update(format!("{own:?}").as_bytes());
            h.update(&[0]);
        }
        h.update(self.down.as_bytes());
        for l in &self.loses {
            h.update(&[0]);
            h.update(l.as_bytes());
        }
        for t in &self.touched {
            h.update(&[1]);
            h.update(t.key.as_bytes());
            h.update(&[0]);
            h.update(t.before.as_deref().unwrap_or("").as_bytes());
        }
        h.finalize().to_hex()[..32].to_string()
    }

    fn same_key(&self, other: &Proof) -> bool {
        self.version == other.version
            && self.file == other.file
            && self.own_file == other.own_file
            && self.start == other.start
            && self.major == other.major
            && self.role == other.role
    }
}

/// The file's whole content.
#[derive(Debug, Serialize, Deserialize)]
struct File {
    backstop: String,
    format: u32,
    proofs: Vec<Proof>,
}

pub use crate::adopt::keyed::{fingerprint, ToolHistory};

/// The identity of an up as the proof keys it: every byte of its text.
pub fn file_key(m: &Migration) -> String {
    blake3::hash(m.up.text.as_bytes()).to_hex()[..32].to_string()
}

/// The identity of the migration's own down, where it has one: every byte
/// of its text.
pub fn own_key(m: &Migration) -> Option<String> {
    m.down.as_ref().map(|d| blake3::hash(d.text.as_bytes()).to_hex()[..32].to_string())
}

/// Whether a down file's text is the down a proof holds: the same bytes,
/// or the same statements with other comments and spacing.
fn same_down(file: &str, proved: &str) -> bool {
    file == proved
        || matches!(
            (backstop_sql::checksum(file), backstop_sql::checksum(proved)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// Why no kept proof covers a migration on a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub version: String,
    pub why: String,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.version, self.why)
    }
}

/// The kept proofs, read once.
#[derive(Debug, Default)]
pub struct Store {
    path: Option<PathBuf>,
    proofs: Vec<Proof>,
    /// Proofs added by this run, to be written.
    added: Vec<Proof>,
    /// Why the file on disk was not trusted, if it was not.
    pub note: Option<String>,
}

impl Store {
    /// The store at `path`; a missing file is an empty store. Never fails:
    /// a file that cannot be read or trusted is left aside with a note.
    pub fn open(path: &Path) -> Store {
        let mut store = Store { path: Some(path.to_path_buf()), ..Store::default() };
        match read(path) {
            Ok(proofs) => store.proofs = proofs,
            Err(why) => store.note = why,
        }
        store
    }

    /// A store kept in memory only.
    pub fn in_memory() -> Store {
        Store::default()
    }

    /// Where it is kept.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many proofs it holds.
    pub fn len(&self) -> usize {
        self.proofs.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this run added proofs that [`Store::save`] has yet to write.
    pub fn has_unsaved(&self) -> bool {
        !self.added.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &Proof> {
        self.added.iter().rev().chain(self.proofs.iter().rev())
    }

    /// The proof of `m`'s down on a schema with fingerprint `start` on
    /// PostgreSQL `major`, run as `role` (`None`: a superuser), or why
    /// there is none.
    pub fn find(
        &self,
        m: &Migration,
        start: &str,
        (major, role): (u32, Option<&str>),
    ) -> Result<&Proof, Miss> {
        let file = file_key(m);
        let mut same_version = self.all().filter(|p| p.version == m.version).peekable();
        if same_version.peek().is_none() {
            return Err(self.miss(m, "no proof of it was kept".into()));
        }
        let of_file: Vec<&Proof> = same_version.filter(|p| p.file == file).collect();
        if of_file.is_empty() {
            return Err(self.miss(m, "its file changed since its down was proved".into()));
        }
        let own = own_key(m);
        // A down file Backstop saved (`downs --write`), unedited: the down
        // of one of its proofs made without a file. It is no author's down
        // to prove, and a proof of Backstop's own down on this start holds
        // (the rollback runs the down kept with the proof, not the file).
        let saved = m.down.as_ref().is_some_and(|d| {
            of_file.iter().any(|p| p.own_file.is_none() && same_down(&d.text, &p.down))
        });
        let of_file: Vec<&Proof> = of_file
            .into_iter()
            .filter(|p| p.own_file == own || (saved && p.own_file.is_none()))
            .collect();
        if of_file.is_empty() {
            let why = match own {
                Some(_) => "its down file changed since it was proved",
                None => "its down file was removed since it was proved",
            };
            return Err(self.miss(m, why.into()));
        }
        // The major and the role first: what the role may read is part of
        // the key (`ToolHistory::leaving_out`), so a proof made with other
        // rights starts from another key for that reason alone.
        let on_major: Vec<&Proof> = of_file.iter().copied().filter(|p| p.major == major).collect();
        if on_major.is_empty() {
            return Err(self.miss(
                m,
                format!(
                    "its down was proved on PostgreSQL {}, and this server is {major}",
                    of_file[0].major
                ),
            ));
        }
        let standing = |r: Option<&str>| match r {
            Some(r) => format!("role {r}"),
            None => "a superuser".to_string(),
        };
        let as_role: Vec<&Proof> =
            on_major.iter().copied().filter(|p| p.role.as_deref() == role).collect();
        if as_role.is_empty() {
            return Err(self.miss(
                m,
                format!(
                    "its down was proved as {}, and the migrations here run as {}",
                    standing(on_major[0].role.as_deref()),
                    standing(role)
                ),
            ));
        }
        match as_role.iter().find(|p| p.start == start) {
            Some(p) => Ok(p),
            None => Err(self.miss(
                m,
                format!(
                    "the schema it starts from ({start}) is not the one its down was proved on \
                     ({})",
                    as_role[0].start
                ),
            )),
        }
    }

    fn miss(&self, m: &Migration, why: String) -> Miss {
        Miss { version: m.version.clone(), why }
    }

    /// Keeps `proof` (replacing one with the same key), to be written by
    /// [`Store::save`].
    pub fn put(&mut self, mut proof: Proof) {
        proof.seal = proof.sealed();
        self.added.retain(|p| !p.same_key(&proof));
        self.added.push(proof);
    }

    /// Writes what this run added, merged with what the file holds now
    /// (another run may have written it meanwhile). Nothing to write:
    /// nothing happens.
    pub fn save(&mut self) -> Result<(), String> {
        let Some(path) = self.path.clone() else { return Ok(()) };
        if self.added.is_empty() {
            return Ok(());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            crate::pg::export::ignored(dir);
        }
        let _lock = lock(&path)?;
        // What is on disk now wins over what was read at the start, and
        // this run's proofs over both.
        let mut proofs = read(&path).unwrap_or_default();
        for p in &self.added {
            proofs.retain(|q| !q.same_key(p));
            proofs.push(p.clone());
        }
        let proofs = pruned(proofs);
        let file = File { backstop: env!("CARGO_PKG_VERSION").into(), format: FORMAT, proofs };
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.partial");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.proofs = file.proofs;
        self.added.clear();
        Ok(())
    }
}

/// The newest [`PER_VERSION`] proofs of each version, oldest first.
fn pruned(proofs: Vec<Proof>) -> Vec<Proof> {
    let mut by_version: BTreeMap<String, Vec<Proof>> = BTreeMap::new();
    for p in proofs {
        by_version.entry(p.version.clone()).or_default().push(p);
    }
    let mut out: Vec<Proof> = Vec::new();
    for (_, mut list) in by_version {
        list.sort_by_key(|p| p.at);
        let skip = list.len().saturating_sub(PER_VERSION);
        out.extend(list.into_iter().skip(skip));
    }
    out.sort_by(|a, b| (a.at, &a.version).cmp(&(b.at, &b.version)));
    out
}

/// The proofs of the file at `path`: none when it does not exist; `Err`
/// with why it is not trusted otherwise.
fn read(path: &Path) -> Result<Vec<Proof>, Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Some(format!(
                "the proof store {} cannot be read ({e}): every down is proved again",
                path.display()
            )))
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|e| {
        Some(format!(
            "the proof store {} is not one Backstop wrote ({e}): it is ignored and every down \
             is proved again; delete it to start afresh",
            path.display()
        ))
    })?;
    if file.backstop != env!("CARGO_PKG_VERSION") || file.format != FORMAT {
        return Err(Some(format!(
            "the proof store {} was written by Backstop {} (this is {}): its proofs are not \
             trusted and every down is proved again; the file is rewritten with new proofs",
            path.display(),
            file.backstop,
            env!("CARGO_PKG_VERSION")
        )));
    }
    let total = file.proofs.len();
    let proofs: Vec<Proof> = file.proofs.into_iter().filter(|p| p.seal == p.sealed()).collect();
    if proofs.len() < total {
        return Err(Some(format!(
            "{} proof(s) of the store {} do not match their seal (edited or damaged since they \
             were written): the store is not trusted and every down is proved again",
            total - proofs.len(),
            path.display()
        )));
    }
    Ok(proofs)
}

/// An exclusive lock on `<path>.lock`, held until the guard goes.
fn lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let lock_path = path.with_extension("json.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(dir: &Path, version: &str, sql: &str) -> Migration {
        let folder = dir.join(format!("{version}_m"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), sql).unwrap();
        crate::source::load(dir, None)
            .unwrap()
            .migrations
            .into_iter()
            .find(|m| m.version == version)
            .unwrap()
    }

    fn proof(m: &Migration, start: &str, major: u32) -> Proof {
        Proof {
            version: m.version.clone(),
            name: m.name.clone(),
            file: file_key(m),
            own_file: own_key(m),
            own: None,
            start: start.into(),
            end: Some("after".into()),
            major,
            role: None,
            class: Class::Proved,
            down: "DROP TABLE t".into(),
            loses: Vec::new(),
            touched: Vec::new(),
            by: "rehearse".into(),
            at: chrono::Utc::now(),
            seal: String::new(),
        }
    }

    #[test]
    fn a_proof_covers_only_its_file_its_schema_and_its_major() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let mut store = Store::in_memory();
        assert_eq!(store.find(&m, "s0", (15, None)).unwrap_err().why, "no proof of it was kept");
        store.put(proof(&m, "s0", 15));
        assert_eq!(store.find(&m, "s0", (15, None)).unwrap().down, "DROP TABLE t");
        let why = store.find(&m, "s1", (15, None)).unwrap_err().why;
        assert!(why.starts_with("the schema it starts from (s1)"), "{why}");
        let why = store.find(&m, "s0", (16, None)).unwrap_err().why;
        assert_eq!(why, "its down was proved on PostgreSQL 15, and this server is 16");
        // Proved as a superuser: not for a role that may do less.
        let why = store.find(&m, "s0", (15, Some("postgres"))).unwrap_err().why;
        assert_eq!(
            why,
            "its down was proved as a superuser, and the migrations here run as role postgres"
        );
        // One byte more, even a space, is another file.
        let other = tempfile::tempdir().unwrap();
        let changed = migration(other.path(), "1", "CREATE TABLE t (id int); ");
        let why = store.find(&changed, "s0", (15, None)).unwrap_err().why;
        assert_eq!(why, "its file changed since its down was proved");
    }

    #[test]
    fn a_down_file_backstop_saved_unedited_keeps_the_proofs_made_without_it() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let mut store = Store::in_memory();
        // Proved on the target's start (s0), and by `downs` on another (s1),
        // whose down was then saved as the migration's file.
        store.put(proof(&m, "s0", 15));
        let saved = "-- Down of 1_m\nDROP TABLE IF EXISTS t;\n";
        store.put(Proof { start: "s1".into(), down: saved.into(), ..proof(&m, "s1", 15) });
        let with_file = |text: &str| {
            let mut m = m.clone();
            m.down = Some(crate::source::SqlFile {
                path: tmp.path().join("1_m/down.sql"),
                text: text.into(),
                statements: Vec::new(),
                no_transaction: false,
                boundaries: Vec::new(),
            });
            m
        };
        let found = store.find(&with_file(saved), "s0", (15, None)).unwrap();
        assert_eq!(found.down, "DROP TABLE t", "the proof on this start, and its down");
        // Comments and spacing aside, the same statements.
        let respaced = "-- saved by downs\ndrop   table if exists t;";
        assert!(store.find(&with_file(respaced), "s0", (15, None)).is_ok());
        // Edited: an author's down now, which no proof covers.
        let why =
            store.find(&with_file("DROP TABLE t CASCADE;"), "s0", (15, None)).unwrap_err().why;
        assert_eq!(why, "its down file changed since it was proved");
    }

    #[test]
    fn an_unprovable_down_is_kept_for_where_its_up_ends_never_for_its_sql() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let path = tmp.path().join(".backstop/proofs.json");
        let mut store = Store::open(&path);
        store.put(Proof { class: Class::Unprovable, down: String::new(), ..proof(&m, "s0", 15) });
        store.save().unwrap();
        let read = Store::open(&path);
        let kept = read.find(&m, "s0", (15, None)).unwrap();
        assert_eq!((kept.class, kept.down.as_str()), (Class::Unprovable, ""));
        assert_eq!(kept.end.as_deref(), Some("after"), "the next proof starts there");
    }

    #[test]
    fn saved_proofs_are_read_back_and_merged_with_another_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let n = migration(tmp.path(), "2", "CREATE TABLE u (id int);");
        let path = tmp.path().join(".backstop/proofs.json");
        let mut first = Store::open(&path);
        let mut second = Store::open(&path);
        first.put(proof(&m, "s0", 15));
        first.save().unwrap();
        second.put(proof(&n, "s1", 15));
        second.save().unwrap();
        let read = Store::open(&path);
        assert!(read.note.is_none());
        assert!(
            read.find(&m, "s0", (15, None)).is_ok(),
            "the first run's proof survives the second's"
        );
        assert!(read.find(&n, "s1", (15, None)).is_ok());
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_corrupt_store_or_another_versions_is_never_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let path = tmp.path().join("proofs.json");
        std::fs::write(&path, "{ not json").unwrap();
        let store = Store::open(&path);
        assert!(store.is_empty());
        assert!(store.note.as_deref().unwrap().contains("is not one Backstop wrote"));
        let mut sealed = proof(&m, "s0", 15);
        sealed.seal = sealed.sealed();
        let old = File { backstop: "0.0.1".into(), format: FORMAT, proofs: vec![sealed] };
        std::fs::write(&path, serde_json::to_string(&old).unwrap()).unwrap();
        let store = Store::open(&path);
        assert!(store.find(&m, "s0", (15, None)).is_err(), "another version's proof is not used");
        assert!(store.note.as_deref().unwrap().contains("written by Backstop 0.0.1"));
        // Saving replaces the untrusted file with this version's.
        let mut store = store;
        store.put(proof(&m, "s1", 15));
        store.save().unwrap();
        let again = Store::open(&path);
        assert!(again.note.is_none());
        assert!(again.find(&m, "s1", (15, None)).is_ok());
        assert!(again.find(&m, "s0", (15, None)).is_err());
    }

    #[test]
    fn a_proof_edited_since_it_was_written_is_never_used() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let path = tmp.path().join("proofs.json");
        let mut store = Store::open(&path);
        store.put(proof(&m, "s0", 15));
        store.save().unwrap();
        assert!(Store::open(&path).find(&m, "s0", (15, None)).is_ok());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("DROP TABLE t", "DROP TABLE other")).unwrap();
        let store = Store::open(&path);
        assert!(store.find(&m, "s0", (15, None)).is_err());
        assert!(
            store.note.as_deref().unwrap().contains("do not match their seal"),
            "{:?}",
            store.note
        );
    }

    #[test]
    fn only_the_newest_proofs_of_a_version_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let m = migration(tmp.path(), "1", "CREATE TABLE t (id int);");
        let mut proofs = Vec::new();
        for i in 0..7 {
            let mut p = proof(&m, &format!("s{i}"), 15);
            p.at += chrono::Duration::seconds(i);
            proofs.push(p);
        }
        let kept = pruned(proofs);
        let starts: Vec<&str> = kept.iter().map(|p| p.start.as_str()).collect();
        assert_eq!(starts, ["s3", "s4", "s5", "s6"]);
    }
}
