//! Throwaway means throwaway: a history that changes what the whole server
//! shares (a role, its membership and settings, `ALTER SYSTEM`, another
//! role's settings) run through `downs` and `rehearse` leaves the server
//! exactly as it was (`pg_authid`, `pg_auth_members`,
//! `pg_db_role_setting`, `pg_file_settings`, tablespaces, databases), its
//! downs are computed and proved like any other, and they take the real
//! server back after a real migrate. A statement that cannot be replayed
//! without reaching outside the copy (`CREATE TABLESPACE`) is refused
//! before anything runs. Roles belong to a cluster: this module has one
//! of its own, which no other test touches.

use std::sync::LazyLock;

use backstop_core::pg::cluster::Cluster;

use crate::common::{DbExt, Project};

static OWN: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("a cluster of this module's own starts"));

/// What the whole server shares, as text to compare.
fn server_state() -> Vec<String> {
    let mut c = OWN.connect("postgres").unwrap();
    let queries = [
        "select rolname || ' ' || rolsuper || rolinherit || rolcreaterole || rolcreatedb
                || rolcanlogin || rolreplication || rolbypassrls || ' ' || coalesce(rolpassword, '')
           from pg_authid order by rolname",
        "select r.rolname || ' in ' || m.rolname from pg_auth_members a
           join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member order by 1",
        "select coalesce(r.rolname, '*') || ' @ ' || coalesce(d.datname, '*') || ' ' || array_to_string(s.setconfig, ';')
           from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole
           left join pg_database d on d.oid = s.setdatabase order by 1",
        "select name || '=' || setting from pg_file_settings
          where sourcefile like '%postgresql.auto.conf' order by 1",
        "select spcname from pg_tablespace order by 1",
        "select datname from pg_database order by 1",
    ];
    queries.iter().flat_map(|q| c.texts(q)).collect()
}

#[test]
fn downs_and_rehearse_change_nothing_the_server_shares_and_their_downs_put_it_back() {
    OWN.connect("postgres").unwrap().batch_execute("CREATE ROLE app_owner NOLOGIN").unwrap();
    let p = Project::on(&OWN, "server_wide");
    p.migration(
        "1_roles",
        "CREATE ROLE reader NOLOGIN;
         GRANT reader TO app_owner;
         ALTER ROLE reader SET search_path = app, public;
         CREATE TABLE items (id int PRIMARY KEY);
         GRANT SELECT ON items TO reader;",
        None,
    );
    p.migration(
        "2_system",
        "-- backstop:no-transaction\nALTER SYSTEM SET work_mem = '64MB';",
        None,
    );
    p.migration("3_owner", "ALTER ROLE app_owner SET statement_timeout = '5s';", None);
    let before = server_state();

    let downs = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!(d["status"], "computed", "{d:#}");
        assert_eq!(d["proved"], true, "{d:#}");
    }
    let sql = |i: usize| downs[i]["sql"].as_str().unwrap().to_string();
    assert!(sql(0).contains("DROP ROLE IF EXISTS reader"), "{}", sql(0));
    assert!(
        sql(1).starts_with("-- backstop:no-transaction")
            && sql(1).contains("ALTER SYSTEM RESET work_mem")
    );
    assert!(sql(2).contains("ALTER ROLE app_owner RESET statement_timeout"), "{}", sql(2));
    assert_eq!(server_state(), before, "downs changed the server");

    p.run(&["downs", "--write"]).expect_code(0);
    let rehearsal = p.run(&["rehearse"]);
    rehearsal.expect_code(0).expect_output("rehearsed where it cannot reach production");
    assert_eq!(server_state(), before, "rehearse changed the server");
    // Again: nothing was left behind to trip over.
    p.run(&["rehearse"]).expect_code(0);
    p.run(&["downs"]).expect_code(0);
    assert_eq!(server_state(), before);

    // A tablespace names a directory of the server's host: refused first.
    p.migration("4_space", "CREATE TABLESPACE fast LOCATION '/tmp/backstop-fast';", None);
    p.run(&["downs"]).expect_code(1).expect_output("4_space/up.sql:1: the up cannot be replayed");
    p.run(&["rehearse"]).expect_code(1).expect_output("4_space/up.sql:1: cannot be rehearsed");
    assert_eq!(server_state(), before);
    std::fs::remove_dir_all(p.path().join("migrations/4_space")).unwrap();

    // For real: the downs take the server back.
    p.run(&["migrate"]).expect_code(0);
    assert_ne!(server_state(), before);
    p.run(&["rollback", "--steps", "3"]).expect_code(0);
    assert_eq!(server_state(), before, "the downs did not put the server back");
    assert!(!OWN.connect(&p.db).unwrap().exists("public.items"));
}

/// A call that reaches outside the database (pg_net's `http_post`) is not
/// run on a rehearsal's copies, and the rehearsal says so; the migration
/// itself still sends it. The stand-in fails on any database but the
/// project's own, as a request sent from a copy would be a real one.
#[test]
fn a_rehearsal_never_sends_what_a_migration_sends_outside_the_database() {
    let p = Project::new("rehearse_pg_net");
    p.client()
        .batch_execute(&format!(
            "CREATE SCHEMA net;
             CREATE TABLE net.sent (url text);
             CREATE FUNCTION net.http_post(url text) RETURNS bigint LANGUAGE plpgsql AS $$
             BEGIN
               IF current_database() <> '{}' THEN
                 RAISE EXCEPTION 'a request was sent from a copy: %', url;
               END IF;
               INSERT INTO net.sent VALUES (url);
               RETURN 1;
             END $$;",
            p.db
        ))
        .unwrap();
    p.migration("1_items", "CREATE TABLE items (id int PRIMARY KEY);", Some("DROP TABLE items;"));
    p.migration(
        "2_hook",
        "ALTER TABLE items ADD COLUMN note text;\nselect net.http_post('https://hooks.example.com/deploy');",
        Some("ALTER TABLE items DROP COLUMN note;"),
    );
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    let steps = json["steps"].as_array().unwrap();
    let skipped = steps.iter().find(|s| s["name"] == "not replayed").expect("a not-replayed step");
    let detail = skipped["detail"].as_str().unwrap();
    assert!(detail.contains("net.http_post") && detail.contains("2_hook/up.sql:2"), "{detail}");
    assert_eq!(p.client().count("net.sent"), 0, "the rehearsal sent nothing");
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(p.client().count("net.sent"), 1, "the migration itself sends it");
}
