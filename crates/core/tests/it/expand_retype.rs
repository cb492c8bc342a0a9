//! A column type change served by expand/contract: the new shape reads and
//! writes a twin of the new type, triggers keep it and the old column in
//! step both ways while both shapes write, the existing rows are
//! backfilled in batches (resumed after a stop), a rollback names and
//! exports what the old type cannot hold, and a contract refuses while a
//! row's value has no new one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backstop_core::expand::{self, ExpandError};

use backstop_core::pg::cluster::Cluster;

use crate::expand::{load, settings, setup_with, shape, write, NEW};

const ROWS: i64 = 5000;

/// `readings` with `ROWS` rows applied, and `up` pending as the second migration.
fn setup(cluster: &Cluster, db: &str, up: &str) -> (tempfile::TempDir, postgres::Client) {
    let readings = format!(
        "CREATE TABLE readings (id bigserial PRIMARY KEY, value int, code text, \
         label text NOT NULL DEFAULT 'x');\n\
         CREATE INDEX readings_value_idx ON readings (value);\n\
         INSERT INTO readings (value, code) SELECT n, n::text FROM generate_series(1, {ROWS}) n;"
    );
    setup_with(cluster, db, ("readings", &readings), up)
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut postgres::Client, sql: &str) -> T {
    c.query_one(sql, &[]).unwrap().get(0)
}

fn type_of(c: &mut postgres::Client, schema: &str, column: &str) -> String {
    c.query_one(
        "select data_type::text from information_schema.columns
          where table_schema = $1 and table_name = 'readings' and column_name = $2",
        &[&schema, &column],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_retyped_column_is_served_both_ways_backfilled_rolled_back_and_contracted() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_retype";
    let (dir, mut client) =
        setup(&cluster, db, "ALTER TABLE readings ALTER COLUMN value TYPE bigint;\n");
    let ms = load(dir.path());
    // The old application writes and updates all along.
    let stop = Arc::new(AtomicBool::new(false));
    let mut old = shape(&cluster, db, "public");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0i32;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                old.execute("insert into readings (value, label) values ($1, 'old')", &[&n])
                    .unwrap();
                old.execute(
                    "update readings set value = -value where id = $1",
                    &[&i64::from(n + 1)],
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut said = Vec::new();
    let done = expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |s| {
        said.push(s.to_string())
    })
    .unwrap();
    assert_eq!(done.plan.retyped.len(), 1);
    let twin_index: bool = one(
        &mut client,
        "select to_regclass('public._backstop_new_readings_value_idx') is not null",
    );
    assert!(twin_index, "the index is made again on the twin after the backfill");
    assert!(said.iter().any(|s| s.starts_with("backfilled readings.value")), "{said:?}");
    // The old application's updates may fill a row's twin before the walk
    // reaches it (the walk skips those): what counts is that none is left.
    assert!(done.backfill[0].rows > 0, "{:?}", done.backfill);
    let unfilled: i64 = one(
        &mut client,
        "select count(*) from readings where value is not null and _backstop_new_value is null",
    );
    assert_eq!(unfilled, 0, "every existing row has its twin after the backfill");
    // The lock trace: the expand's transaction took the table's lock, the
    // backfill's batches only row locks, none that blocks a write.
    let held = |step: &str, mode: &str| {
        done.locks
            .held
            .iter()
            .any(|h| h.step == step && h.mode == mode && h.relation == "public.readings")
    };
    assert!(held("expand", "AccessExclusiveLock"), "{:?}", done.locks);
    assert!(held("backfill", "RowExclusiveLock"), "{:?}", done.locks);
    assert!(!done.locks.blocks_writes("backfill"), "{:?}", done.locks);
    let batches = done.locks.held.iter().find(|h| h.step == "backfill").unwrap();
    assert!(batches.transactions >= ROWS as u64 / 1000, "{batches:?}");

    let mut new = shape(&cluster, db, &format!("{NEW}, public"));
    assert_eq!(type_of(&mut new, NEW, "value"), "bigint");
    assert_eq!(type_of(&mut new, "public", "value"), "integer");
    new.execute("insert into readings (value, label) values (5000000000, 'big')", &[]).unwrap();
    new.execute("insert into readings (value, label) values (42, 'small')", &[]).unwrap();
    new.execute("update readings set value = value * 10 where id = 4000", &[]).unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();

    // Every row reads the same value in both shapes, but the one the old type cannot hold.
    let mut old = shape(&cluster, db, "public");
    let differ: i64 = one(
        &mut client,
        &format!(
            "select count(*) from readings r join {NEW}.readings n using (id) \
                  where n.value is distinct from r.value"
        ),
    );
    assert_eq!(differ, 1, "only the bigint row differs");
    assert_eq!(
        one::<Option<i32>>(&mut old, "select value from readings where label = 'big'"),
        None
    );
    assert_eq!(one::<i32>(&mut old, "select value from readings where label = 'small'"), 42);
    assert_eq!(one::<i32>(&mut old, "select value from readings where id = 4000"), 40000);
    let total = ROWS + i64::from(written) + 2;
    assert_eq!(one::<i64>(&mut new, "select count(*) from readings"), total);
    assert_eq!(
        one::<i64>(&mut new, "select sum(value)::bigint from readings where label = 'old'"),
        one::<i64>(&mut old, "select sum(value)::bigint from readings where label = 'old'"),
    );

    // A stopped backfill resumes: `migrate --expand` again fills what is left.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL backstop.backfill = 'on';
             UPDATE readings SET _backstop_new_value = NULL WHERE id > 2500 AND id <= {ROWS}; COMMIT;"
        ))
        .unwrap();
    let again =
        expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    assert!(again.resumed);
    assert_eq!(again.backfill[0].rows, (ROWS - 2500) as u64);
    assert_eq!(
        one::<i64>(
            &mut client,
            "select count(*) from readings where value is not null \
                                 and _backstop_new_value is null"
        ),
        0
    );

    // Rollback: the old column holds every write; the value it cannot hold is named and kept.
    let keep = tempfile::tempdir().unwrap();
    let with_keep =
        backstop_core::migrate::Settings { keep: Some(keep.path().to_path_buf()), ..settings() };
    let undone = expand::rollback(&mut client, &with_keep).unwrap();
    assert_eq!(undone.unmapped.len(), 1, "{:?}", undone.unmapped);
    assert!(undone.unmapped[0].contains("1 row(s)"), "{}", undone.unmapped[0]);
    let file = std::fs::read_to_string(keep.path().join(&undone.kept[0].file)).unwrap();
    assert!(file.contains("5000000000"), "{file}");
    assert_eq!(type_of(&mut client, "public", "value"), "integer");
    assert_eq!(one::<i64>(&mut client, "select count(*) from readings"), total);
    let left: i64 =
        one(&mut client, "select count(*) from pg_proc where proname like 'backstop\\_%'");
    assert_eq!(left, 0, "the rollback left functions");
    old.execute("insert into readings (value) values (7)", &[]).unwrap();

    // Expanded again and contracted: the new type is the real one, every value kept.
    expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    let mut new = shape(&cluster, db, &format!("{NEW}, public"));
    new.execute("update readings set value = 6000000000 where label = 'big'", &[]).unwrap();
    let before: i64 = one(&mut new, "select sum(value)::bigint from readings");
    expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap();
    assert_eq!(type_of(&mut client, "public", "value"), "bigint");
    assert_eq!(one::<i64>(&mut client, "select sum(value)::bigint from readings"), before);
    // The column's index was made again on the twin and has its name back.
    let index: String = one(
        &mut client,
        "select pg_get_indexdef('readings_value_idx'::regclass) || ' '
                || (select indisvalid from pg_index where indexrelid = 'readings_value_idx'::regclass)",
    );
    assert_eq!(
        index,
        "CREATE INDEX readings_value_idx ON public.readings USING btree (value) true"
    );
    assert_eq!(one::<i64>(&mut client, "select count(*) from readings"), total + 1);
    let attrs: i64 = one(&mut client, "select count(*) from pg_attribute where attrelid = 'readings'::regclass and attname like '\\_backstop%' and not attisdropped");
    assert_eq!(attrs, 0);
}

#[test]
fn a_value_the_new_type_cannot_take_is_named_and_stops_the_contract_until_mended() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_retype_bad";
    let up = "ALTER TABLE readings ALTER COLUMN code TYPE integer USING code::integer;\n";
    let (dir, mut client) = setup(&cluster, db, up);
    client.batch_execute("UPDATE readings SET code = 'x' || id WHERE id IN (17, 3001)").unwrap();
    let ms = load(dir.path());
    let done =
        expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    let filled = &done.backfill[0];
    assert_eq!((filled.rows, filled.failures), (ROWS as u64 - 2, 2));
    assert!(filled.failed[0].starts_with("(17): invalid input syntax"), "{:?}", filled.failed);

    let e = expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap_err();
    let ExpandError::Unsettled(rows) = &e else { panic!("{e}") };
    assert_eq!(rows.len(), 2, "{e}");
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        type_of(&mut client, "public", "code"),
        "text",
        "a refused contract changed the table"
    );

    // Mended through the old shape, the twin follows and the contract goes through.
    client.batch_execute("UPDATE readings SET code = id::text WHERE code LIKE 'x%'").unwrap();
    expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap();
    assert_eq!(type_of(&mut client, "public", "code"), "integer");
    let sum: i64 = one(&mut client, "select sum(code)::bigint from readings");
    assert_eq!(sum, ROWS * (ROWS + 1) / 2);
}

/// The expand's other steps after its transaction: a computed default
/// filled in batches, a constraint validated, an index built concurrently,
/// and a NOT NULL the contract sets once a validated check proves it.
#[test]
fn computed_defaults_constraints_not_nulls_and_concurrent_indexes_settle_outside_the_transaction() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_settle";
    let up =
        "ALTER TABLE readings ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp();\n\
              ALTER TABLE readings ALTER COLUMN code SET NOT NULL;\n\
              ALTER TABLE readings ADD CONSTRAINT value_positive CHECK (value > 0);\n";
    let (dir, mut client) = setup(&cluster, db, up);
    write(
        dir.path(),
        "20240103000000_index",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY readings_label_idx ON readings (label);\n",
    );
    client.batch_execute("UPDATE readings SET code = NULL WHERE id = 9").unwrap();
    let ms = load(dir.path());
    let new = "public_20240103000000";
    let done =
        expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    assert_eq!(done.backfill[0].rows, ROWS as u64, "every existing row got its own default");
    let distinct: i64 = one(&mut client, "select count(distinct seen_at) from readings");
    assert!(distinct > 1, "clock_timestamp() is computed per row, not once");
    let valid: bool =
        one(&mut client, "select convalidated from pg_constraint where conname = 'value_positive'");
    assert!(valid, "the constraint is validated after the expand");
    let index: bool = one(
        &mut client,
        "select indisvalid from pg_index where indexrelid = 'readings_label_idx'::regclass",
    );
    assert!(index, "the index is built concurrently after the expand");
    let nullable: bool = one(
        &mut client,
        "select not attnotnull from pg_attribute where attrelid = 'readings'::regclass and attname = 'code'",
    );
    assert!(nullable, "NOT NULL waits for the contract");
    // Both shapes write: the old one without the new column, which gets its default.
    let mut old = shape(&cluster, db, "public");
    old.execute("insert into readings (value, code) values (1, 'a')", &[]).unwrap();
    let e = old.execute("insert into readings (value, code) values (-1, 'b')", &[]).unwrap_err();
    assert!(format!("{e:?}").contains("value_positive"), "{e:?}");
    let mut fresh = shape(&cluster, db, &format!("{new}, public"));
    fresh.execute("insert into readings (value, code) values (2, 'c')", &[]).unwrap();
    assert_eq!(one::<i64>(&mut client, "select count(*) from readings where seen_at is null"), 0);

    // A NULL where the contract sets NOT NULL stops it; nothing changes.
    let e = expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap_err();
    let ExpandError::Unsettled(lines) = &e else { panic!("{e}") };
    assert!(lines[0].contains("readings.code: 1 row(s) hold NULL"), "{lines:?}");
    let checks: i64 =
        one(&mut client, "select count(*) from pg_constraint where conname like 'backstop%'");
    assert_eq!(checks, 0, "a refused contract added no check");
    client.batch_execute("UPDATE readings SET code = '9' WHERE id = 9").unwrap();
    expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap();
    let not_null: Vec<bool> = client
        .query(
            "select attnotnull from pg_attribute where attrelid = 'readings'::regclass
               and attname in ('code', 'seen_at') order by attname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(not_null, [true, true]);
    let checks: i64 =
        one(&mut client, "select count(*) from pg_constraint where conname like 'backstop%'");
    assert_eq!(checks, 0, "the checks that proved NOT NULL are dropped");
    assert_eq!(one::<i64>(&mut client, "select count(*) from readings"), ROWS + 2);
}

#[test]
fn a_rollback_drops_the_constraints_and_filled_columns_the_expand_added() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_settle_back";
    let up = "ALTER TABLE readings ADD COLUMN token uuid DEFAULT gen_random_uuid();\n\
              ALTER TABLE readings ADD CONSTRAINT code_set CHECK (code IS NOT NULL) NOT VALID;\n";
    let (dir, mut client) = setup(&cluster, db, up);
    let done =
        expand::expand(&mut client, &load(dir.path()), &settings(), "public", &mut [], &mut |_| {})
            .unwrap();
    assert_eq!(done.backfill[0].rows, ROWS as u64);
    let valid: bool =
        one(&mut client, "select convalidated from pg_constraint where conname = 'code_set'");
    assert!(!valid, "a constraint the migration adds NOT VALID stays so");
    expand::rollback(&mut client, &settings()).unwrap();
    assert_eq!(
        one::<i64>(&mut client, "select count(*) from pg_constraint where conname = 'code_set'"),
        0
    );
    let token: i64 = one(
        &mut client,
        "select count(*) from pg_attribute where attrelid = 'readings'::regclass and attname = 'token' and not attisdropped",
    );
    assert_eq!(token, 0);
}

/// A client that inserts rows labelled `<label><n>` one at a time until
/// told to stop (and at least `least`), through the shape its
/// `search_path` picks; any failed insert fails the test.
fn writer(
    cluster: &Cluster,
    db: &str,
    search_path: &str,
    label: &'static str,
    least: i32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<i32> {
    let mut c = shape(cluster, db, search_path);
    std::thread::spawn(move || {
        let mut n = 0i32;
        while !stop.load(Ordering::Relaxed) || n < least {
            c.execute(
                "insert into readings (value, label) values ($1::int, $2)",
                &[&n, &format!("{label}{n}")],
            )
            .unwrap_or_else(|e| panic!("{label} insert {n} failed: {e:?}"));
            n += 1;
        }
        n
    })
}

#[test]
fn two_writers_one_per_shape_keep_every_row_through_expand_backfill_rollback_and_contract() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_two_writers";
    let (dir, mut client) =
        setup(&cluster, db, "ALTER TABLE readings ALTER COLUMN value TYPE bigint;\n");
    let ms = load(dir.path());
    let quiet = &mut |_: &str| {};
    let stop = Arc::new(AtomicBool::new(false));
    let old = writer(&cluster, db, "public", "old", 2000, stop.clone());
    expand::expand(&mut client, &ms, &settings(), "public", &mut [], quiet).unwrap();
    // The new release writes through its shape from here on; through the
    // rollback and the contract the same search_path falls through to the
    // table, whose columns have the same names.
    let new = writer(&cluster, db, &format!("{NEW}, public"), "new", 2000, stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(100));
    expand::rollback(&mut client, &settings()).unwrap();
    expand::expand(&mut client, &ms, &settings(), "public", &mut [], quiet).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    expand::contract(&mut client, &ms, &settings(), &mut [], quiet).unwrap();
    stop.store(true, Ordering::Relaxed);
    let (old, new) = (old.join().unwrap(), new.join().unwrap());
    assert!(old >= 2000 && new >= 2000);
    let mut count = |label: &str| -> (i64, i64) {
        let r = client
            .query_one(
                "select count(*), count(distinct label) from readings where label like $1",
                &[&format!("{label}%")],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        count("old"),
        (i64::from(old), i64::from(old)),
        "an old-shape write lost or doubled"
    );
    assert_eq!(count("new"), (i64::from(new), i64::from(new)), "a new-shape write lost or doubled");
    let wrong: i64 = one(
        &mut client,
        "select count(*) from readings where label ~ '^(old|new)' \
         and value <> substring(label from 4)::bigint",
    );
    assert_eq!(wrong, 0, "every written value kept as written");
    assert_eq!(type_of(&mut client, "public", "value"), "bigint");
}

#[test]
fn an_update_that_fills_a_new_column_is_a_backfill_and_a_trigger_for_the_old_shape() {
    let cluster = Cluster::start().unwrap();
    let db = "exp_fill_rows";
    let up = "ALTER TABLE readings ADD COLUMN slug text;\n\
              UPDATE readings SET slug = label || '-' || id WHERE value > 10;\n";
    let (dir, mut client) = setup(&cluster, db, up);
    let ms = load(dir.path());
    let done =
        expand::expand(&mut client, &ms, &settings(), "public", &mut [], &mut |_| {}).unwrap();
    assert_eq!(done.backfill[0].rows, ROWS as u64 - 10, "every row the WHERE holds for");
    let wrong: i64 = one(
        &mut client,
        "select count(*) from readings where slug is distinct from
           case when value > 10 then label || '-' || id end",
    );
    assert_eq!(wrong, 0, "the key column the value names is the row's");
    // The old shape never names the column: the trigger fills its rows.
    let mut old = shape(&cluster, db, "public");
    let id: i64 =
        old.query_one("insert into readings (value) values (20) returning id", &[]).unwrap().get(0);
    old.execute("insert into readings (value) values (5)", &[]).unwrap();
    let slug: Option<String> =
        client.query_one("select slug from readings where id = $1", &[&id]).unwrap().get(0);
    assert_eq!(slug, Some(format!("x-{id}")));
    let mut new = shape(&cluster, db, &format!("{NEW}, public"));
    new.execute("insert into readings (value, slug) values (30, 'mine')", &[]).unwrap();
    expand::contract(&mut client, &ms, &settings(), &mut [], &mut |_| {}).unwrap();
    let filled: i64 = one(&mut client, "select count(*) from readings where slug is not null");
    assert_eq!(filled, ROWS - 10 + 2, "the rows there, the old shape's one over 10, the new's");
    assert_eq!(one::<i64>(&mut client, "select count(*) from readings where slug = 'mine'"), 1);
    let triggers: i64 =
        one(&mut client, "select count(*) from pg_trigger where tgname like 'backstop%'");
    assert_eq!(triggers, 0, "the contract drops the fill's trigger");
}
