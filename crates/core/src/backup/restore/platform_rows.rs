//! The project's rows in the platform's tables, in a restore in place.
//!
//! A platform keeps some configuration of the project in its own tables:
//! a release or the dashboard makes a storage bucket as a row of
//! `storage.buckets`, schedules a job as a row of pg_cron's `cron.job`
//! (a job left behind runs SQL on tables the restore took away), or keeps
//! a secret as a row of Vault's `vault.secrets` (encrypted; written back
//! as the backup holds it, never decrypted). Those rows are the
//! project's, unlike what users
//! write there (signups in `auth.users`, files in `storage.objects`), so
//! a restore in place makes them as the backup holds them: a row the
//! backup holds and the table lacks or holds otherwise is written back,
//! one made since is removed, unless rows of other tables refer to it (a
//! bucket with files): that one stays, named. The backup's rows come
//! from `pg_restore` itself, loaded into a table of Backstop's session;
//! after the restore they are compared again, and a difference is one.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use postgres::error::SqlState;
use postgres::Client;

use super::toc::Toc;
use crate::backup::manifest::Manifest;
use crate::backup::BackupError;
use crate::backup::Tools;
use crate::pg::quote_ident;
use backstop_sql::rewrite::literal;

/// The platform's tables whose rows are the project's (schema, table).
const TABLES: &[(&str, &str)] = &[("storage", "buckets"), ("cron", "job"), ("vault", "secrets")];

/// The tables among [`TABLES`] whose rows a trigger may rewrite as they
/// are written: Vault before 0.3 encrypts each secret in a trigger on
/// insert and update, so a secret written back as the backup holds it
/// (already encrypted) would be encrypted twice. Where such a table has a
/// trigger of its own, its rows stay, named.
const REWRITTEN: &[(&str, &str)] = &[("vault", "secrets")];

/// What the restore does with the project's rows in the platform's tables.
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// Statements run in the restore's transaction after its objects.
    pub after: String,
    /// What it does and leaves, each a line to say.
    pub done: Vec<String>,
    pub left: Vec<String>,
    /// The tables decided, with the table of the backup's rows and the
    /// keys that stay though the backup has none.
    staged: Vec<Staged>,
}

#[derive(Debug)]
struct Staged {
    /// As SQL names it, and as it is said.
    table: String,
    said: String,
    /// The session's table of the backup's rows.
    rows: String,
    /// The primary key's columns.
    keys: Vec<String>,
    /// The keys of rows made since that stay (named).
    staying: Vec<String>,
}

/// A row made since the backup that stays: its key, and why.
type Staying = (String, &'static str);

/// The tables this module decides, as `schema.table`: the rest of the
/// platform's rows stay as they are.
pub(super) fn handled() -> Vec<String> {
    TABLES.iter().map(|(s, t)| format!("{s}.{t}")).collect()
}

/// `columns` quoted, each after `prefix`, joined by `sep`.
fn names(columns: &[String], prefix: &str, sep: &str) -> String {
    columns.iter().map(|c| format!("{prefix}{}", quote_ident(c))).collect::<Vec<_>>().join(sep)
}

/// A platform table's key columns, and why its rows stay, if they do.
type Access = (Vec<String>, Option<&'static str>);

/// The primary key's columns of `schema.name`, and why the restore may
/// not write its rows as the backup holds them, if it may not: the role
/// may not read and write all of them (row security, or a privilege
/// missing), or a trigger may rewrite them ([`REWRITTEN`]). `None` where
/// there is no such table.
fn access(
    client: &mut Client,
    (schema, name): (&str, &str),
) -> Result<Option<Access>, postgres::Error> {
    let table = format!("{}.{}", quote_ident(schema), quote_ident(name));
    let row = client.query_opt(
        "select array(select a.attname::text from pg_index x
                        join pg_attribute a on a.attrelid = x.indrelid and a.attnum = any(x.indkey)
                       where x.indrelid = c.oid and x.indisprimary order by a.attnum),
                row_security_active(c.oid)
                  or not has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE'),
                exists (select from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal)
           from pg_class c where c.oid = to_regclass($1)",
        &[&table],
    )?;
    Ok(row.map(|r| {
        let why = match (r.get(1), r.get(2)) {
            (true, _) => Some("the role may not read and write them all"),
            (false, true) if REWRITTEN.contains(&(schema, name)) => Some(
                "a trigger on it may rewrite what is written (Vault before 0.3 encrypts each \
                 secret as it is written: one written back would be encrypted twice)",
            ),
            _ => None,
        };
        (r.get(0), why)
    }))
}

/// Whether a restore in place on `client`'s database makes the rows of
/// the platform's table `schema.name` as the backup holds them (it is one
/// of [`TABLES`], with a key, and nothing keeps the restore from writing
/// them: see [`access`]).
pub(crate) fn decides(client: &mut Client, schema: &str, name: &str) -> bool {
    TABLES.contains(&(schema, name))
        && matches!(access(client, (schema, name)), Ok(Some((keys, None))) if !keys.is_empty())
}

/// Decides, for backup `m` (its list `toc`, its dump in `dump`), how the
/// project's rows in the platform's tables become the backup's.
pub(super) fn plan(
    client: &mut Client,
    tools: &Tools,
    dump: &Path,
    toc: &Toc,
    m: &Manifest,
) -> Result<Rows, BackupError> {
    let mut rows = Rows::default();
    for (i, (schema, name)) in TABLES.iter().enumerate() {
        if !toc.has("TABLE DATA", schema, name) {
            continue;
        }
        let table = format!("{}.{}", quote_ident(schema), quote_ident(name));
        let found = access(client, (schema, name))
            .map_err(BackupError::db("reading the platform's tables"))?;
        let Some((keys, kept_from)) = found else { continue };
        let said = format!("{schema}.{name}");
        if keys.is_empty() || kept_from.is_some() {
            let why = kept_from.unwrap_or("it has no key");
            rows.left.push(format!("{said}: rows stay as they are ({why})"));
            continue;
        }
        let staged = Staged {
            table,
            said: said.clone(),
            rows: format!("pg_temp.backstop_rows_{i}"),
            keys,
            staying: Vec::new(),
        };
        let columns = load(client, (tools, dump, &m.id), (schema, name), &staged.rows)?;
        let back = staged.written_otherwise(client)?;
        let (removed, staying) = staged.made_since(client, &mut rows.after)?;
        for (key, why) in &staying {
            rows.left.push(format!(
                "{said} ({key}): stays though backup {} has no such row: {why}",
                m.id
            ));
        }
        let staying = staying.into_iter().map(|(key, _)| key).collect();
        for json in &back {
            rows.after.push_str(&staged.write_back(&columns, json));
        }
        if !back.is_empty() || removed > 0 {
            rows.done.push(format!(
                "{said}: {} row(s) written back and {removed} removed, as backup {} holds them",
                back.len(),
                m.id
            ));
        }
        rows.staged.push(Staged { staying, ..staged });
    }
    Ok(rows)
}

impl Staged {
    /// `concat_ws` of the key columns of alias `t`: a row named.
    fn key_text(&self) -> String {
        format!("concat_ws(', ', {})", names(&self.keys, "t.", ", "))
    }

    /// The backup's rows the table lacks or holds otherwise, as JSON.
    fn written_otherwise(&self, client: &mut Client) -> Result<Vec<String>, BackupError> {
        let sql = format!(
            "select row_to_json(t)::text from {} t
              where not exists (select from {} n where n::text = t::text)",
            self.rows, self.table
        );
        let found =
            client.query(&sql, &[]).map_err(BackupError::db("comparing the platform's rows"))?;
        Ok(found.iter().map(|r| r.get(0)).collect())
    }

    /// The rows made since the backup: the `DELETE` of each that can go
    /// pushed to `after`; how many, and the keys of those that stay, with
    /// why. One that rows of other tables refer to stays (its removal,
    /// tried in a transaction that is rolled back, fails); and where a
    /// table's foreign key would take its rows with it (`ON DELETE
    /// CASCADE`, `SET NULL`, `SET DEFAULT`), none is removed.
    fn made_since(
        &self,
        client: &mut Client,
        after: &mut String,
    ) -> Result<(usize, Vec<Staying>), BackupError> {
        const TRYING: &str = "trying a removal";
        let values = names(&self.keys, "quote_nullable(t.", ") || ', ' || ");
        let sql = format!(
            "select {key}, format('DELETE FROM {table} WHERE ({keys}) = (%s);\n', {values})),
                    exists (select from pg_constraint f where f.confrelid = '{table}'::regclass
                              and f.contype = 'f' and f.confdeltype not in ('a', 'r'))
               from {table} t
              where not exists (select from {rows} s where ({ours}) = ({theirs}))
              order by 1",
            key = self.key_text(),
            table = self.table,
            keys = names(&self.keys, "", ", "),
            rows = self.rows,
            ours = names(&self.keys, "s.", ", "),
            theirs = names(&self.keys, "t.", ", "),
        );
        let extra =
            client.query(&sql, &[]).map_err(BackupError::db("comparing the platform's rows"))?;
        let (mut removed, mut staying) = (0, Vec::new());
        for row in &extra {
            let (key, delete, cascades): (String, String, bool) =
                (row.get(0), row.get(1), row.get(2));
            if cascades {
                staying.push((key, "a foreign key of another table would change its rows with it"));
                continue;
            }
            let mut tx = client.transaction().map_err(BackupError::db(TRYING))?;
            match tx.batch_execute(&delete) {
                Ok(()) => {
                    after.push_str(&delete);
                    removed += 1;
                }
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    staying.push((key, "rows of other tables refer to it"))
                }
                Err(e) => return Err(BackupError::db(TRYING)(e)),
            }
            tx.rollback().map_err(BackupError::db(TRYING))?;
        }
        Ok((removed, staying))
    }

    /// The statement that writes one of the backup's rows (`json`) back.
    fn write_back(&self, columns: &[String], json: &str) -> String {
        let set: Vec<String> = columns.iter().filter(|c| !self.keys.contains(c)).cloned().collect();
        let conflict = match set.is_empty() {
            true => "NOTHING".to_string(),
            false => format!(
                "UPDATE SET ({}) = ROW({})",
                names(&set, "", ", "),
                names(&set, "EXCLUDED.", ", ")
            ),
        };
        let (table, list) = (&self.table, names(columns, "", ", "));
        format!(
            "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_record(NULL::{table}, {}) \
             ON CONFLICT ({}) DO {conflict};\n",
            literal(json),
            names(&self.keys, "", ", ")
        )
    }
}

impl Rows {
    /// What differs, after the restore, from the backup's rows (less the
    /// rows that stay, named already).
    pub(super) fn differences(&self, client: &mut Client) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        for s in &self.staged {
            let key = s.key_text();
            let differ: Vec<String> = client
                .query(
                    &format!(
                        "select {key} from {rows} t where not exists (select from {table} n where n::text = t::text)
                         union
                         select {key} from {table} t where not exists (select from {rows} s where s::text = t::text)
                                                     and not ({key} = any($1))
                         order by 1",
                        rows = s.rows,
                        table = s.table
                    ),
                    &[&s.staying],
                )
                .map_err(BackupError::db("comparing the platform's rows after the restore"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            out.extend(
                differ.iter().map(|k| format!("{} ({k}) is not as the backup holds it", s.said)),
            );
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", s.rows))
                .map_err(BackupError::db("dropping the backup's rows"))?;
        }
        Ok(out)
    }
}

/// Loads the backup's rows of `schema.name` (as `pg_restore` writes them
/// from backup `id`'s `dump`) into `staged`, a table of this session
/// shaped like it (its generated columns computed alike); its columns.
fn load(
    client: &mut Client,
    (tools, dump, id): (&Tools, &Path, &str),
    (schema, name): (&str, &str),
    staged: &str,
) -> Result<Vec<String>, BackupError> {
    let table = format!("{}.{}", quote_ident(schema), quote_ident(name));
    let mut cmd = std::process::Command::new(tools.pg_restore());
    crate::shell::die_with_parent(&mut cmd);
    let out = cmd
        .args(["--data-only", "--file=-"])
        .arg(format!("--schema={schema}"))
        .arg(format!("--table={name}"))
        .arg(dump)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BackupError::Spawn {
            tool: tools.pg_restore().display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(BackupError::RestoreFailed {
            id: id.to_string(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let script = String::from_utf8_lossy(&out.stdout);
    // `COPY schema.table (columns) FROM stdin;`, its rows, `\.`; the
    // names quoted only where they must be, as pg_dump writes them.
    let header = format!("COPY {} ", backstop_sql::rewrite::qualified(schema, name));
    let mut lines = script.lines().skip_while(|l| !l.starts_with(&header));
    let columns = lines
        .next()
        .and_then(|l| l.strip_prefix(&header)?.strip_suffix(" FROM stdin;"))
        .map(str::to_string)
        .unwrap_or_default();
    const LOADING: &str = "loading the backup's rows";
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {staged}; CREATE TEMP TABLE {} (LIKE {table} INCLUDING GENERATED)",
            staged.trim_start_matches("pg_temp.")
        ))
        .map_err(BackupError::db(LOADING))?;
    if !columns.is_empty() {
        let copy = format!("COPY {staged} {columns} FROM STDIN");
        let mut writer = client.copy_in(&copy).map_err(BackupError::db(LOADING))?;
        for line in lines.take_while(|l| *l != "\\.") {
            writer.write_all(format!("{line}\n").as_bytes()).map_err(|e| {
                BackupError::RestoreFailed { id: id.to_string(), output: e.to_string() }
            })?;
        }
        writer.finish().map_err(BackupError::db(LOADING))?;
    }
    // The columns pg_dump writes: all but the generated ones.
    client
        .query_one(
            "select array(select attname::text from pg_attribute
                           where attrelid = to_regclass($1) and attnum > 0 and not attisdropped
                             and attgenerated = '' order by attnum)",
            &[&table],
        )
        .map(|r| r.get(0))
        .map_err(BackupError::db(LOADING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::Cluster;

    #[test]
    fn a_row_made_since_goes_unless_others_refer_to_it_or_would_go_with_it() {
        let cluster = Cluster::start().unwrap();
        let mut c = cluster.connect("postgres").unwrap();
        c.batch_execute(
            "CREATE TABLE buckets (id text PRIMARY KEY, name text);
             INSERT INTO buckets VALUES ('old', 'old'), ('new', 'new'), ('full', 'full');
             CREATE TABLE files (bucket text REFERENCES buckets);
             INSERT INTO files VALUES ('full');
             CREATE TEMP TABLE staged (LIKE buckets);
             INSERT INTO staged VALUES ('old', 'old');",
        )
        .unwrap();
        let s = Staged {
            table: "public.buckets".into(),
            said: "public.buckets".into(),
            rows: "pg_temp.staged".into(),
            keys: vec!["id".into()],
            staying: Vec::new(),
        };
        let mut after = String::new();
        let (removed, staying) = s.made_since(&mut c, &mut after).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(after, "DELETE FROM public.buckets WHERE (\"id\") = ('new');\n");
        assert_eq!(staying, [("full".to_string(), "rows of other tables refer to it")]);
        let rows: i64 = c.query_one("select count(*) from buckets", &[]).unwrap().get(0);
        assert_eq!(rows, 3, "the trials changed nothing");

        // A key that would take rows with a removal: none is removed.
        c.batch_execute("CREATE TABLE notes (bucket text REFERENCES buckets ON DELETE CASCADE)")
            .unwrap();
        let mut after = String::new();
        let (removed, staying) = s.made_since(&mut c, &mut after).unwrap();
        assert_eq!((removed, after.as_str()), (0, ""));
        let keys: Vec<&str> = staying.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["full", "new"]);
    }
}
