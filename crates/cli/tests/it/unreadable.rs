//! A migration's file that cannot be read (a symlink that leads nowhere,
//! one to a folder, one that loops) is a problem of that migration, named
//! with its path: `status` shows it, `check` reports it, `migrate` refuses
//! to run it, and the migrations before it still run.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::{DbExt, Project};
use serde_json::Value;

/// The ways a file can be there and not readable.
#[derive(Debug, Clone, Copy)]
enum Broken {
    Dangling,
    ToFolder,
    Loop,
}

const ALL: [Broken; 3] = [Broken::Dangling, Broken::ToFolder, Broken::Loop];

impl Broken {
    /// Makes `rel` (in the project) a symlink broken this way.
    fn make(self, p: &Project, rel: &str) {
        let path = p.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match self {
            Broken::Dangling => symlink(p.path().join("shared/gone.sql"), &path).unwrap(),
            Broken::ToFolder => {
                let folder = p.path().join("shared/a_folder");
                std::fs::create_dir_all(&folder).unwrap();
                symlink(folder, &path).unwrap();
            }
            Broken::Loop => symlink(path.file_name().unwrap(), &path).unwrap(),
        }
    }

    /// What the problem says about it.
    fn said(self) -> &'static str {
        match self {
            Broken::Dangling => "which does not exist",
            Broken::ToFolder => "a symlink to the folder",
            Broken::Loop => "leads round in a loop",
        }
    }
}

/// A project of `layout` whose first migration is whole and whose second
/// has its up file, `second_up`, broken as `broken`.
fn project(layout: &str, broken: Broken) -> (Project, &'static str) {
    let p = Project::new(&format!("unreadable_{layout}_{broken:?}").to_lowercase());
    let second_up = match layout {
        "diesel" => {
            p.migration("1_first", "CREATE TABLE first (id int);", Some("DROP TABLE first;"));
            p.write("migrations/2_second/down.sql", "DROP TABLE second;");
            "migrations/2_second/up.sql"
        }
        "sqlx" => {
            p.write("migrations/1_first.up.sql", "CREATE TABLE first (id int);");
            p.write("migrations/1_first.down.sql", "DROP TABLE first;");
            p.write("migrations/2_second.down.sql", "DROP TABLE second;");
            "migrations/2_second.up.sql"
        }
        _ => unreachable!("a layout of this test"),
    };
    broken.make(&p, second_up);
    (p, second_up)
}

/// The problem `status --format json` reports for `path`, if any.
fn problem_of(status: &Value, path: &Path) -> Option<Value> {
    status["problems"]
        .as_array()?
        .iter()
        .find(|pr| pr["path"].as_str().is_some_and(|s| Path::new(s).ends_with(path)))
        .cloned()
}

fn a_broken_up_blocks_only_what_runs_it(layout: &str) {
    for broken in ALL {
        let (p, second_up) = project(layout, broken);
        let what = format!("{layout}, {broken:?}");
        let status = p.run(&["status", "--format", "json"]);
        let json = status.json();
        assert_eq!(json["layout"], layout, "{what}: {}", status.stdout);
        let problem = problem_of(&json, Path::new(second_up))
            .unwrap_or_else(|| panic!("{what}: no problem for {second_up}: {}", status.stdout));
        assert_eq!(problem["kind"], "unreadable", "{what}: {problem}");
        assert_eq!(problem["part"], "up", "{what}: {problem}");
        assert!(problem["message"].as_str().unwrap().contains(broken.said()), "{what}: {problem}");
        p.run(&["status"]).expect_output(second_up).expect_output("blocks migrate");

        let check = p.run(&["check"]);
        assert_ne!(check.code, Some(0), "{what}: check passes a file it cannot read");
        check.expect_output(second_up).expect_output(broken.said());

        let migrate = p.run(&["migrate"]);
        migrate.expect_code(2).expect_output(second_up);
        let mut db = p.client();
        assert!(!db.exists("first"), "{what}: migrate refuses before it runs anything");

        p.run(&["migrate", "--to", "1"]).expect_code(0);
        assert!(db.exists("first"), "{what}: the migration before it runs");
    }
}

#[test]
fn an_unreadable_up_is_a_problem_of_its_migration_in_the_diesel_layout() {
    // Regression (issue 34): a dangling up.sql, one to a folder or one in
    // a loop was skipped: status and migrate said nothing and exited 0.
    a_broken_up_blocks_only_what_runs_it("diesel");
}

#[test]
fn an_unreadable_up_is_a_problem_of_its_migration_in_the_sqlx_layout() {
    a_broken_up_blocks_only_what_runs_it("sqlx");
}

#[test]
fn an_unreadable_down_blocks_only_a_rollback_through_it() {
    for broken in ALL {
        let p = Project::new(&format!("unreadable_down_{broken:?}").to_lowercase());
        p.migration("1_first", "CREATE TABLE first (id int);", None);
        broken.make(&p, "migrations/1_first/down.sql");
        p.run(&["status"])
            .expect_output("migrations/1_first/down.sql")
            .expect_output("blocks a rollback through it");
        p.run(&["migrate"]).expect_code(0);
        assert!(p.client().exists("first"), "{broken:?}");
        p.run(&["rollback", "--steps", "1"])
            .expect_output("migrations/1_first/down.sql")
            .expect_output(broken.said());
        assert!(p.client().exists("first"), "{broken:?}: nothing was reverted");
    }
}
