//! Downs of ups that swap an enum type (issue 43): labels put back in
//! their old order, and a column moved off an enum type the up then drops
//! cast back to it through its labels' text, the type made first. Each
//! down is proved, written and run, and the database compared with the
//! one before by the semantic picture.

use backstop_core::pg::fingerprint::Schema;
use serde_json::Value;

use crate::common::{DbExt, Project};

/// The labels of enum type `name`, in their order.
fn labels(p: &Project, name: &str) -> Vec<String> {
    p.client().texts(&format!(
        "select enumlabel::text from pg_enum where enumtypid = '{name}'::regtype order by enumsortorder"
    ))
}

/// Computes the downs of `p`'s history, asserts each is computed and
/// proved, writes them, and returns them by version.
fn proved_downs(p: &Project) -> Value {
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for d in downs.as_array().unwrap() {
        assert_eq!(
            (d["status"].as_str(), d["proved"].as_bool()),
            (Some("computed"), Some(true)),
            "{d:#}"
        );
    }
    p.run(&["downs", "--write"]).expect_code(0);
    downs
}

fn sql_of<'d>(downs: &'d Value, version: &str) -> &'d str {
    let d = downs.as_array().unwrap().iter().find(|d| d["version"] == version);
    d.unwrap_or_else(|| panic!("no down of {version}: {downs:#}"))["sql"].as_str().unwrap()
}

#[test]
fn prismas_enum_swap_that_reorders_labels_gets_a_down_that_gives_the_old_order_back() {
    let p = Project::new("downs_enum_order");
    p.migration(
        "2024-07-01-000001_base",
        "CREATE TYPE \"Level\" AS ENUM ('LOW', 'MID', 'HIGH');
         CREATE TABLE tasks (id int PRIMARY KEY, level \"Level\" NOT NULL DEFAULT 'LOW', levels \"Level\"[]);
         CREATE INDEX tasks_level ON tasks (level);
         INSERT INTO tasks VALUES (1, 'MID', '{LOW,HIGH}'), (2, 'HIGH', NULL);",
        None,
    );
    // What `prisma migrate dev` writes when the enum's labels are reordered.
    p.migration(
        "2024-07-01-000002_reorder",
        "CREATE TYPE \"Level_new\" AS ENUM ('HIGH', 'MID', 'LOW');
         ALTER TABLE \"tasks\" ALTER COLUMN \"level\" DROP DEFAULT;
         ALTER TABLE \"tasks\" ALTER COLUMN \"level\" TYPE \"Level_new\" USING (\"level\"::text::\"Level_new\");
         ALTER TABLE \"tasks\" ALTER COLUMN \"levels\" TYPE \"Level_new\"[] USING (\"levels\"::text::\"Level_new\"[]);
         DROP TYPE \"Level\";
         ALTER TYPE \"Level_new\" RENAME TO \"Level\";
         ALTER TABLE \"tasks\" ALTER COLUMN \"level\" SET DEFAULT 'LOW';",
        None,
    );
    let downs = proved_downs(&p);
    let sql = sql_of(&downs, "2024-07-01-000002");
    assert!(sql.contains("CREATE TYPE public.\"Level\" AS ENUM ('LOW', 'MID', 'HIGH')"), "{sql}");

    p.run(&["migrate", "--to", "2024-07-01-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(labels(&p, "\"Level\""), ["HIGH", "MID", "LOW"], "the up reordered them");
    p.run(&["rollback", "--to", "2024-07-01-000001"]).expect_code(0);
    assert_eq!(labels(&p, "\"Level\""), ["LOW", "MID", "HIGH"], "the old order is back");
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    // The rows keep their labels, and sort in the old order again.
    let rows = p.client().texts(
        "select level::text || ':' || coalesce(levels::text, '-') from tasks order by level",
    );
    assert_eq!(rows, ["MID:{LOW,HIGH}", "HIGH:-"]);
}

#[test]
fn a_down_re_makes_the_enum_an_up_dropped_before_casting_its_column_back_through_text() {
    let p = Project::new("downs_enum_cast");
    p.migration(
        "2024-07-02-000001_base",
        "CREATE TYPE status AS ENUM ('draft', 'done');
         CREATE TYPE kind AS ENUM ('a', 'b');
         CREATE TABLE posts (id int PRIMARY KEY, status status NOT NULL DEFAULT 'draft', kind kind, kinds kind[]);
         CREATE INDEX posts_status ON posts (status);
         INSERT INTO posts VALUES (1, 'done', 'b', '{a,b}'), (2, 'draft', NULL, NULL);",
        None,
    );
    // The column moves to another enum type, the old one goes.
    p.migration(
        "2024-07-02-000002_state",
        "CREATE TYPE state AS ENUM ('draft', 'done', 'archived');
         ALTER TABLE posts ALTER COLUMN status DROP DEFAULT;
         ALTER TABLE posts ALTER COLUMN status TYPE state USING status::text::state;
         ALTER TABLE posts ALTER COLUMN status SET DEFAULT 'draft';
         DROP TYPE status;",
        None,
    );
    // The columns move to text, the type goes.
    p.migration(
        "2024-07-02-000003_text",
        "ALTER TABLE posts ALTER COLUMN kind TYPE text, ALTER COLUMN kinds TYPE text[];
         DROP TYPE kind;",
        None,
    );
    let downs = proved_downs(&p);
    for version in ["2024-07-02-000002", "2024-07-02-000003"] {
        let sql = sql_of(&downs, version);
        let made = sql.find("CREATE TYPE public.").expect(sql);
        let cast = sql.find("::text::public.").expect(sql);
        assert!(made < cast, "the type is made before the column is cast to it:\n{sql}");
    }
    let state = downs.as_array().unwrap().iter().find(|d| d["version"] == "2024-07-02-000002");
    assert_eq!(state.unwrap()["loses"], serde_json::json!([]), "labels cast back lose nothing");

    p.run(&["migrate", "--to", "2024-07-02-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "2024-07-02-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    let rows = p.client().texts(
        "select status::text || ':' || coalesce(kind::text, '-') || ':' || coalesce(kinds::text, '-') from posts order by id",
    );
    assert_eq!(rows, ["done:b:{a,b}", "draft:-:-"]);
}
