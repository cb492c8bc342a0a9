//! Row level security the migration's role does not bypass (forced on the
//! table's owner, no `BYPASSRLS`): a dump would hold only the rows the
//! policies let through, so pg_dump stops on such a table, and Backstop
//! refuses first, with the fix, wherever it would dump its rows.

use crate::common::{DbExt, Project, CLUSTER};
use serde_json::Value;

/// `backup list --format json`.
fn listed(p: &Project) -> Vec<Value> {
    p.run(&["backup", "list", "--format", "json"]).expect_code(0).json().as_array().unwrap().clone()
}

/// A table whose rows row level security filters for the owner (forced on
/// its owner, no BYPASSRLS): a dump of part of it would be a backup that
/// silently lacks rows, and pg_dump stops on it. The gate refuses before
/// anything runs, naming the table and the role's fix; with it, the
/// backup holds every row.
#[test]
fn rows_hidden_by_forced_row_level_security_refuse_the_backup_with_the_fix() {
    let role = crate::common::unique_name("tenant_app");
    let dbname = crate::common::unique_name("forced_rls");
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {dbname} OWNER {role}")).unwrap();
    let url = format!("postgres://{role}:pw@127.0.0.1:{}/{dbname}", CLUSTER.port());
    let mut db = CLUSTER.connect(&dbname).unwrap();
    db.batch_execute(&format!(
        "CREATE TABLE notes (id int PRIMARY KEY, tenant text NOT NULL);
         INSERT INTO notes VALUES (1, 'a'), (2, 'b');
         ALTER TABLE notes OWNER TO {role};
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY; ALTER TABLE notes FORCE ROW LEVEL SECURITY;
         CREATE POLICY own_tenant ON notes USING (tenant = current_setting('app.tenant', true));"
    ))
    .unwrap();
    let p = Project::new("forced_rls_project");
    p.migration("1_extra", "ALTER TABLE notes ADD COLUMN extra text;", None);
    let refused = p.run_with_url(&url, &["migrate"]);
    refused.expect_code(2).expect_output(&format!(
        "row level security shows role {role} only the rows its policies let through in \
         public.notes (owner {role}; the role owns it)"
    ));
    refused.expect_output(&format!("ALTER ROLE \"{role}\" BYPASSRLS"));
    assert!(!refused.all().contains("pw@"), "the password was printed");
    assert!(db.applied().is_empty(), "nothing ran");
    assert!(listed(&p).is_empty(), "a refused backup leaves nothing");
    // A rehearsal's copy by pg_dump (the role may not create databases)
    // is stopped the same way, before anything is made.
    let rehearsal = p.run_with_url(&url, &["rehearse"]);
    rehearsal.expect_code(3).expect_output("could not copy the database: row level security");

    admin.batch_execute(&format!("ALTER ROLE {role} BYPASSRLS")).unwrap();
    p.run_with_url(&url, &["migrate"]).expect_code(0);
    let manifest = &listed(&p)[0];
    let counts: Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path()
                .join(".backstop/backups")
                .join(manifest["id"].as_str().unwrap())
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(counts["row_counts"]["public.notes"], 2, "{counts}");
}
