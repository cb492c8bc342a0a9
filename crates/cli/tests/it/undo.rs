//! Nothing an undo removes is lost without a copy: before down migrations
//! drop a column of a table that stays, a table, rows or an enum value in
//! use, the values are exported with the table's key, in the same
//! transaction, counted in the output, private whatever the umask.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::common::{DbExt, Project, DEFAULT_CONFIG};
use serde_json::Value;

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn manifest(folder: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap()).unwrap()
}

/// The one folder under `root`.
fn only_folder(root: &Path) -> PathBuf {
    let folders: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    folders[0].clone()
}

/// The release: `orders` existed; v2 added `clients` and
/// `orders.client_id`, and 300 orders got a client.
fn orders_and_clients(label: &str) -> Project {
    let p = Project::new(label);
    p.config(&format!("{DEFAULT_CONFIG}\n[backup]\nrequired = false\n\n[[flags]]\nkey = \"clients\"\nrelease = \"v2\"\n"));
    p.migration(
        "1_orders",
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);\n\
         INSERT INTO orders SELECT i, i * 1.5 FROM generate_series(1, 400) i;",
        Some("DROP TABLE orders;"),
    );
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int PRIMARY KEY, name text NOT NULL);\n\
         ALTER TABLE orders ADD COLUMN client_id int REFERENCES clients;",
        Some("ALTER TABLE orders DROP COLUMN client_id;\nDROP TABLE clients;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute(
            "INSERT INTO clients SELECT i, 'client ' || i FROM generate_series(1, 30) i;
             UPDATE orders SET client_id = 1 + id % 30 WHERE id <= 300;",
        )
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "clients", "--reason", "launch"]).expect_code(0);
    p
}

#[test]
fn method_c_keeps_the_values_of_a_column_the_release_added_to_an_existing_table() {
    // Regression: method C exported the new table only, and the down
    // dropped orders.client_id with its 300 values.
    let p = orders_and_clients("undo_method_c");
    let run = p
        .run(&["rollback", "--method", "C", "--yes", "--reason", "bad release"])
        .expect_code(0)
        .expect_output("✓ down migrations")
        .expect_output("300 values of public.orders.client_id")
        .all();
    let mut db = p.client();
    let column: i64 = db
        .query_one(
            "select count(*) from information_schema.columns where table_name = 'orders' and column_name = 'client_id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(column, 0, "the down ran");

    let folder = only_folder(&p.path().join(".backstop/forensics"));
    let dropped = folder.join("dropped");
    let m = manifest(&dropped);
    let files_listed = m["files"].as_array().unwrap();
    let column = files_listed
        .iter()
        .find(|f| f["column"] == "client_id")
        .unwrap_or_else(|| panic!("no export of client_id: {m:#}\n{run}"));
    assert_eq!(column["table"], "public.orders");
    assert_eq!(column["what"], "column");
    assert_eq!(column["rows"], 300);
    let csv = std::fs::read(dropped.join(column["file"].as_str().unwrap())).unwrap();
    assert_eq!(column["blake3"].as_str().unwrap(), blake3::hash(&csv).to_hex().as_str());
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("id,client_id\n"), "the key, then the value: {csv}");
    assert_eq!(csv.lines().count(), 301, "a header and the 300 values: {csv}");
    assert!(csv.lines().any(|l| l == "7,8"), "order 7 had client 8");
    // The dropped table's rows are kept too (and the forensics export has them).
    assert!(
        files_listed.iter().any(|f| f["table"] == "public.clients" && f["rows"] == 30),
        "{m:#}"
    );

    // Nothing looks complete that is not, and nothing is readable by others.
    for f in files(&folder) {
        let name = f.display().to_string();
        assert!(!name.ends_with(".partial"), "{name} left behind");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn texts_and_exports_are_private_whatever_the_umask() {
    let p = orders_and_clients("undo_umask");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" rollback --method C --yes")
        .arg(crate::common::backstop_bin())
        .current_dir(p.path())
        .env("DATABASE_URL", &p.url)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let folder = only_folder(&p.path().join(".backstop/forensics"));
    for name in ["report.md", "user_email.txt", "manifest.json"] {
        let mode = std::fs::metadata(folder.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// `settings` and `tickets` exist; v2 adds the enum value `archived` and
/// a setting; its down deletes the setting and swaps the type back.
fn tickets(label: &str, extra_config: &str) -> Project {
    let p = Project::new(label);
    p.config(&format!("{DEFAULT_CONFIG}\n[backup]\nrequired = false\n{extra_config}"));
    p.migration(
        "1_tickets",
        "CREATE TYPE status AS ENUM ('open', 'closed');\n\
         CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);\n\
         CREATE TABLE tickets (id int PRIMARY KEY, status status NOT NULL);\n\
         INSERT INTO tickets SELECT i, 'open' FROM generate_series(1, 10) i;\n\
         INSERT INTO settings VALUES ('theme', 'dark');",
        Some("DROP TABLE tickets; DROP TABLE settings; DROP TYPE status;"),
    );
    p.migration(
        "2_archive",
        "ALTER TYPE status ADD VALUE 'archived';\n\
         INSERT INTO settings VALUES ('archive_after', '30 days');",
        Some(
            "DELETE FROM settings WHERE key = 'archive_after';\n\
             UPDATE tickets SET status = 'closed' WHERE status = 'archived';\n\
             ALTER TYPE status RENAME TO status_old;\n\
             CREATE TYPE status AS ENUM ('open', 'closed');\n\
             ALTER TABLE tickets ALTER COLUMN status TYPE status USING status::text::status;\n\
             DROP TYPE status_old;",
        ),
    );
    p.run(&["migrate"]).expect_code(0);
    p.client().batch_execute("UPDATE tickets SET status = 'archived' WHERE id <= 3").unwrap();
    p
}

#[test]
fn a_rollback_keeps_rows_a_down_deletes_and_an_enum_value_in_use() {
    let p = tickets("undo_enum", "");
    let out = p
        .run(&["rollback"])
        .expect_code(0)
        .expect_output("✓ reverted 2_archive")
        .expect_output("kept before the downs removed them")
        .all();
    let folder = only_folder(&p.path().join(".backstop/exports"));
    let m = manifest(&folder);
    let listed = m["files"].as_array().unwrap();
    let rows =
        listed.iter().find(|f| f["what"] == "rows").unwrap_or_else(|| panic!("{m:#}\n{out}"));
    assert_eq!(rows["table"], "public.settings");
    let settings = std::fs::read_to_string(folder.join(rows["file"].as_str().unwrap())).unwrap();
    assert!(settings.contains("archive_after,30 days"), "{settings}");
    let archived = listed
        .iter()
        .find(|f| f["what"] == "enum value archived")
        .unwrap_or_else(|| panic!("{m:#}\n{out}"));
    assert_eq!(archived["table"], "public.tickets");
    assert_eq!(archived["rows"], 3);
    let csv = std::fs::read_to_string(folder.join(archived["file"].as_str().unwrap())).unwrap();
    assert_eq!(csv, "id,status\n1,archived\n2,archived\n3,archived\n");
    // The audit log says what was kept, and where.
    let mut db = p.client();
    let details: Value = db
        .query_one(
            "select details from backstop.events where kind = 'rollback' and outcome = 'ok' order by id desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(details["kept"]["files"].as_array().map(Vec::len), Some(2), "{details:#}");
}

#[test]
fn export_dropped_false_keeps_nothing_for_a_person_who_means_it() {
    let p = tickets("undo_off", "\n[rollback]\nexport_dropped = false\n");
    p.run(&["rollback"]).expect_code(0).expect_output("✓ reverted 2_archive");
    assert!(!p.path().join(".backstop/exports").exists());
}

#[test]
fn a_down_that_removes_no_data_exports_nothing() {
    let p = Project::new("undo_nothing");
    p.config(&format!("{DEFAULT_CONFIG}\n[backup]\nrequired = false\n"));
    p.migration("1_t", "CREATE TABLE t (id int PRIMARY KEY);", Some("DROP TABLE t;"));
    p.migration("2_i", "CREATE INDEX t_id ON t (id);", Some("DROP INDEX t_id;"));
    p.run(&["migrate"]).expect_code(0);
    let out = p.run(&["rollback"]).expect_code(0).all();
    assert!(!out.contains("kept"), "{out}");
    assert!(!p.path().join(".backstop/exports").exists());
}

#[test]
fn rollback_dry_run_names_the_rows_a_down_would_fail_on_and_the_fix_before_anything_runs() {
    let p = Project::new("undo_rows_block");
    p.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE, legacy text NOT NULL);",
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2_drop_legacy",
        "ALTER TABLE users DROP COLUMN legacy;",
        Some("ALTER TABLE users ADD COLUMN legacy text NOT NULL;"),
    );
    p.migration(
        "3_email_optional",
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_key;",
        Some("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\nALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.client().batch_execute("INSERT INTO users VALUES (1, NULL), (2, 'a@x'), (3, 'a@x')").unwrap();

    let dry = p.run(&["rollback", "--to", "1", "--dry-run"]);
    dry.expect_code(1).expect_output("the live rows would make downs fail");
    dry.expect_output("3_email_optional/down.sql:1: 1 value(s) of (email) appear more than once");
    dry.expect_output("(a@x)");
    dry.expect_output("3_email_optional/down.sql:2: 1 row(s) of users hold NULL in email");
    dry.expect_output("UPDATE users SET email");
    // 3's down changes no row of users: 2's is judged on today's rows too.
    dry.expect_output("2_drop_legacy/down.sql:1: users has 3 row(s)");
    p.run(&["rollback", "--to", "1"]).expect_code(1).expect_output("nothing ran");
    assert_eq!(p.client().applied(), ["1", "2", "3"]);

    // Rows fixed, the next down is judged: the NOT NULL column comes back
    // to a table with rows and no default.
    p.client().batch_execute("UPDATE users SET email = id || '@x'").unwrap();
    p.run(&["rollback", "--steps", "1", "--dry-run"]).expect_code(0);
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    let dry = p.run(&["rollback", "--steps", "1", "--dry-run"]);
    dry.expect_code(1).expect_output(
        "users has 3 row(s), and the down adds legacy back NOT NULL with no default",
    );
    dry.expect_output("give legacy a DEFAULT");
    assert_eq!(p.client().applied(), ["1", "2"]);
}

/// A rollback that fails changes nothing: what it exported before its
/// downs ran stays exported, and no ✓ says the downs removed it. Before,
/// a failed rollback still printed "✓ kept before the downs removed them".
#[test]
fn a_failed_rollback_never_says_its_downs_removed_what_it_exported() {
    let p = tickets("undo_failed_export", "");
    // Its down, edited since the deploy, deletes the setting (which is
    // exported first) and forgets the enum value: its check before COMMIT
    // refuses it.
    let down = p.path().join("migrations/2_archive/down.sql");
    std::fs::write(&down, "DELETE FROM settings WHERE key = 'archive_after';\n").unwrap();
    let run = p.run(&["rollback"]);
    run.expect_code(1).expect_output("exported before the downs ran, which were rolled back");
    assert!(!run.all().contains("✓ kept before"), "{}", run.all());
    assert_eq!(p.client().applied(), ["1", "2"]);
    assert_eq!(p.client().count("settings"), 2, "the row the down deletes is still there");
}
