//! No finding that its own facts clear: for each rule whose finding the
//! live check (or the batch before the statement) informs, the fact that
//! clears it makes `backstop check` leave it out, and the same statement
//! without that fact is still reported, so each row can fail.

use crate::common::Project;
use serde_json::Value;

/// The live database every case is checked against: a table with rows and
/// a validated CHECK that proves a column NOT NULL, one whose foreign key
/// column is indexed, one that has neither, a policy, and the function of
/// the platform's `auth` schema that Supabase migrations call.
const LIVE: &str = "
    CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, nick varchar(20), note text,
                        CONSTRAINT users_note_known CHECK (note IS NOT NULL));
    INSERT INTO users SELECT g, 'u' || g || '@x', 'n' || g, 'note' FROM generate_series(1, 50) g;
    CREATE TABLE orders (id int PRIMARY KEY, user_id int);
    CREATE INDEX orders_user_idx ON orders (user_id);
    CREATE TABLE items (id int PRIMARY KEY, user_id int, name text);
    INSERT INTO items SELECT g, g, 'i' || g FROM generate_series(1, 20) g;
    CREATE TABLE clients (id int, user_id int);
    ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
    CREATE POLICY clients_own ON clients USING (user_id = 1);
    CREATE UNIQUE INDEX clients_id_key ON clients (id);
    CREATE TABLE tags (id int NOT NULL, name text);
    CREATE UNIQUE INDEX tags_id_key ON tags (id);
    CREATE FUNCTION steady_now() RETURNS timestamptz LANGUAGE sql STABLE AS 'select now()';
    CREATE SCHEMA auth;
    CREATE FUNCTION auth.uid() RETURNS int LANGUAGE sql STABLE AS 'select 1';
";

/// One rule: statements whose facts clear its finding (each checked as a
/// file of its own), the fact that does, and a statement without it.
struct Case {
    code: &'static str,
    clears: &'static str,
    cleared: &'static [&'static str],
    reported: &'static str,
}

const CASES: &[Case] = &[
    Case {
        code: "BS101",
        clears: "the table is made by SELECT … INTO earlier in the batch; a table not there, dropped IF EXISTS (also when the batch makes it after)",
        cleared: &[
            "SELECT id, email INTO work_table FROM users;\nCREATE INDEX work_table_idx ON work_table (id);\nDROP TABLE work_table;\n",
            "DROP TABLE IF EXISTS never_was;\n",
            "DROP TABLE IF EXISTS fresh CASCADE;\nCREATE TABLE fresh (id int PRIMARY KEY);\n",
        ],
        reported: "DROP TABLE items;\n",
    },
    Case {
        code: "BS102",
        clears: "the table is made by CREATE TABLE … AS earlier in the batch",
        cleared: &["CREATE TABLE w AS SELECT id, email FROM users;\nALTER TABLE w DROP COLUMN email;\n"],
        reported: "ALTER TABLE items DROP COLUMN name;\n",
    },
    Case {
        code: "BS104",
        clears: "the table is made earlier in the batch",
        cleared: &["SELECT * INTO w FROM items;\nTRUNCATE w;\n"],
        reported: "TRUNCATE items;\n",
    },
    Case {
        code: "BS105",
        clears: "the table is made earlier in the batch",
        cleared: &["SELECT * INTO w FROM items;\nDELETE FROM w;\n"],
        reported: "DELETE FROM items;\n",
    },
    Case {
        code: "BS106",
        clears: "the table is made earlier in the batch",
        cleared: &["SELECT * INTO w FROM items;\nUPDATE w SET name = 'x';\n"],
        reported: "UPDATE items SET name = 'x';\n",
    },
    Case {
        code: "BS107",
        clears: "the new type holds every value of the old (pg_attribute)",
        cleared: &["ALTER TABLE users ALTER COLUMN nick TYPE varchar(100);\n"],
        reported: "ALTER TABLE users ALTER COLUMN nick TYPE varchar(5);\n",
    },
    Case {
        code: "BS201",
        clears: "the materialized view is made earlier in the batch",
        cleared: &["CREATE MATERIALIZED VIEW mv AS SELECT id FROM users;\nCREATE INDEX mv_idx ON mv (id);\n"],
        reported: "CREATE INDEX items_name_idx ON items (name);\n",
    },
    Case {
        code: "BS203",
        clears: "the table is made earlier in the batch: the lock blocks no one",
        cleared: &["SELECT id, user_id INTO w FROM items;\nALTER TABLE w ADD CONSTRAINT w_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE w VALIDATE CONSTRAINT w_user_fk;\n"],
        reported: "ALTER TABLE items ADD CONSTRAINT items_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE items VALIDATE CONSTRAINT items_user_fk;\n",
    },
    Case {
        code: "BS204",
        clears: "a validated CHECK (note IS NOT NULL) spares the scan (pg_constraint)",
        cleared: &["ALTER TABLE users ALTER COLUMN note SET NOT NULL;\n"],
        reported: "ALTER TABLE users ALTER COLUMN nick SET NOT NULL;\n",
    },
    Case {
        code: "BS204",
        clears: "PRIMARY KEY USING INDEX: every column of the index is NOT NULL already (pg_attribute)",
        cleared: &["ALTER TABLE tags ADD CONSTRAINT tags_pkey PRIMARY KEY USING INDEX tags_id_key;\n"],
        reported: "ALTER TABLE clients ADD CONSTRAINT clients_pkey PRIMARY KEY USING INDEX clients_id_key;\n",
    },
    Case {
        code: "BS205",
        clears: "the table is made earlier in the batch; the default's function is not volatile (pg_proc)",
        cleared: &[
            "SELECT * INTO w FROM items;\nALTER TABLE w ADD COLUMN seen timestamptz DEFAULT clock_timestamp();\n",
            "ALTER TABLE items ADD COLUMN seen timestamptz DEFAULT steady_now();\n",
        ],
        reported: "ALTER TABLE items ADD COLUMN seen timestamptz DEFAULT clock_timestamp();\n",
    },
    Case {
        code: "BS206",
        clears: "varchar to text is binary-coercible (pg_cast); the table is made earlier in the batch",
        cleared: &[
            "ALTER TABLE users ALTER COLUMN nick TYPE text;\n",
            "SELECT * INTO w FROM items;\nALTER TABLE w ALTER COLUMN id TYPE bigint;\n",
        ],
        reported: "ALTER TABLE items ALTER COLUMN id TYPE bigint;\n",
    },
    Case {
        code: "BS207",
        clears: "the table is made earlier in the batch",
        cleared: &["SELECT * INTO w FROM items;\nALTER TABLE w ADD CONSTRAINT w_name_key UNIQUE (name);\n"],
        reported: "ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name);\n",
    },
    Case {
        code: "BS208",
        clears: "the table is made earlier in the batch",
        cleared: &["SELECT * INTO w FROM items;\nCREATE INDEX w_id_idx ON w (id);\nCLUSTER w USING w_id_idx;\n"],
        reported: "CLUSTER orders USING orders_user_idx;\n",
    },
    Case {
        code: "BS301",
        clears: "the table is made earlier in the batch: no running code knows it",
        cleared: &["SELECT * INTO w FROM items;\nALTER TABLE w RENAME TO w2;\n"],
        reported: "ALTER TABLE items RENAME TO things;\n",
    },
    Case {
        code: "BS302",
        clears: "the column is added earlier in the batch: no running code knows it",
        cleared: &["ALTER TABLE items ADD COLUMN tmp text;\nALTER TABLE items RENAME COLUMN tmp TO scratch;\n"],
        reported: "ALTER TABLE items RENAME COLUMN name TO title;\n",
    },
    Case {
        code: "BS502",
        clears: "no policy of that name on the table (pg_policy)",
        cleared: &["CREATE POLICY clients_read ON clients FOR SELECT USING (true);\n"],
        reported: "CREATE POLICY clients_own ON clients FOR SELECT USING (true);\n",
    },
    Case {
        code: "BS601",
        clears: "an index on the server covers the foreign key's columns (pg_index)",
        cleared: &["ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n"],
        reported: "ALTER TABLE items ADD CONSTRAINT items_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
    },
    Case {
        code: "BS701",
        clears: "the extension is installed (IF NOT EXISTS), or available to the role (pg_available_extensions)",
        cleared: &[
            "CREATE EXTENSION IF NOT EXISTS plpgsql;\n",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n",
        ],
        reported: "CREATE EXTENSION IF NOT EXISTS no_such_extension;\n",
    },
    Case {
        code: "BS404",
        clears: "the table is made empty earlier in the batch (reported when the batch fills it)",
        cleared: &["CREATE TABLE w (id int);\nALTER TABLE w ADD COLUMN n int NOT NULL;\n"],
        reported: "CREATE TABLE w AS SELECT id FROM users;\nALTER TABLE w ADD COLUMN n int NOT NULL;\n",
    },
    Case {
        code: "BS702",
        clears: "the database has the platform's function auth.uid() (pg_proc)",
        cleared: &["CREATE POLICY clients_auth ON clients USING (auth.uid() = user_id);\n"],
        reported: "GRANT USAGE ON SCHEMA extensions TO PUBLIC;\n",
    },
];

/// The findings of `code` when `sql` alone is checked against the live database.
fn found(p: &Project, code: &str, sql: &str) -> Vec<Value> {
    p.write("m.sql", sql);
    let run = p.run(&["check", "--format", "json", "m.sql"]);
    let json = run.json();
    assert!(json["live"].is_object(), "no live facts were taken:\n{}", run.all());
    json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).cloned().collect()
}

#[test]
fn a_finding_whose_own_facts_clear_it_is_not_reported_for_any_rule_with_live_facts() {
    let p = Project::new("cleared_by_facts");
    p.client().batch_execute(LIVE).unwrap();
    for case in CASES {
        for sql in case.cleared {
            let left = found(&p, case.code, sql);
            assert!(
                left.is_empty(),
                "{}: {} clears it, yet for\n{sql}it says {left:#?}",
                case.code,
                case.clears
            );
        }
        let reported = found(&p, case.code, case.reported);
        assert!(
            !reported.is_empty(),
            "{}: without the fact that clears it, \n{}is reported",
            case.code,
            case.reported
        );
    }
}

/// A column added with no value, then SET NOT NULL, on a table with rows
/// fails for certain: critical, with the rows counted; an UPDATE between
/// gives the rows their values, and the finding goes.
#[test]
fn set_not_null_on_a_column_just_added_with_no_value_is_a_certain_failure() {
    let p = Project::new("set_not_null_added");
    p.client().batch_execute(LIVE).unwrap();
    let sql = "ALTER TABLE users ADD COLUMN plan text;\nALTER TABLE users ALTER COLUMN plan SET NOT NULL;\n";
    let found = found(&p, "BS404", sql);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["severity"], "critical", "{:#}", found[0]);
    assert!(found[0]["facts"].to_string().contains("holds 50 row(s)"), "{:#}", found[0]);
    let filled = "ALTER TABLE users ADD COLUMN plan text;\nUPDATE users SET plan = 'free';\n\
                  ALTER TABLE users ALTER COLUMN plan SET NOT NULL;\n";
    assert_eq!(self::found(&p, "BS404", filled), Vec::<Value>::new());
}

#[test]
fn select_into_then_an_index_and_a_drop_is_go_not_a_false_no_go() {
    let p = Project::new("cleared_select_into");
    p.client().batch_execute(LIVE).unwrap();
    p.migration(
        "1_work_table",
        "SELECT id, email INTO work_table FROM users WHERE id < 10;\n\
         CREATE INDEX work_table_id_idx ON work_table (id);\n\
         UPDATE users SET nick = 'x' FROM work_table WHERE users.id = work_table.id;\n\
         DROP TABLE work_table;\n",
        None,
    );
    let json = p.run(&["check", "--format", "json"]).json();
    let about_it: Vec<&Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["message"].as_str().unwrap().contains("work_table"))
        .collect();
    assert!(about_it.is_empty(), "{about_it:#?}");
    assert_ne!(json["verdict"], "NO-GO", "{json:#}");
    // migrate, with the check gate on by default, agrees.
    p.run(&["migrate"]).expect_code(0);
}

#[test]
fn an_installed_extension_created_without_if_not_exists_is_a_true_no_go() {
    let p = Project::new("cleared_extension_again");
    p.write("ext.sql", "CREATE EXTENSION plpgsql;\n");
    let run = p.run(&["check", "ext.sql"]);
    run.expect_code(1)
        .expect_output("critical[BS701]")
        .expect_output(
            "plpgsql 1.0 is already installed: CREATE EXTENSION without IF NOT EXISTS fails",
        )
        .expect_output("CREATE EXTENSION IF NOT EXISTS plpgsql");
}

#[test]
fn a_protected_table_the_batch_makes_by_select_into_is_not_called_missing() {
    let p = Project::new("cleared_protected");
    p.config(&format!("{}protected_tables = [\"users_archive\"]\n", crate::common::DEFAULT_CONFIG));
    p.client().batch_execute(LIVE).unwrap();
    let bs100 = |json: &Value| -> Vec<Value> {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "BS100")
            .cloned()
            .collect()
    };
    // Nothing makes it: migrate's pre-flight would refuse.
    p.migration("1_other", "CREATE TABLE other (id int);\n", None);
    let json = p.run(&["check", "--format", "json"]).json();
    let missing = bs100(&json);
    assert_eq!(missing.len(), 1, "{json:#}");
    assert!(missing[0]["message"].as_str().unwrap().contains("does not exist on the server"));
    // The batch makes it by SELECT … INTO: it is there when it matters.
    p.migration("2_archive", "SELECT id, email INTO users_archive FROM users;\n", None);
    let json = p.run(&["check", "--format", "json"]).json();
    assert_eq!(bs100(&json), Vec::<Value>::new(), "{json:#}");
}
