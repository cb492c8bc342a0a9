//! Table checksums on a real cluster: a changed value in any kind of column
//! changes the checksum and putting it back restores it; row order does not
//! count, duplicate rows do; values swapped between rows or columns show;
//! enum tables checksum alike in different databases; the session's time
//! zone does not matter.

use std::sync::LazyLock;

use backstop_core::pg::checksum::{self, table_checksum, table_checksums, TableChecksum};
use backstop_core::pg::cluster::Cluster;
use postgres::Client;

static CLUSTER: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("throwaway cluster starts"));

/// A fresh database with `setup` run in it.
fn database(name: &str, setup: &str) -> Client {
    CLUSTER.create_database(name, None).unwrap();
    let mut client = CLUSTER.connect(name).unwrap();
    client.batch_execute(setup).unwrap();
    client
}

fn checksum(client: &mut Client, table: &str) -> TableChecksum {
    table_checksum(client, "public", table).unwrap()
}

/// Every column kind the checksum handles differently: its type, the value
/// row 1 starts with and a changed value that PostgreSQL's own hash or
/// equality would miss where it can.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("i2", "int2", "1", "2"),
    ("i4", "int4", "1", "-1"),
    // The int8 hash folds both halves: 1 and 2^32 hash alike.
    ("i8", "int8 NOT NULL", "1", "4294967296"),
    ("num", "numeric(10, 2)", "12.50", "12.51"),
    ("f8", "float8", "0.1", "0.2"),
    ("b", "bool NOT NULL", "true", "false"),
    ("txt", "text NOT NULL", "'abc'", "'abd'"),
    // Equal under the collation, different bytes.
    ("ci", "text COLLATE ci", "'Abc'", "'abc'"),
    ("vc", "varchar(10)", "'abc'", "'abcd'"),
    ("ch", "char(3)", "'ab'", "'ac'"),
    (
        "u",
        "uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'",
    ),
    ("d", "date", "'2024-01-01'", "'infinity'"),
    ("ts", "timestamp", "'2024-01-01 10:00'", "'2024-01-01 10:00:00.000001'"),
    // Both are 01:30 in New York, where the test's session is.
    ("tstz", "timestamptz NOT NULL", "'2021-11-07 05:30:00+00'", "'2021-11-07 06:30:00+00'"),
    ("tm", "time", "'10:00'", "'10:01'"),
    // Equal as intervals, different values.
    ("iv", "interval", "'1 day'", "'24 hours'"),
    (
        "j",
        "jsonb NOT NULL",
        r#"'{"a": [1, {"b": "c"}], "n": 1.5}'"#,
        r#"'{"a": [1, {"b": "d"}], "n": 1.5}'"#,
    ),
    ("j2", "jsonb", r#"'{"a": 1, "b": 2}'"#, r#"'{"a": 2, "b": 1}'"#),
    ("js", "json", r#"'{"a": 1}'"#, r#"'{"a":1}'"#),
    ("by", "bytea", r"'\x00'", r"'\x0000'"),
    ("ip", "inet", "'10.0.0.1'", "'10.0.0.2'"),
    ("m", "mood", "'sad'", "'ok'"),
    ("ia", "int[]", "'{1,2}'", "'{2,1}'"),
    ("ta", "text[]", "'{a,NULL}'", "'{a,\"\"}'"),
    ("pt", "point", "'(1,2)'", "'(2,1)'"),
    ("em", "email", "'a@example.com'", "'b@example.com'"),
    ("nullable", "text", "'x'", "NULL"),
    ("was_null", "int4", "NULL", "0"),
];

#[test]
fn a_changed_value_in_any_kind_of_column_changes_the_checksum_and_back_restores_it() {
    let columns: Vec<String> = KINDS.iter().map(|(c, ty, _, _)| format!("{c} {ty}")).collect();
    let names: Vec<&str> = KINDS.iter().map(|(c, ..)| *c).collect();
    let values: Vec<&str> = KINDS.iter().map(|(_, _, v, _)| *v).collect();
    let mut client = database(
        "kinds",
        &format!(
            "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
             CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
             CREATE TABLE kinds (id int NOT NULL, {});
             INSERT INTO kinds (id, {}) VALUES (1, {});
             INSERT INTO kinds (id, {}) VALUES (2, {});",
            columns.join(", "),
            names.join(", "),
            values.join(", "),
            names.join(", "),
            values.join(", "),
        ),
    );
    let base = checksum(&mut client, "kinds");
    assert_eq!(base.rows, 2);
    client.batch_execute("SET TimeZone = 'America/New_York'").unwrap();
    assert_eq!(checksum(&mut client, "kinds"), base, "the session's time zone counted");

    let mut seen = vec![base.checksum.clone()];
    for (column, _, value, other) in KINDS {
        client.batch_execute(&format!("UPDATE kinds SET {column} = {other} WHERE id = 1")).unwrap();
        let changed = checksum(&mut client, "kinds");
        assert_eq!(changed.rows, 2);
        assert!(
            !seen.contains(&changed.checksum),
            "{column}: {value} -> {other} left the checksum at one seen before"
        );
        seen.push(changed.checksum);
        client.batch_execute(&format!("UPDATE kinds SET {column} = {value} WHERE id = 1")).unwrap();
        assert_eq!(checksum(&mut client, "kinds"), base, "{column}: putting {value} back");
    }
}

#[test]
fn row_order_does_not_count_and_duplicate_rows_do() {
    let mut client = database(
        "order",
        "CREATE TABLE a (id int, name text, doc jsonb);
         CREATE TABLE b (id int, name text, doc jsonb);
         INSERT INTO a SELECT g, 'n' || g, jsonb_build_object('g', g) FROM generate_series(1, 500) g;
         INSERT INTO b SELECT g, 'n' || g, jsonb_build_object('g', g) FROM generate_series(1, 500) g
          ORDER BY md5(g::text);
         -- Same count, and equal under XOR: r1 r1 r2 against r2 r3 r3.
         CREATE TABLE x (id int, name text);
         CREATE TABLE y (id int, name text);
         INSERT INTO x VALUES (1, 'one'), (1, 'one'), (2, 'two');
         INSERT INTO y VALUES (2, 'two'), (3, 'three'), (3, 'three');
         CREATE TABLE single (id int, name text);
         CREATE TABLE double (id int, name text);
         INSERT INTO single VALUES (1, 'one');
         INSERT INTO double VALUES (1, 'one'), (1, 'one');
         -- Big enough (over 1024 pages) for a statement of its own.
         CREATE TABLE big (id int, name text);
         INSERT INTO big SELECT g, repeat('x', 60) || g FROM generate_series(1, 150000) g;
         ANALYZE big;",
    );
    let all = table_checksums(&mut client).unwrap();
    let by_name = |name: &str| all.iter().find(|t| t.table == format!("public.{name}")).unwrap();
    assert_eq!(by_name("a").checksum, by_name("b").checksum, "row order counted");
    assert_ne!(by_name("x").checksum, by_name("y").checksum, "duplicate rows cancelled out");
    assert_eq!((by_name("single").rows, by_name("double").rows), (1, 2));
    assert_ne!(by_name("single").checksum, by_name("double").checksum);
    // The one-statement form, a big table's own statement and the
    // per-table form agree.
    assert_eq!(&checksum(&mut client, "x"), by_name("x"));
    assert_eq!(&checksum(&mut client, "big"), by_name("big"));
    assert_eq!(by_name("big").rows, 150_000);
    assert_eq!(all.len(), 7, "{all:?}");
}

#[test]
fn values_swapped_between_rows_or_columns_change_the_checksum() {
    // A sum of hash_record_extended, which is linear in its columns' hashes,
    // missed values swapped between rows.
    let mut client = database(
        "swaps",
        "CREATE TABLE rows_before (k text NOT NULL, v text NOT NULL, n int);
         CREATE TABLE rows_after (k text NOT NULL, v text NOT NULL, n int);
         INSERT INTO rows_before VALUES ('a', 'x', 1), ('b', 'y', 2);
         INSERT INTO rows_after VALUES ('a', 'y', 1), ('b', 'x', 2);
         CREATE TABLE cols_before (k text, v text, d date, e date);
         CREATE TABLE cols_after (k text, v text, d date, e date);
         INSERT INTO cols_before VALUES ('x', 'y', '2024-01-01', '2024-01-02');
         INSERT INTO cols_after VALUES ('y', 'x', '2024-01-01', '2024-01-02');
         CREATE TABLE rest_after (k text, v text, d date, e date);
         INSERT INTO rest_after VALUES ('x', 'y', '2024-01-02', '2024-01-01');",
    );
    assert_ne!(
        checksum(&mut client, "rows_before").checksum,
        checksum(&mut client, "rows_after").checksum,
        "values swapped between rows"
    );
    let cols = checksum(&mut client, "cols_before").checksum;
    assert_ne!(cols, checksum(&mut client, "cols_after").checksum, "direct columns swapped");
    assert_ne!(cols, checksum(&mut client, "rest_after").checksum, "record columns swapped");
}

#[test]
fn enum_tables_checksum_alike_in_databases_with_different_enum_oids() {
    let table = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
                 CREATE TABLE moods (id int, mood mood, moods mood[]);
                 INSERT INTO moods VALUES (1, 'ok', '{sad,happy}'), (2, 'happy', NULL);";
    let mut first = database("enum_a", table);
    let mut second =
        database("enum_b", &format!("CREATE TYPE other AS ENUM ('x', 'y', 'z');\n{table}"));
    let oid = |c: &mut Client| -> u32 {
        c.query_one("select oid from pg_enum where enumlabel = 'ok'", &[]).unwrap().get(0)
    };
    assert_ne!(oid(&mut first), oid(&mut second), "the test needs different enum OIDs");
    assert_eq!(checksum(&mut first, "moods"), checksum(&mut second, "moods"));
}

#[test]
fn both_methods_count_the_rows_and_hash_them_differently() {
    let mut client = database("methods", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);");
    assert_eq!(checksum::method(&mut client).unwrap(), checksum::METHOD_COLUMN_HASH);
    let run = |client: &mut Client, method: &str| -> (i64, String) {
        let sql = checksum::checksum_sql(client, method, 0, "public", "t").unwrap();
        let row = client.query_one(sql.as_str(), &[]).unwrap();
        (row.get(1), row.get(2))
    };
    let (rows, sum) = run(&mut client, checksum::METHOD_COLUMN_HASH);
    assert_eq!(rows, 2);
    assert_ne!(sum, "0");
    let (text_rows, text_sum) = run(&mut client, checksum::METHOD_TEXT_HASH);
    assert_eq!(text_rows, 2);
    assert_ne!(sum, text_sum);
}

#[test]
fn the_order_of_a_tables_columns_does_not_count_but_values_swapped_between_columns_do() {
    let mut a = database("colorder_a", "CREATE TABLE t (id int, a text, b text); INSERT INTO t VALUES (1, 'x', 'y'), (2, NULL, 'z');");
    let mut b = database("colorder_b", "CREATE TABLE t (b text, id int, a text); INSERT INTO t (id, a, b) VALUES (1, 'x', 'y'), (2, NULL, 'z');");
    assert_eq!(checksum(&mut a, "t").checksum, checksum(&mut b, "t").checksum);
    let mut c = database("colorder_c", "CREATE TABLE t (id int, a text, b text); INSERT INTO t VALUES (1, 'y', 'x'), (2, NULL, 'z');");
    assert_ne!(checksum(&mut a, "t").checksum, checksum(&mut c, "t").checksum);
}

/// Tables whose file has no page are not read: their checksum is the one
/// their statement gives, whether they were never written or emptied by
/// TRUNCATE; a table whose rows were all deleted, or that holds rows only
/// the open transaction wrote, is read.
#[test]
fn an_empty_file_gives_the_checksum_its_statement_would_and_rows_in_it_are_read() {
    let mut client = database(
        "checksum_empty_files",
        "CREATE TABLE never (id int, note text);
         CREATE TABLE truncated (id int);
         INSERT INTO truncated VALUES (1);
         TRUNCATE truncated;
         CREATE TABLE deleted (id int);
         INSERT INTO deleted VALUES (1);
         DELETE FROM deleted;
         CREATE TABLE written (id int);",
    );
    let read = |client: &mut Client| {
        let mut all = table_checksums(client).unwrap();
        all.sort_by(|a, b| a.table.cmp(&b.table));
        all
    };
    let all = read(&mut client);
    let by_statement: Vec<TableChecksum> = ["deleted", "never", "truncated", "written"]
        .iter()
        .map(|t| checksum(&mut client, t))
        .collect();
    assert_eq!(all, by_statement);
    assert!(all.iter().all(|t| t.rows == 0), "{all:?}");

    // Rows the open transaction wrote extend the file at once: they count.
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("INSERT INTO written VALUES (1), (2)").unwrap();
    let seen = table_checksums(&mut tx).unwrap();
    let written = seen.iter().find(|t| t.table == "public.written").unwrap();
    assert_eq!(written.rows, 2);
    assert_ne!(written, all.iter().find(|t| t.table == "public.written").unwrap());
}
