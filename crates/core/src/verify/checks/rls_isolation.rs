//! `rls_isolation`: the cross-user test. Inside one transaction that is
//! always rolled back, it makes a test row for each of two fresh
//! identities, A and B, then acts as each through the impersonation SQL
//! (Supabase's `authenticated` role and JWT claims by default) and counts:
//! the user must see its own row, and must read, update and delete none
//! of the other's. The service role must still see every row. It checks
//! that the impersonated role is neither superuser, BYPASSRLS nor the
//! table's owner, since those bypass RLS and would prove nothing.
//!
//! Test rows: with `insert`, that SQL makes one (`$1` is the owner value);
//! otherwise Backstop fills each required column (a typed placeholder, or
//! a parent row it makes the same way for a foreign key). With `identity =
//! { table = "users", column = "clerk_id" }` each identity gets a users
//! row and the owner value is that row's key. Nothing outlives the
//! transaction but the sequence values the inserts used.

use postgres::{Client, Transaction};
use rand::Rng;

use super::{db, foreign_keys, pg_message, table, AsText, Outcome, Relation};
use crate::pg::quote_ident;
use crate::verify::config::RlsIsolationCheck;
use crate::verify::VerifyError;

/// How deep Backstop follows foreign keys to make parent rows.
const MAX_DEPTH: usize = 4;
const DEFAULT_SERVICE_ROLE: &str = "service_role";

/// A column as the test-row maker sees it.
#[derive(Debug)]
struct Column {
    name: String,
    required: bool,
    type_name: String,
    category: String,
    base_type: u32,
}

/// One test identity: what the impersonation SQL gets, and what the
/// owner column holds for it.
#[derive(Debug)]
struct Identity {
    label: char,
    identity: String,
    owner: String,
}

pub(crate) fn run(c: &RlsIsolationCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let rel = match table(client, &c.table)? {
        Ok(rel) => rel,
        Err(why) => return Ok(Outcome::Fail(why)),
    };
    let mut tx = client.transaction().map_err(db("starting the isolation test"))?;
    let outcome = test(c, &rel, &mut tx);
    // Whatever happened, nothing of the test stays.
    tx.rollback().map_err(db("rolling back the isolation test"))?;
    outcome
}

fn test(
    c: &RlsIsolationCheck,
    rel: &Relation,
    tx: &mut Transaction<'_>,
) -> Result<Outcome, VerifyError> {
    let columns = columns(tx, rel.oid)?;
    let Some(owner_col) = columns.iter().find(|col| col.name == c.owner_column) else {
        return Ok(Outcome::Fail(format!("{rel} has no column {}", c.owner_column)));
    };
    let rls_on: bool = tx
        .query_one("select relrowsecurity from pg_class where oid = $1", &[&rel.oid])
        .map_err(db("reading pg_class"))?
        .get(0);

    let mut ids = Vec::new();
    for label in ['A', 'B'] {
        ids.push(identity(c, rel, owner_col, tx, label)?);
    }
    for id in &ids {
        insert_test_row(c, rel, tx, id)?;
    }
    let owner = quote_ident(&c.owner_column);
    let counts_sql = format!(
        "select count(*) filter (where {owner} = $1), count(*) filter (where {owner} = $2), \
                count(*) filter (where {owner} is distinct from $1), count(*) from {}",
        rel.sql()
    );
    let all = tx
        .query_one(counts_sql.as_str(), &[&AsText(&ids[0].owner), &AsText(&ids[1].owner)])
        .map_err(db("counting the test rows"))?;
    let (test_rows, total): (i64, i64) = (all.get::<_, i64>(0) + all.get::<_, i64>(1), all.get(3));

    let mut problems = Vec::new();
    let mut roles = Vec::new();
    for (me, other) in [(&ids[0], &ids[1]), (&ids[1], &ids[0])] {
        tx.batch_execute("SAVEPOINT backstop_as_user").map_err(db("making a savepoint"))?;
        let seen = as_user(c, rel, tx, &counts_sql, me, other)?;
        tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_as_user")
            .map_err(db("leaving the impersonation"))?;
        match seen {
            UserView::Refused(why) => return Ok(Outcome::Fail(why)),
            UserView::Seen { role, problems: p } => {
                roles.push(role);
                problems.extend(p);
            }
        }
    }
    let service = service_role(c, rel, tx, &counts_sql, &ids, test_rows, total)?;
    if let Err(why) = &service {
        problems.push(why.clone());
    }
    if problems.is_empty() {
        roles.dedup();
        Ok(Outcome::Pass(format!(
            "users A and B (as role {}) each see only their own row of {rel}; reading, updating and deleting the other's changed 0 rows; {}",
            roles.join("/"),
            service.unwrap_or_default()
        )))
    } else {
        let context = if rls_on {
            String::new()
        } else {
            format!("row level security is disabled on {rel}: ")
        };
        Ok(Outcome::Fail(format!("{context}{}", problems.join("; "))))
    }
}

enum UserView {
    /// The test could not act as the user: the result would prove nothing.
    Refused(String),
    Seen {
        role: String,
        problems: Vec<String>,
    },
}

fn as_user(
    c: &RlsIsolationCheck,
    rel: &Relation,
    tx: &mut Transaction<'_>,
    counts_sql: &str,
    me: &Identity,
    other: &Identity,
) -> Result<UserView, VerifyError> {
    let (a, b) = (me.label, other.label);
    if let Err(e) = tx.batch_execute(&c.impersonate.replace("{user}", &me.identity)) {
        let membership = if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            " (a role that is not superuser must be a member of the role it sets: GRANT that role TO the one Backstop connects as)"
        } else {
            ""
        };
        return Ok(UserView::Refused(format!(
            "the impersonation SQL failed for user {a}: {}{membership}; fix impersonate (the default is Supabase's: the `authenticated` role with request.jwt.claims)",
            pg_message(&e)
        )));
    }
    let who = tx
        .query_one(
            "select current_user::text, r.rolsuper, r.rolbypassrls,
                    pg_has_role(current_user, c.relowner, 'USAGE') and not c.relforcerowsecurity
               from pg_roles r, pg_class c where r.rolname = current_user and c.oid = $1",
            &[&rel.oid],
        )
        .map_err(db("reading the impersonated role"))?;
    let role: String = who.get(0);
    let bypass = match (who.get(1), who.get(2), who.get(3)) {
        (true, _, _) => Some("a superuser".to_string()),
        (_, true, _) => Some("BYPASSRLS".to_string()),
        (_, _, true) => Some(format!("the owner of {rel}")),
        _ => None,
    };
    if let Some(what) = bypass {
        return Ok(UserView::Refused(format!(
            "impersonate leaves the session as role {role}, which is {what} and bypasses row level security, so the test would prove nothing; make impersonate SET ROLE to the role the application uses"
        )));
    }
    let params: [&(dyn postgres::types::ToSql + Sync); 2] =
        [&AsText(&me.owner), &AsText(&other.owner)];
    let counts = match op(tx, counts_sql, &params, true)? {
        Ok(row) => row,
        Err(why) => {
            return Ok(UserView::Refused(format!(
            "user {a} (role {role}) cannot read {rel}: {why}; grant it SELECT, or fix impersonate"
        )))
        }
    };
    let (own, others_test, foreign) = counts;
    if own == 0 {
        return Ok(UserView::Refused(format!(
            "user {a} (role {role}) cannot see its own test row of {rel}, so isolation proves nothing: \
             the policy does not match the impersonation (if the JWT sub is another column of a users table, set identity = {{ table = \"users\", column = \"...\" }}), or it denies everything"
        )));
    }
    let mut problems = Vec::new();
    if others_test > 0 {
        problems.push(format!("user {a} can read {others_test} row(s) of user {b}'s"));
    }
    if foreign > others_test {
        problems.push(format!(
            "user {a} can read {} more row(s) of other owners",
            foreign - others_test
        ));
    }
    let owner = quote_ident(&c.owner_column);
    let other_param: [&(dyn postgres::types::ToSql + Sync); 1] = [&AsText(&other.owner)];
    for (verb, sql) in [
        ("update", format!("update {} set {owner} = {owner} where {owner} = $1", rel.sql())),
        ("delete", format!("delete from {} where {owner} = $1", rel.sql())),
    ] {
        match op(tx, &sql, &other_param, false)? {
            Ok((n, _, _)) if n > 0 => {
                problems.push(format!("user {a} can {verb} {n} row(s) of user {b}'s"))
            }
            // Zero rows, or refused outright (no privilege): blocked either way.
            _ => {}
        }
    }
    Ok(UserView::Seen { role, problems })
}

/// Runs one statement in its own savepoint, undoing it afterwards. A
/// query returns its first three counts; a write returns rows affected.
/// An error of the statement comes back as its text.
fn op(
    tx: &mut Transaction<'_>,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    query: bool,
) -> Result<Result<(i64, i64, i64), String>, VerifyError> {
    tx.batch_execute("SAVEPOINT backstop_op").map_err(db("making a savepoint"))?;
    let result = if query {
        tx.query_one(sql, params).map(|r| (r.get(0), r.get(1), r.get(2)))
    } else {
        tx.execute(sql, params).map(|n| (n as i64, 0, 0))
    };
    tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_op")
        .map_err(db("undoing a test statement"))?;
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.as_db_error().is_some() => Ok(Err(pg_message(&e))),
        Err(e) => Err(VerifyError::Db(crate::pg::DbError::new("running a test statement", e))),
    }
}

fn service_role(
    c: &RlsIsolationCheck,
    rel: &Relation,
    tx: &mut Transaction<'_>,
    counts_sql: &str,
    ids: &[Identity],
    test_rows: i64,
    total: i64,
) -> Result<Result<String, String>, VerifyError> {
    let role = c.service_role.as_deref().unwrap_or(DEFAULT_SERVICE_ROLE);
    let exists: bool = tx
        .query_one("select exists (select 1 from pg_roles where rolname = $1)", &[&role])
        .map_err(db("looking up the service role"))?
        .get(0);
    if !exists {
        return Ok(match c.service_role {
            Some(_) => Err(format!("service role {role} does not exist")),
            None => Ok(format!(
                "service role not checked (no role {DEFAULT_SERVICE_ROLE}; set service_role)"
            )),
        });
    }
    tx.batch_execute("SAVEPOINT backstop_as_service").map_err(db("making a savepoint"))?;
    let seen = match tx.batch_execute(&format!("SET LOCAL ROLE {}", quote_ident(role))) {
        Err(e) => Err(format!("cannot act as service role {role}: {}", pg_message(&e))),
        Ok(()) => {
            let params: [&(dyn postgres::types::ToSql + Sync); 2] =
                [&AsText(&ids[0].owner), &AsText(&ids[1].owner)];
            match op(tx, &format!("select a + b, 0::bigint, t from ({counts_sql}) s(a, b, f, t)"), &params, true)? {
                Err(why) => Err(format!("service role {role} cannot read {rel}: {why}")),
                Ok((test, _, all)) if test == test_rows && all == total => {
                    Ok(format!("{role} sees all {total} rows"))
                }
                Ok((_, _, all)) => Err(format!(
                    "service role {role} sees {all} of {total} rows of {rel}: it must bypass row level security (ALTER ROLE {} BYPASSRLS) or have a policy that shows everything",
                    quote_ident(role)
                )),
            }
        }
    };
    tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_as_service")
        .map_err(db("leaving the service role"))?;
    Ok(seen)
}

/// Makes identity `label`: its impersonation value and its owner value.
fn identity(
    c: &RlsIsolationCheck,
    rel: &Relation,
    owner_col: &Column,
    tx: &mut Transaction<'_>,
    label: char,
) -> Result<Identity, VerifyError> {
    let fk = foreign_keys(tx, Some(&[rel.oid]))?
        .into_iter()
        .find(|fk| fk.columns == [owner_col.name.clone()]);
    match &c.identity {
        Some(lookup) => {
            let users = match table(tx, &lookup.table)? {
                Ok(users) => users,
                Err(why) => return Err(test_row_error(rel, why)),
            };
            let user_cols = columns(tx, users.oid)?;
            let Some(id_col) = user_cols.iter().find(|col| col.name == lookup.column) else {
                return Err(test_row_error(&users, format!("it has no column {}", lookup.column)));
            };
            let key = match (&lookup.key, &fk) {
                (Some(k), _) => k.clone(),
                (None, Some(fk)) if fk.parent.oid == users.oid => fk.referenced[0].clone(),
                _ => {
                    return Err(test_row_error(
                        rel,
                        format!(
                            "{} does not reference {users}; set identity.key to the column of {users} it holds",
                            c.owner_column
                        ),
                    ))
                }
            };
            let identity = placeholder(tx, id_col, label)?;
            let made = make_row(
                tx,
                &users,
                vec![(lookup.column.clone(), identity.clone())],
                None,
                &[key],
                0,
                label,
            )?;
            Ok(Identity { label, identity, owner: made.into_iter().next().unwrap_or_default() })
        }
        None => {
            let identity = placeholder(tx, owner_col, label)?;
            // The owner column references a users table (Supabase: auth.users):
            // the identity needs its row there first.
            if let Some(fk) = fk {
                make_row(
                    tx,
                    &fk.parent,
                    vec![(fk.referenced[0].clone(), identity.clone())],
                    None,
                    &[],
                    1,
                    label,
                )?;
            }
            Ok(Identity { label, owner: identity.clone(), identity })
        }
    }
}

fn insert_test_row(
    c: &RlsIsolationCheck,
    rel: &Relation,
    tx: &mut Transaction<'_>,
    id: &Identity,
) -> Result<(), VerifyError> {
    match &c.insert {
        Some(sql) => {
            let made = tx.execute(sql.as_str(), &[&AsText(&id.owner)]).map_err(|e| {
                test_row_error(rel, format!("the insert SQL failed: {}", pg_message(&e)))
            })?;
            if made == 0 {
                return Err(test_row_error(rel, "the insert SQL made no row".into()));
            }
        }
        None => {
            let preset = vec![(c.owner_column.clone(), id.owner.clone())];
            make_row(tx, rel, preset, Some((&c.owner_column, &id.owner)), &[], 0, id.label)?;
        }
    }
    Ok(())
}

fn test_row_error(rel: &Relation, reason: String) -> VerifyError {
    VerifyError::TestRow { table: rel.to_string(), reason }
}

/// Inserts one row into `rel` with `preset` values, a placeholder in every
/// other required column and parent rows for required foreign keys;
/// returns `returning` as text. Parent rows get `owner` too when they have
/// a column of that name.
#[allow(clippy::too_many_arguments)]
fn make_row(
    tx: &mut Transaction<'_>,
    rel: &Relation,
    mut values: Vec<(String, String)>,
    owner: Option<(&str, &str)>,
    returning: &[String],
    depth: usize,
    label: char,
) -> Result<Vec<String>, VerifyError> {
    let hint = "set insert = \"INSERT INTO ... VALUES ($1, ...)\" on the check to make the test row yourself ($1 is the owner value)";
    let cols = columns(tx, rel.oid)?;
    let has = |values: &[(String, String)], name: &str| values.iter().any(|(n, _)| n == name);
    if let Some((name, value)) = owner {
        if cols.iter().any(|col| col.name == name) && !has(&values, name) {
            values.push((name.to_string(), value.to_string()));
        }
    }
    for fk in foreign_keys(tx, Some(&[rel.oid]))? {
        let needed = fk.columns.iter().any(|name| {
            cols.iter().any(|col| &col.name == name && col.required) && !has(&values, name)
        });
        if !needed || fk.columns.iter().all(|name| has(&values, name)) {
            continue;
        }
        if fk.parent.oid == rel.oid || depth >= MAX_DEPTH {
            return Err(test_row_error(
                rel,
                format!("foreign key {} needs a row Backstop cannot make; {hint}", fk.name),
            ));
        }
        let keys = make_row(tx, &fk.parent, Vec::new(), owner, &fk.referenced, depth + 1, label)?;
        for (name, value) in fk.columns.iter().zip(keys) {
            if !has(&values, name) {
                values.push((name.clone(), value));
            }
        }
    }
    for col in cols.iter().filter(|col| col.required) {
        if !has(&values, &col.name) {
            let value = placeholder(tx, col, label).map_err(|e| match e {
                VerifyError::TestRow { reason, .. } => {
                    test_row_error(rel, format!("{reason}; {hint}"))
                }
                other => other,
            })?;
            values.push((col.name.clone(), value));
        }
    }
    let returned = if returning.is_empty() {
        "true::text".to_string()
    } else {
        returning.iter().map(|r| format!("{}::text", quote_ident(r))).collect::<Vec<_>>().join(", ")
    };
    let sql = if values.is_empty() {
        format!("insert into {} default values returning {returned}", rel.sql())
    } else {
        let names: Vec<String> = values.iter().map(|(n, _)| quote_ident(n)).collect();
        let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        format!(
            "insert into {} ({}) values ({}) returning {returned}",
            rel.sql(),
            names.join(", "),
            marks.join(", ")
        )
    };
    let texts: Vec<AsText<'_>> = values.iter().map(|(_, v)| AsText(v)).collect();
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        texts.iter().map(|t| t as &(dyn postgres::types::ToSql + Sync)).collect();
    let row = tx.query_one(sql.as_str(), &params).map_err(|e| {
        test_row_error(rel, format!("inserting a test row failed: {}; {hint}", pg_message(&e)))
    })?;
    Ok((0..returning.len()).map(|i| row.get::<_, Option<String>>(i).unwrap_or_default()).collect())
}

/// A value for a required column that has no default.
fn placeholder(tx: &mut Transaction<'_>, col: &Column, label: char) -> Result<String, VerifyError> {
    let mut rng = rand::thread_rng();
    let tag = label.to_ascii_lowercase();
    Ok(match (col.category.as_str(), col.type_name.as_str()) {
        (_, "uuid") => {
            let b: [u8; 16] = rng.gen();
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                u16::from_be_bytes([b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
                (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
                u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
            )
        }
        (_, "json" | "jsonb") => "{}".to_string(),
        ("S", _) => format!("rls-{tag}-{:04x}", rng.gen::<u16>()),
        ("N", _) => rng.gen_range(1000..30000).to_string(),
        ("B", _) => "false".to_string(),
        ("D", _) => "now".to_string(),
        ("T", _) => "1 hour".to_string(),
        ("A", _) => "{}".to_string(),
        ("I", _) => "127.0.0.1".to_string(),
        ("E", _) => tx
            .query_opt(
                "select enumlabel::text from pg_enum where enumtypid = $1 order by enumsortorder limit 1",
                &[&col.base_type],
            )
            .map_err(db("reading enum labels"))?
            .map(|r| r.get(0))
            .ok_or_else(|| VerifyError::TestRow {
                table: String::new(),
                reason: format!("enum {} has no values", col.type_name),
            })?,
        _ => {
            return Err(VerifyError::TestRow {
                table: String::new(),
                reason: format!(
                    "column {} of type {} needs a value Backstop cannot invent",
                    col.name, col.type_name
                ),
            })
        }
    })
}

fn columns(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<Column>, VerifyError> {
    let rows = tx
        .query(
            "select a.attname::text,
                    (a.attnotnull or t.typnotnull)
                      and not (a.atthasdef or a.attidentity <> '' or a.attgenerated <> ''),
                    format_type(b.oid, null), b.typcategory::text, b.oid
               from pg_attribute a
               join pg_type t on t.oid = a.atttypid
               join pg_type b on b.oid = coalesce(nullif(t.typbasetype, 0), t.oid)
              where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
              order by a.attnum",
            &[&oid],
        )
        .map_err(db("reading columns"))?;
    Ok(rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            required: r.get(1),
            type_name: r.get(2),
            category: r.get(3),
            base_type: r.get(4),
        })
        .collect())
}
