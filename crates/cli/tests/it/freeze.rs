//! A role's write freeze follows the role, not its name: renamed during
//! the freeze, it is unfrozen under either name, with exactly the grants
//! it had given back and both names said.

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
