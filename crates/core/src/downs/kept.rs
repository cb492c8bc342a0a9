//! The copy `migrate` proved its downs on, kept for the next deploy.
//!
//! A deploy with nothing rehearsed proves the downs of its new migrations
//! on a copy of the target's schema; making that copy (a throwaway
//! cluster, the schema dumped from the target and restored into it) is
//! most of the deploy's own time on a large schema. After the proofs the
//! copy holds what the target will hold once the deploy applies them, so
//! it is kept (stopped cleanly, its data directory moved beside the
//! throwaway clusters) under a key of everything that makes it the target
//! in small, and the next run that finds the target in that state moves
//! it back and starts it instead of restoring.
//!
//! The key: the schema's semantic fingerprint (the one that keys kept
//! proofs, `downs::proofs`), the history as applied (version and checksum
//! of each), and what the copy shares with the target beside its schema:
//! the server's binaries, the database's name and settings, what the
//! server preloads, this Backstop's version. A target that differs in any
//! of these gets a fresh copy, which is kept in its turn. The server's
//! roles are not in the key (they are the whole server's, and change with
//! other databases): a kept copy gets the roles made on the target since.
//! A kept copy also holds the rows the replayed migrations inserted (a
//! fresh one has none): a proof on it is at least as strict.
//!
//! A kept copy takes room where clusters live (tens of MB, in memory when
//! that is where they run; two at most are kept), and a tiny schema is
//! restored in little more than the keeping costs: a copy is kept only
//! when its schema has [`KEEP_FROM`] relations or more.

use postgres::Client;

use super::DownsError;
use crate::copies::{globals, Workspace};
use crate::pg::cluster::{Cluster, PgBin};
use crate::pg::fingerprint::Schema;
use crate::pg::preload::Preload;
use crate::pg::quote_ident;
use crate::source::Migration;

/// How many relations (tables, views, sequences, foreign tables) a schema
/// has before its copy is worth keeping. A fresh copy of the 92 relations
/// of the 300-migration drizzle history (a new cluster, the schema dumped
/// and restored) made a deploy of one migration 1.65 s against 1.05 s
/// from the kept one.
const KEEP_FROM: usize = 40;

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// What a copy of the target shares with it beside its schema and history.
pub(super) fn env(
    target: &mut Client,
    bin: &PgBin,
    preload: &Preload,
    dbname: &str,
) -> Result<String, DownsError> {
    let settings = globals::database_settings(target, dbname)
        .map_err(db("reading the database's settings"))?;
    Ok(format!(
        "backstop {}\n{} {}\n{dbname}\n{settings:?}\n{}",
        env!("CARGO_PKG_VERSION"),
        bin.dir.display(),
        bin.version,
        preload.conf(dbname)
    ))
}

/// The key of a database in the state whose schema fingerprint is
/// `fingerprint` and whose history `client` reads, with `env`.
pub(super) fn key(env: &str, fingerprint: &str, client: &mut Client) -> Result<String, DownsError> {
    let mut applied = crate::schema::applied::all(client).map_err(db("reading the history"))?;
    applied.sort_by(|a, b| a.version.cmp(&b.version));
    let mut h = blake3::Hasher::new();
    for part in [env, fingerprint] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    for a in &applied {
        h.update(a.version.as_bytes());
        h.update(&[0]);
        h.update(a.checksum.as_bytes());
        h.update(&[0]);
    }
    Ok(h.finalize().to_hex()[..32].to_string())
}

/// A database's schema fingerprint, as kept proofs are keyed.
pub(super) fn fingerprint(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<String, DownsError> {
    let schema = Schema::read(client).map_err(db("reading the schema"))?;
    super::proofs::fingerprint(client, &schema, migrations)
        .map_err(db("reading which tables the role may read"))
}

/// The cluster kept under `key`, started, its start database `base`,
/// with the roles made on the target since it was kept; `None` when none
/// is kept or it cannot take those roles.
pub(super) fn start(
    target: &mut Client,
    (bin, preload): (&PgBin, &Preload),
    base: &str,
    key: &str,
) -> Result<Option<Cluster>, DownsError> {
    let cluster_err = |e| DownsError::from(crate::copies::CopyError::Cluster(e));
    let Some(cluster) =
        Cluster::start_kept(bin.clone(), 64 << 20, preload, base, key).map_err(cluster_err)?
    else {
        return Ok(None);
    };
    // A copy that cannot take the target's roles is not the target in
    // small: a fresh one is made instead.
    let mut admin = cluster.connect("postgres").map_err(cluster_err)?;
    Ok(globals::copy_roles(target, &mut admin).is_ok().then_some(cluster))
}

/// Keeps the cluster of `workspace` for the next run: its copy `copy`
/// (whose session is `client`, whose schema is `schema`, as the replay's
/// picture of it holds it) becomes the start database `base`, and the
/// cluster is kept under the key of that state. Best effort: whatever
/// fails, the copy is only not kept.
pub(super) fn keep(
    workspace: Workspace,
    mut client: Client,
    (copy, base): (&str, &str),
    (schema, migrations): (&Schema, &[Migration]),
    env: &str,
) {
    let relations = schema.objects.iter().filter(|o| o.key.starts_with("relation ")).count();
    if relations < KEEP_FROM {
        return;
    }
    let Ok(fingerprint) = super::proofs::fingerprint(&mut client, schema, migrations) else {
        return;
    };
    let Ok(key) = key(env, &fingerprint, &mut client) else { return };
    drop(client);
    let Some(cluster) = workspace.into_cluster() else { return };
    if copy != base {
        let Ok(mut admin) = cluster.connect("postgres") else { return };
        let renamed =
            admin.batch_execute(&format!("DROP DATABASE {}", quote_ident(base))).and_then(|()| {
                admin.batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(copy),
                    quote_ident(base)
                ))
            });
        if renamed.is_err() {
            return;
        }
    }
    cluster.stop_and_keep(&key);
}
