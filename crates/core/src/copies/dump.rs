//! Copying the source into a throwaway cluster with PostgreSQL's own
//! tools: the cluster readied for the source's objects (its roles, a new
//! enough server), then `pg_dump | pg_restore` streamed without a file.
//! Used by whole copies (`clone.rs`) and sampled ones (`sample.rs`).

use std::io::Read;
use std::process::{Command, Stdio};

use postgres::Client;

use super::CopyError;
use crate::pg::cluster::{Cluster, PgBin};
use crate::pg::conn::{connect_db, LibpqTarget};
use crate::pg::extension_owners;

/// A connection to database `dbname` of the server `url` points at.
pub(crate) fn connect_to(url: &str, dbname: &str) -> Result<Client, CopyError> {
    connect_db(url, Some(dbname), "backstop rehearse").map_err(CopyError::Connect)
}

pub(crate) fn db_err(context: &'static str) -> impl Fn(postgres::Error) -> CopyError {
    move |source| CopyError::Db(crate::pg::DbError::new(context, source))
}

/// A connection to the source database itself.
pub(crate) fn connect_source(source_url: &str) -> Result<Client, CopyError> {
    connect_to(source_url, &source_dbname(source_url)?)
}

/// `pg_dump`'s options leaving out what the source's role may not read,
/// nor change (`pg::unreadable`): pg_dump cannot copy it, and no migration
/// run as the role can use it. `rows`: the dump copies rows too, which
/// row level security may keep from the role; then one that a migration
/// could change stops the copy before pg_dump runs, as it stops a backup.
pub(crate) fn left_out_args(
    source: &mut impl postgres::GenericClient,
    rows: bool,
) -> Result<Vec<String>, CopyError> {
    use crate::pg::unreadable;
    let read = db_err("reading which tables the role may read");
    let left_out = if rows {
        unreadable::for_dump(source).map_err(read)?.map_err(|reason| CopyError::Clone { reason })?
    } else {
        unreadable::left_out_of_schema(source).map_err(read)?
    };
    Ok(unreadable::exclude_args(&left_out))
}

/// Readies `cluster` for the source's objects: checks the local tools are
/// new enough and makes the source's roles there (NOLOGIN, with their
/// attributes, memberships and settings) so ownership and grants restore.
pub(crate) fn prepare_cluster(source_url: &str, cluster: &Cluster) -> Result<(), CopyError> {
    let mut source = connect_source(source_url)?;
    let server_major: i32 = source
        .query_one("select current_setting('server_version_num')::int / 10000", &[])
        .map_err(db_err("reading the source's version"))?
        .get(0);
    let bin = cluster.bin();
    if (bin.major as i32) < server_major {
        return Err(CopyError::Clone {
            reason: format!(
                "the local PostgreSQL tools are version {} but the source runs {server_major}; \
                 install PostgreSQL {server_major} or newer locally",
                bin.major
            ),
        });
    }
    let mut admin = cluster.connect("postgres").map_err(CopyError::Cluster)?;
    super::globals::copy_roles(&mut source, &mut admin)
        .map_err(db_err("creating the source's roles in the copy"))
}

/// Gives database `base` of `cluster` the source database's own settings.
pub(crate) fn carry_settings(
    source_url: &str,
    cluster: &Cluster,
    base: &str,
) -> Result<(), CopyError> {
    let mut source = connect_source(source_url)?;
    let settings = super::globals::database_settings(&mut source, &source_dbname(source_url)?)
        .map_err(db_err("reading the source database's settings"))?;
    let mut admin = cluster.connect("postgres").map_err(CopyError::Cluster)?;
    let _ = super::globals::apply_database_settings(&mut admin, base, &settings);
    Ok(())
}

/// `pg_dump --format=custom [extra] from | pg_restore --exit-on-error -d to`,
/// what each extension makes in `to` given to the role owning it in `from`
/// (`pg::extension_owners`).
pub(crate) fn pipe_dump(
    bin: &PgBin,
    from: &str,
    to: &str,
    extra: &[&str],
) -> Result<(), CopyError> {
    let owners = extension_owners::read(&mut connect_source(from)?)
        .map_err(db_err("reading who owns what each extension made"))?;
    let mut copy = connect_source(to)?;
    extension_owners::arm(&mut copy, &owners)
        .map_err(db_err("readying the copy to give extensions' objects to their owners"))?;
    pipe(bin, from, to, extra)?;
    extension_owners::disarm(&mut copy)
        .map_err(db_err("taking the extension owners' trigger off the copy"))
}

fn pipe(bin: &PgBin, from: &str, to: &str, extra: &[&str]) -> Result<(), CopyError> {
    let from = LibpqTarget::from_url(from, None).map_err(CopyError::Connect)?;
    let to = LibpqTarget::from_url(to, None).map_err(CopyError::Connect)?;
    let spawn_err = |tool: &str| {
        let tool = tool.to_string();
        move |source: std::io::Error| CopyError::Tool {
            tool: tool.clone(),
            output: source.to_string(),
        }
    };
    let mut dump = Command::new(bin.tool("pg_dump"));
    dump.args(["--format=custom", "--no-password"]).args(extra);
    dump.arg(format!("--dbname={}", from.conninfo));
    from.apply(&mut dump);
    crate::shell::die_with_parent(&mut dump);
    let mut dump =
        dump.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(spawn_err("pg_dump"))?;
    let mut restore = Command::new(bin.tool("pg_restore"));
    restore.args(["--no-password", "--exit-on-error"]).arg(format!("--dbname={}", to.conninfo));
    to.apply(&mut restore);
    crate::shell::die_with_parent(&mut restore);
    let restore = restore
        .stdin(dump.stdout.take().expect("piped"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err("pg_restore"))?;
    let restored = restore.wait_with_output().map_err(spawn_err("pg_restore"))?;
    let mut dump_err = String::new();
    if let Some(mut e) = dump.stderr.take() {
        let _ = e.read_to_string(&mut dump_err);
    }
    let dumped = dump.wait().map_err(spawn_err("pg_dump"))?;
    if !dumped.success() {
        return Err(CopyError::Tool { tool: "pg_dump".into(), output: dump_err.trim().into() });
    }
    if !restored.status.success() {
        let output = String::from_utf8_lossy(&restored.stderr).trim().to_string();
        let hint = if output.contains("extension") {
            " (an extension the source uses is not installed locally; install it, e.g. its postgresql-contrib or -<name> package)"
        } else {
            ""
        };
        return Err(CopyError::Tool {
            tool: "pg_restore".into(),
            output: format!("{output}{hint}"),
        });
    }
    Ok(())
}

pub(crate) fn source_dbname(url: &str) -> Result<String, CopyError> {
    crate::pg::database_of(url).map_err(CopyError::Connect)
}

/// Records on `base` what the source has applied: a schema-only copy
/// holds no rows, its history's neither, and without them every migration
/// the source has would be played again on a schema that has it.
pub(crate) fn copy_history(
    source_url: &str,
    cluster: &Cluster,
    base: &str,
) -> Result<(), CopyError> {
    let mut source = connect_source(source_url)?;
    if !crate::schema::exists(&mut source).map_err(db_err("reading the source's history"))? {
        return Ok(());
    }
    let rows =
        crate::schema::applied::all(&mut source).map_err(db_err("reading the source's history"))?;
    let mut copy = cluster.connect(base).map_err(CopyError::Cluster)?;
    crate::schema::ensure(&mut copy).map_err(db_err("creating Backstop's tables on the copy"))?;
    crate::schema::applied::insert_copied(&mut copy, &rows)
        .map_err(db_err("copying the history to the copy"))
}
