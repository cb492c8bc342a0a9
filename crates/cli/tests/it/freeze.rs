//! A role's write freeze stops its writes and follows the role, not its
//! name: renamed during the freeze, it is unfrozen under either name, with
//! exactly the grants it had (whoever granted them, across renames and
//! drops of what they were on) given back and both names said.

use crate::common::{unique_name, Project};

/// Every table and column privilege `role_oid` holds: (table, column,
/// privilege, grantor, grantable), in order.
fn privileges(
    db: &mut postgres::Client,
    role_oid: u32,
) -> Vec<(String, String, String, String, bool)> {
    db.query(
        "select c.relname::text, '', x.privilege_type, x.grantor::regrole::text, x.is_grantable
           from pg_class c cross join lateral aclexplode(c.relacl) x
          where x.grantee = $1
         union all
         select c.relname::text, a.attname::text, x.privilege_type, x.grantor::regrole::text, x.is_grantable
           from pg_attribute a join pg_class c on c.oid = a.attrelid
           cross join lateral aclexplode(a.attacl) x
          where x.grantee = $1
          order by 1, 2, 3",
        &[&role_oid],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

#[test]
fn a_role_renamed_during_its_freeze_is_unfrozen_under_either_name() {
    // Regression (issue 34): frozen roles were kept by name. After ALTER
    // ROLE … RENAME, unfreeze under the old name failed with a raw error,
    // and under the new one said "not frozen" and left the grants revoked.
    let p = Project::new("freeze_rename");
    let old = unique_name("app");
    let new = unique_name("app_renamed");
    let newer = unique_name("app_renamed_again");
    let mut db = p.client();
    db.batch_execute(&format!(
        "CREATE ROLE {old} NOLOGIN;
         CREATE TABLE orders (id int, total int, note text); CREATE TABLE audit (id int, who text);
         GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO {old};
         GRANT TRUNCATE ON orders TO {old} WITH GRANT OPTION;
         GRANT UPDATE (who) ON audit TO {old};"
    ))
    .unwrap();
    let oid: u32 =
        db.query_one("select oid from pg_roles where rolname = $1", &[&old]).unwrap().get(0);
    let before = privileges(&mut db, oid);
    assert_eq!(before.len(), 6, "{before:?}");

    // Unfrozen under the name it had when it was frozen.
    p.run(&["freeze", "--role", &old, "--reason", "cutover"])
        .expect_code(0)
        .expect_output("revoked 5 write grant(s)");
    db.batch_execute(&format!("ALTER ROLE {old} RENAME TO {new}")).unwrap();
    assert_eq!(privileges(&mut db, oid).len(), 1, "only SELECT is left while frozen");
    p.run(&["status"]).expect_output(&format!("role {new} (frozen as {old})"));
    p.run(&["freeze", "--role", &new, "--reason", "again"])
        .expect_code(0)
        .expect_output("already frozen");
    p.run(&["unfreeze", "--role", &old])
        .expect_code(0)
        .expect_output(&format!("unfroze {new} (frozen as {old}, renamed since)"))
        .expect_output("granted back the 5 write grant(s)");
    assert_eq!(privileges(&mut db, oid), before, "exactly the grants it had");
    p.run(&["unfreeze", "--role", &old]).expect_code(0).expect_output("is not frozen");

    // Unfrozen under the name it has now.
    p.run(&["freeze", "--role", &new, "--reason", "cutover"]).expect_code(0);
    db.batch_execute(&format!("ALTER ROLE {new} RENAME TO {newer}")).unwrap();
    let run = p.run(&["unfreeze", "--role", &newer, "--format", "json"]);
    let json = run.expect_code(0).json();
    assert_eq!(json["role"], newer.as_str(), "{json}");
    assert_eq!(json["frozen_as"], new.as_str(), "{json}");
    assert_eq!(json["granted"].as_array().unwrap().len(), 5, "{json}");
    assert_eq!(privileges(&mut db, oid), before, "exactly the grants it had");
    p.run(&["unfreeze", "--role", &newer]).expect_code(0).expect_output("is not frozen");
}

#[test]
fn a_freeze_recorded_by_name_before_the_upgrade_follows_a_later_rename() {
    // A freeze of an older schema version had the role's name only: the
    // upgrade finds its OID while the name still names it.
    let p = Project::new("freeze_upgrade");
    let old = unique_name("app");
    let new = unique_name("app_renamed");
    let mut db = p.client();
    db.batch_execute(&format!(
        "CREATE ROLE {old} NOLOGIN; CREATE TABLE t (id int); GRANT INSERT ON t TO {old};"
    ))
    .unwrap();
    p.run(&["freeze", "--role", &old, "--reason", "cutover"]).expect_code(0);
    db.batch_execute(
        "UPDATE backstop.role_freeze SET role_oid = NULL, cluster = NULL;
         UPDATE backstop.meta SET schema_version = 5;",
    )
    .unwrap();
    // Any command that writes brings the schema up to date.
    p.run(&["unfreeze", "--role", "nobody_frozen"]).expect_code(0);
    db.batch_execute(&format!("ALTER ROLE {old} RENAME TO {new}")).unwrap();
    p.run(&["unfreeze", "--role", &new])
        .expect_code(0)
        .expect_output(&format!("unfroze {new} (frozen as {old}, renamed since)"));
    let can: bool = db
        .query_one(&format!("select has_table_privilege('{new}', 't', 'INSERT')"), &[])
        .unwrap()
        .get(0);
    assert!(can);
}

#[test]
fn a_role_dropped_during_its_freeze_is_said_and_its_freeze_forgotten() {
    let p = Project::new("freeze_dropped");
    let role = unique_name("app");
    let mut db = p.client();
    db.batch_execute(&format!(
        "CREATE ROLE {role} NOLOGIN; CREATE TABLE t (id int); GRANT INSERT ON t TO {role};"
    ))
    .unwrap();
    p.run(&["freeze", "--role", &role, "--reason", "cutover"]).expect_code(0);
    db.batch_execute(&format!("DROP ROLE {role}")).unwrap();
    p.run(&["unfreeze", "--role", &role])
        .expect_code(0)
        .expect_output("the role was dropped during its freeze");
    p.run(&["unfreeze", "--role", &role]).expect_code(0).expect_output("is not frozen");
}

#[test]
fn a_role_freeze_stops_its_writes_and_unfreeze_gives_back_exactly_its_grants() {
    let role = "app\"user; drop";
    let p = Project::new("role_freeze");
    p.client()
        .batch_execute(
            "CREATE ROLE \"app\"\"user; drop\" LOGIN PASSWORD 'pw';
             CREATE TABLE \"my table; drop\" (id int PRIMARY KEY);
             CREATE TABLE t2 (a int, b int);
             CREATE TABLE t3 (id int);
             GRANT SELECT, INSERT, UPDATE, DELETE ON \"my table; drop\" TO \"app\"\"user; drop\";
             GRANT SELECT ON t2 TO \"app\"\"user; drop\";
             GRANT INSERT (a), UPDATE (b) ON t2 TO \"app\"\"user; drop\";
             GRANT INSERT ON t3 TO \"app\"\"user; drop\" WITH GRANT OPTION;",
        )
        .unwrap();
    let acls = |p: &Project| -> Vec<(String, Option<String>)> {
        p.client()
            .query(
                "select c.relname::text || coalesce('.' || a.attname, ''), coalesce(a.attacl, c.relacl)::text
                   from pg_class c left join pg_attribute a on a.attrelid = c.oid and a.attacl is not null
                  where c.relname in ('my table; drop', 't2', 't3') order by 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = acls(&p);
    let as_role =
        p.url.replacen(&p.url[11..p.url.find('@').unwrap()], "app%22user%3B%20drop:pw", 1);
    let write = |url: &str| {
        let mut c = backstop_core::pg::connect(url, "test").unwrap();
        c.batch_execute("INSERT INTO \"my table; drop\" VALUES ((random() * 1e9)::int)")
    };
    write(&as_role).expect("the role writes before the freeze");

    p.run(&["freeze", "--role", role, "--reason", "cutover to V2"])
        .expect_code(0)
        .expect_output("revoked 6 write grant(s) on public")
        .expect_output("backstop backup unfreeze --role 'app\"user; drop'");
    let refused = write(&as_role).unwrap_err();
    assert!(
        refused.to_string().contains("permission denied")
            || format!("{refused:?}").contains("permission denied")
    );
    let mut reader = backstop_core::pg::connect(&as_role, "test").unwrap();
    reader.query_one("select count(*) from \"my table; drop\"", &[]).expect("reads go on");
    p.run(&["freeze", "--role", role, "--reason", "again"])
        .expect_code(0)
        .expect_output("already frozen");
    // Regression: status needed a migrations folder to say so much as that.
    std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
    p.run(&["status"]).expect_code(2).expect_output("frozen: role").expect_output("migrations dir");
    std::fs::create_dir(p.path().join("migrations")).unwrap();

    p.run(&["unfreeze", "--role", role])
        .expect_code(0)
        .expect_output("granted back the 6 write grant(s)");
    assert_eq!(acls(&p), before, "exactly the grants there were, no more");
    write(&as_role).expect("the role writes again");
    p.run(&["unfreeze", "--role", role]).expect_code(0).expect_output("is not frozen");
    p.run(&["freeze", "--role", "nobody_here", "--reason", "x"])
        .expect_code(2)
        .expect_output("there is no role nobody_here");
}

#[test]
fn a_role_freeze_gives_back_grants_of_other_grantors_across_renames_and_drops() {
    // Regression: freeze --role failed on a grant another grantor made,
    // and unfreeze --role failed (leaving the role frozen) when a table or
    // column had been renamed or dropped during the freeze.
    let p = Project::new("freeze_grantors");
    let app = unique_name("app_role");
    let owner = unique_name("owner_role");
    p.client()
        .batch_execute(&format!(
            "CREATE ROLE {app} NOLOGIN; CREATE ROLE {owner} NOLOGIN;
             CREATE TABLE a (id int, v text); CREATE TABLE b (id int); CREATE TABLE c (id int, x int);
             ALTER TABLE a OWNER TO {owner};
             SET ROLE {owner}; GRANT INSERT, UPDATE ON a TO {app}; RESET ROLE;
             GRANT INSERT ON b TO {app}; GRANT UPDATE (x) ON c TO {app};"
        ))
        .unwrap();
    p.run(&["freeze", "--role", &app, "--reason", "cutover"])
        .expect_code(0)
        .expect_output("revoked 4 write grant(s)");
    let mut db = p.client();
    let can =
        |db: &mut postgres::Client, sql: &str| -> bool { db.query_one(sql, &[]).unwrap().get(0) };
    assert!(!can(&mut db, &format!("select has_table_privilege('{app}', 'a', 'INSERT')")));
    db.batch_execute(
        "ALTER TABLE a RENAME TO a2; ALTER TABLE c RENAME COLUMN x TO y; DROP TABLE b;",
    )
    .unwrap();
    p.run(&["unfreeze", "--role", &app])
        .expect_code(0)
        .expect_output("granted back the 3 write grant(s)")
        .expect_output("not granted: INSERT on public.b: dropped during the freeze");
    assert!(can(&mut db, &format!("select has_table_privilege('{app}', 'a2', 'INSERT')")));
    assert!(can(&mut db, &format!("select has_column_privilege('{app}', 'c', 'y', 'UPDATE')")));
    let grantor: String = db
        .query_one(
            &format!(
                "select g.rolname::text from pg_class c cross join lateral aclexplode(c.relacl) x
                   join pg_roles g on g.oid = x.grantor join pg_roles r on r.oid = x.grantee
                  where c.relname = 'a2' and r.rolname = '{app}' and x.privilege_type = 'INSERT'"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(grantor, owner, "given back in its grantor's name");
}
