//! Expand/contract against a real cluster: two clients, one per shape,
//! write at once and each sees the other's rows in its own shape; rollback
//! and contract keep every row; a statement with no expand form, or a
//! second expand, is refused and changes nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backstop_core::expand::{self, ExpandError};
use backstop_core::migrate::{self, ApplyError, MigrateOptions, Quiet, Settings};
use backstop_core::pg::cluster::Cluster;
use backstop_core::source::{self, Migration};

pub(crate) const V2: &str = "20240102000000";
pub(crate) const NEW: &str = "public_20240102000000";

pub(crate) fn settings() -> Settings {
    Settings {
        protected_tables: vec![],
        lock_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(60),
        lock_wait: std::time::Duration::from_secs(5),
        lock_retries: 0,
        keep: None,
        tool_history: backstop_core::migrate::InStep::Auto,
        reason: None,
        protected_made: Vec::new(),
        extensions_as_superuser: None,
    }
}

pub(crate) fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("up.sql"), sql).unwrap();
}

pub(crate) fn load(dir: &Path) -> Vec<Migration> {
    source::load(dir, None).unwrap().migrations
}

/// A database with `first` (a migration `20240101000000_<name>`) applied
/// by Backstop, and `up` pending as the second migration.
pub(crate) fn setup_with(
    cluster: &Cluster,
    db: &str,
    (name, first): (&str, &str),
    up: &str,
) -> (tempfile::TempDir, postgres::Client) {
    cluster.create_database(db, None).unwrap();
    let mut client = cluster.connect(db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &format!("20240101000000_{name}"), first);
    let opts = MigrateOptions::default();
    let report =
        migrate::migrate(&mut client, &load(dir.path()), &settings(), &opts, &mut [], &mut Quiet)
            .unwrap();
    assert!(!report.failed());
    write(dir.path(), &format!("{V2}_next"), up);
    (dir, client)
}

/// A database with `users` applied by Backstop, two rows in it, and the
/// second migration (`up`) pending.
fn setup(cluster: &Cluster, db: &str, up: &str) -> (tempfile::TempDir, postgres::Client) {
    let users = "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL, email text);\n\
                 INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');";
    setup_with(cluster, db, ("users", users), up)
}

const UP: &str = "ALTER TABLE users RENAME COLUMN name TO full_name;\n\
                  ALTER TABLE users ADD COLUMN nick text;\n\
                  ALTER TABLE users ADD COLUMN score int NOT NULL DEFAULT 0;\n";

pub(crate) fn shape(cluster: &Cluster, db: &str, search_path: &str) -> postgres::Client {
    let mut c = cluster.connect(db).unwrap();
    c.batch_execute(&format!("SET search_path = {search_path}")).unwrap();
    c
}

fn count(c: &mut postgres::Client) -> i64 {
    c.query_one("select count(*) from users", &[]).unwrap().get(0)
}

/// The old shape's client writes rows, one a statement, until told to stop.
fn old_writer(cluster: &Cluster, db: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    let mut old = shape(cluster, db, "public");
    std::thread::spawn(move || {
        let mut n = 0i64;
        while !stop.load(Ordering::Relaxed) || n < 50 {
            old.execute(
                "insert into users (name, email) values ($1, 'old@x')",
                &[&format!("old{n}")],
            )
            .unwrap();
            n += 1;
        }
        n
    })
}

fn columns(c: &mut postgres::Client) -> Vec<String> {
    c.query(
        "select attname::text from pg_attribute where attrelid = 'public.users'::regclass
           and attnum > 0 and not attisdropped order by attnum",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Both shapes write during the expand; then the expand is undone or contracted.
fn expand_with_writers(cluster: &Cluster, db: &str) -> (tempfile::TempDir, postgres::Client, i64) {
    let (dir, mut client) = setup(cluster, db, UP);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = old_writer(cluster, db, stop.clone());
    let done =
        expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
            .unwrap();
    assert_eq!(done.new_schema, NEW);
    // The new application's sessions find the views first, the rest in public.
    let mut new = shape(cluster, db, &format!("{NEW}, public"));
    for i in 0..40 {
        new.execute(
            "insert into users (full_name, email, nick, score) values ($1, 'new@x', 'n', 7)",
            &[&format!("new{i}")],
        )
        .unwrap();
    }
    new.execute("update users set nick = 'annie' where full_name = 'ann'", &[]).unwrap();
    stop.store(true, Ordering::Relaxed);
    let old_rows = writer.join().unwrap();
    // Each shape sees the other's rows, in its own shape.
    let mut old = shape(cluster, db, "public");
    let total = 2 + old_rows + 40;
    assert_eq!(count(&mut old), total);
    assert_eq!(count(&mut new), total);
    let n: i64 =
        old.query_one("select count(*) from users where name like 'new%'", &[]).unwrap().get(0);
    assert_eq!(n, 40, "the old shape sees the new shape's rows under the old name");
    let (n, s): (i64, i64) = {
        let r = new
            .query_one(
                "select count(*), sum(score) from users where full_name like 'old%' and nick is null",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, s), (old_rows, 0), "old-shape rows get the added column's default");
    let nick: String =
        new.query_one("select nick from users where full_name = 'ann'", &[]).unwrap().get(0);
    assert_eq!(nick, "annie");
    // The table keeps its old name until contract; the added columns are real.
    assert_eq!(columns(&mut client), ["id", "name", "email", "nick", "score"]);
    (dir, client, total)
}

#[test]
fn both_shapes_write_at_once_and_rollback_keeps_every_row() {
    let cluster = Cluster::start().unwrap();
    let (dir, mut client, total) = expand_with_writers(&cluster, "exp_rollback");
    let ms = load(dir.path());

    // While it is open, the same expand again only goes on with it; one of
    // other migrations and a plain migrate are refused.
    let same = expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {});
    assert!(same.unwrap().resumed);
    write(dir.path(), "20240103000000_more", "ALTER TABLE users ADD COLUMN more text;\n");
    let more = load(dir.path());
    let again = expand::expand(&mut client, &more, &settings(), "public", &mut [], &mut |_| {})
        .unwrap_err();
    assert!(matches!(again, ExpandError::InProgress { .. }), "{again}");
    assert_eq!(again.exit_code(), 2);
    std::fs::remove_dir_all(dir.path().join("20240103000000_more")).unwrap();
    let plain = migrate::migrate(
        &mut client,
        &ms,
        &settings(),
        &MigrateOptions::default(),
        &mut [],
        &mut Quiet,
    )
    .unwrap_err();
    assert!(matches!(plain, ApplyError::Expanded { .. }), "{plain}");
    assert_eq!(columns(&mut client), ["id", "name", "email", "nick", "score"]);

    let undone = expand::rollback(&mut client, &settings()).unwrap();
    assert_eq!(undone.version, V2);
    assert_eq!(count(&mut client), total, "a rollback lost rows");
    assert_eq!(columns(&mut client), ["id", "name", "email"]);
    let gone: bool = client
        .query_one("select not exists (select 1 from pg_namespace where nspname = $1)", &[&NEW])
        .unwrap()
        .get(0);
    assert!(gone, "the version schema is still there");
    let applied = backstop_core::schema::applied::versions(&mut client).unwrap();
    assert_eq!(applied, ["20240101000000"]);
    let e = expand::rollback(&mut client, &settings()).unwrap_err();
    assert!(matches!(e, ExpandError::NoExpand), "{e}");
    // The migration is pending again and applies the plain way.
    let report = migrate::migrate(
        &mut client,
        &ms,
        &settings(),
        &MigrateOptions::default(),
        &mut [],
        &mut Quiet,
    )
    .unwrap();
    assert!(!report.failed());
    assert_eq!(columns(&mut client), ["id", "full_name", "email", "nick", "score"]);
}

#[test]
fn contract_makes_the_new_shape_real_and_keeps_every_row() {
    let cluster = Cluster::start().unwrap();
    let (dir, mut client, total) = expand_with_writers(&cluster, "exp_contract");
    let mut new = shape(&cluster, "exp_contract", &format!("{NEW}, public"));
    let done = expand::contract(&mut client, &load(dir.path()), &settings(), &mut [], &mut |_| {})
        .unwrap();
    assert_eq!(done.version, V2);
    assert_eq!(columns(&mut client), ["id", "full_name", "email", "nick", "score"]);
    assert_eq!(count(&mut client), total, "a contract lost rows");
    // With the version schema gone, the same search_path falls through to public.
    assert_eq!(count(&mut new), total);
    let applied = backstop_core::schema::applied::versions(&mut client).unwrap();
    assert_eq!(applied, ["20240101000000", V2]);
    let e = expand::contract(&mut client, &load(dir.path()), &settings(), &mut [], &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, ExpandError::NoExpand), "{e}");
    assert_eq!(e.exit_code(), 2);
    let kinds: Vec<String> = client
        .query("select kind || ':' || outcome from backstop.events where kind in ('expand', 'contract') order by id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["expand:ok", "contract:ok"]);
}

#[test]
fn a_statement_with_no_expand_form_is_refused_by_place_and_nothing_changes() {
    let cluster = Cluster::start().unwrap();
    let up = "ALTER TABLE users ADD COLUMN nick text;\nCREATE INDEX ON users (email);\n\
              ALTER TABLE users ADD COLUMN born date NOT NULL;\n";
    let (dir, mut client) = setup(&cluster, "exp_refused", up);
    let e =
        expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
            .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let ExpandError::NoExpandForm(refusals) = &e else { panic!("{e}") };
    let places: Vec<&str> = refusals.iter().map(|r| r.place.rsplit('/').next().unwrap()).collect();
    assert_eq!(places, ["up.sql:2", "up.sql:3"], "{e}");
    assert!(e.to_string().contains("name it"), "{e}");
    assert!(e.to_string().contains("NOT NULL without a default"), "{e}");
    assert_eq!(columns(&mut client), ["id", "name", "email"], "a refused expand changed the table");
    let open: i64 = client.query_one("select count(*) from backstop.expands", &[]).unwrap().get(0);
    assert_eq!(open, 0);
    let schemas: i64 = client
        .query_one("select count(*) from pg_namespace where nspname like 'public\\_%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0);
}

#[test]
fn a_pending_migration_that_cannot_run_as_written_is_refused_with_its_place() {
    let cluster = Cluster::start().unwrap();
    let (dir, mut client) =
        setup(&cluster, "exp_unrunnable", "ALTER TABLE users ADD COLUMN nick text;\n");
    write(dir.path(), "20240103000000_broken", "ALTER TABLE users ADD COLUMN (;\n");
    let ms = load(dir.path());
    let e =
        expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap_err();
    let ExpandError::NoExpandForm(refusals) = &e else { panic!("{e}") };
    assert_eq!(refusals.len(), 1, "{e}");
    assert!(refusals[0].place.contains("20240103000000_broken/up.sql:1"), "{e}");
    assert!(refusals[0].reason.contains("cannot run as written"), "{e}");
    let open: i64 = client.query_one("select count(*) from backstop.expands", &[]).unwrap().get(0);
    assert_eq!(open, 0, "nothing expanded");
}

fn exists(c: &mut postgres::Client, relation: &str) -> bool {
    c.query_one("select to_regclass($1) is not null", &[&relation]).unwrap().get(0)
}

#[test]
fn dropped_columns_are_hidden_and_new_tables_and_indexes_served_until_contract() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_drop_create";
    let up = "ALTER TABLE users DROP COLUMN email;\n\
              CREATE TABLE notes (id bigserial PRIMARY KEY, user_id bigint REFERENCES users (id), \
              body text NOT NULL);\n\
              CREATE INDEX users_name_idx ON users (name);\n";
    let (dir, mut client) = setup(&cluster, db, up);
    let ms = load(dir.path());
    expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    let mut new = shape(&cluster, db, &format!("{NEW}, public"));
    let shown: Vec<String> = new
        .query(
            "select column_name::text from information_schema.columns \
             where table_schema = $1 and table_name = 'users' order by ordinal_position",
            &[&NEW],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(shown, ["id", "name"], "the new shape hides the dropped column");
    new.execute("insert into users (name) values ('cat')", &[]).unwrap();
    new.execute("insert into notes (user_id, body) values (1, 'hello')", &[]).unwrap();
    let mut old = shape(&cluster, db, "public");
    old.execute("insert into users (name, email) values ('dan', 'd@x')", &[]).unwrap();
    assert_eq!(count(&mut new), 4);
    assert!(exists(&mut client, "public.users_name_idx"), "the index is built at expand");

    expand::rollback(&mut client, &settings()).unwrap();
    assert_eq!(columns(&mut client), ["id", "name", "email"], "the old shape's column stays");
    assert_eq!(count(&mut client), 4, "rows written through either shape stay");
    assert!(!exists(&mut client, "public.notes"), "the table the expand made goes");
    assert!(!exists(&mut client, "public.users_name_idx"), "the index the expand built goes");

    expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap();
    assert_eq!(columns(&mut client), ["id", "name"], "contract drops the column");
    assert!(exists(&mut client, "public.notes") && exists(&mut client, "public.users_name_idx"));
    assert_eq!(count(&mut client), 4);

    // A column inserts cannot leave out is not hidden: the new shape could not insert.
    write(dir.path(), "20240103000000_drop_name", "ALTER TABLE users DROP COLUMN name;\n");
    let e =
        expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
            .unwrap_err();
    assert!(e.to_string().contains("NOT NULL without a default"), "{e}");
    assert_eq!(columns(&mut client), ["id", "name"]);
}

#[test]
fn the_new_shape_keeps_row_level_security_and_grants_for_a_role_that_owns_nothing() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_rls";
    cluster.create_database(db, None).unwrap();
    let mut client = cluster.connect(db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "20240101000000_notes",
        "CREATE TABLE notes (id bigserial PRIMARY KEY, owner text NOT NULL DEFAULT current_user, \
         body text, stars int);\n\
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\n\
         CREATE POLICY own ON notes USING (owner = current_user) WITH CHECK (owner = current_user);\n\
         INSERT INTO notes (owner, body) VALUES ('app_ann', 'ann''s'), ('app_bob', 'bob''s');\n",
    );
    let opts = MigrateOptions::default();
    migrate::migrate(&mut client, &load(dir.path()), &settings(), &opts, &mut [], &mut Quiet)
        .unwrap();
    client
        .batch_execute(
            "CREATE ROLE app_ann LOGIN; GRANT USAGE ON SCHEMA public TO app_ann;
             GRANT SELECT, INSERT ON notes TO app_ann; GRANT USAGE ON SEQUENCE notes_id_seq TO app_ann;
             ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;",
        )
        .unwrap();
    // A type change too: the role's writes run the twin's trigger and its
    // functions, though new functions are not executable by PUBLIC here.
    let up = "ALTER TABLE notes RENAME COLUMN body TO text;\n\
              ALTER TABLE notes ALTER COLUMN stars TYPE bigint;\n";
    write(dir.path(), &format!("{V2}_title"), up);
    expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
        .unwrap();

    let mut ann = cluster.connect(db).unwrap();
    ann.batch_execute(&format!("SET ROLE app_ann; SET search_path = {NEW}, public")).unwrap();
    let seen: Vec<String> =
        ann.query("select text from notes", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(seen, ["ann's"], "the view shows only the rows the policy lets the role see");
    ann.execute("insert into notes (text, stars) values ('new', 5000000000)", &[]).unwrap();
    ann.execute("insert into notes (text, stars) values ('newer', 4)", &[]).unwrap();
    let stars: Option<i32> =
        client.query_one("select stars from notes where body = 'newer'", &[]).unwrap().get(0);
    assert_eq!(stars, Some(4), "the role's write reached the old shape's column");
    let foreign = ann.execute("insert into notes (owner, text) values ('app_bob', 'x')", &[]);
    assert!(foreign.is_err(), "the policy's check holds through the view");
    let e = ann.execute("delete from notes", &[]).unwrap_err();
    let message = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert!(message.contains("permission denied"), "only the table's grants are carried: {e:?}");
    let rows: i64 = client.query_one("select count(*) from notes", &[]).unwrap().get(0);
    assert_eq!(rows, 4);
}

#[test]
fn a_renamed_table_is_served_under_its_new_name_until_contract() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_rename_table";
    let up = "ALTER TABLE users RENAME TO people;\nALTER TABLE people RENAME COLUMN name TO full_name;\n";
    let (dir, mut client) = setup(&cluster, db, up);
    expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
        .unwrap();
    let mut new = shape(&cluster, db, &format!("{NEW}, public"));
    new.execute("insert into people (full_name) values ('cat')", &[]).unwrap();
    let mut old = shape(&cluster, db, "public");
    old.execute("insert into users (name) values ('dan')", &[]).unwrap();
    let seen: i64 = new.query_one("select count(*) from people", &[]).unwrap().get(0);
    assert_eq!(seen, 4, "the new name shows every row, the old shape's too");
    assert!(exists(&mut client, "public.users") && !exists(&mut client, "public.people"));

    expand::contract(&mut client, &load(dir.path()), &settings(), &mut [], &mut |_| {}).unwrap();
    assert!(exists(&mut client, "public.people") && !exists(&mut client, "public.users"));
    let rows: i64 = client.query_one("select count(*) from people", &[]).unwrap().get(0);
    assert_eq!(rows, 4);

    // A statement that runs at expand cannot name a table only the contract renames.
    let later =
        "ALTER TABLE people RENAME TO persons;\nALTER TABLE persons ADD COLUMN nick text;\n";
    write(dir.path(), "20240103000000_persons", later);
    let e =
        expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
            .unwrap_err();
    assert!(e.to_string().contains("only after contract"), "{e}");
    assert!(exists(&mut client, "public.people"));
}
