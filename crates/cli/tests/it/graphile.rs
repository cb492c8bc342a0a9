//! Graphile Migrate's projects, read as graphile-migrate (from npm) reads
//! them and run beside it on the same database: `.gmrc` at the root,
//! `migrations/committed/NNNNNN[-message].sql` chained by their hashes,
//! placeholders filled from `.gmrc`. Before: `status`, `check` and
//! `migrate` said 0 migrations over a whole pending history.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{program, run_program, DbExt, Project};

/// The bodies of a history shaped like a real one: tables, an enum, a
/// view over a view, a plpgsql trigger, a data migration, a grant to the
/// role a placeholder names.
fn bodies(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 6 {
            0 => format!("create table t{i} (id serial primary key, name text not null);"),
            1 => format!("create type mood{i} as enum ('ok', 'meh');\nalter table t{} add column mood mood{i};", i - 1),
            2 => format!("create view v{i} as select id, name from t{};\ncreate view w{i} as select id from v{i};", i - 2),
            3 => format!(
                "create function touch{i}() returns trigger language plpgsql as $$\nbegin\n  new.name := trim(new.name);\n  return new;\nend;\n$$;\ncreate trigger touch{i} before insert on t{} for each row execute function touch{i}();",
                i - 3
            ),
            4 => format!("insert into t{} (name) values ('  a  '), ('b');", i - 4),
            _ => format!("grant select on t{} to :APP_ROLE;", i - 5),
        })
        .collect()
}

/// Writes the committed files with their hashes as graphile-migrate's own
/// hash function gives them (run by node from the installed package).
fn committed(p: &Project, tool: &std::path::Path, bodies: &[String]) {
    let package = std::fs::canonicalize(tool)
        .unwrap()
        .ancestors()
        .find(|d| d.join("dist/hash.js").is_file())
        .map(PathBuf::from)
        .expect("graphile-migrate's package");
    let script = format!(
        "const {{ calculateHash }} = require({:?});\nconst bodies = JSON.parse(require('fs').readFileSync(0, 'utf8'));\nlet prev = null;\nconsole.log(JSON.stringify(bodies.map(b => (prev = calculateHash(b + '\\n', prev)))));",
        package.join("dist/hash.js")
    );
    let mut child = Command::new("node")
        .args(["-e", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(bodies).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let hashes: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let mut previous = "-".to_string();
    for (i, (body, hash)) in bodies.iter().zip(hashes).enumerate() {
        let name = if i % 2 == 0 {
            format!("{:06}.sql", i + 1)
        } else {
            format!("{:06}-step-{i}.sql", i + 1)
        };
        let message = if i % 2 == 0 { String::new() } else { format!("--! Message: step {i}\n") };
        p.write(
            &format!("migrations/committed/{name}"),
            &format!("--! Previous: {previous}\n--! Hash: {hash}\n{message}\n{body}\n"),
        );
        previous = hash;
    }
}

/// graphile-migrate's exit code and what it said (it logs to stderr).
fn graphile(p: &Project, tool: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    // `status` checks a shadow database is named, though it reads none.
    let out = Command::new(tool)
        .args(args)
        .current_dir(p.path())
        .env("DATABASE_URL", &p.url)
        .env("SHADOW_DATABASE_URL", format!("{}_shadow", p.url))
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), format!("{stdout}{stderr}"))
}

#[test]
fn a_graphile_history_is_found_adopted_migrated_and_graphile_migrate_agrees() {
    let Some(tool) = program("graphile-migrate", ".ci/tools/graphile-migrate.sh") else { return };
    let p = Project::bare("graphile");
    let role = format!("app_{}", std::process::id());
    p.client().batch_execute(&format!("drop role if exists {role}; create role {role}")).unwrap();
    p.write(".gmrc", &format!("{{\n  // roles the migrations grant to\n  \"placeholders\": {{\n    \":APP_ROLE\": \"{role}\",\n  }},\n}}\n"));
    p.write("migrations/current.sql", "-- Enter migration here\n");
    committed(&p, &tool, &bodies(36));

    // The tool applies the first twelve itself: our chain is its chain.
    let mut db = p.client();
    let dir = p.path().join("migrations/committed");
    let later: Vec<PathBuf> =
        (13..=36)
            .filter_map(|i| {
                std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|f| {
                    f.file_name().unwrap().to_string_lossy().starts_with(&format!("{i:06}"))
                })
            })
            .collect();
    let aside = p.path().join("later");
    std::fs::create_dir_all(&aside).unwrap();
    for f in &later {
        std::fs::rename(f, aside.join(f.file_name().unwrap())).unwrap();
    }
    run_program(
        Command::new(&tool).arg("migrate").current_dir(p.path()).env("DATABASE_URL", &p.url),
    );
    for f in &later {
        std::fs::rename(aside.join(f.file_name().unwrap()), f).unwrap();
    }
    assert_eq!(db.count("graphile_migrate.migrations"), 12);

    let status = p.run(&["status"]);
    status
        .expect_code(1)
        .expect_output("36 migration(s)")
        .expect_output("adopt --from graphile-migrate");
    p.run(&["adopt", "--from", "graphile-migrate", "--yes"])
        .expect_code(0)
        .expect_output("✓ adopted");
    assert_eq!(db.applied().len(), 12);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied().len(), 36);
    assert_eq!(db.count("graphile_migrate.migrations"), 36, "graphile's history follows");
    let granted: bool = db
        .query_one(&format!("select has_table_privilege('{role}', 't30', 'select')"), &[])
        .unwrap()
        .get(0);
    assert!(granted, "the placeholder was filled from .gmrc");
    let (code, said) = graphile(&p, &tool, &["status"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("Up to date") || !said.contains("pending"), "{said}");
    run_program(
        Command::new(&tool).arg("migrate").current_dir(p.path()).env("DATABASE_URL", &p.url),
    );
    assert_eq!(db.count("graphile_migrate.migrations"), 36, "graphile-migrate ran nothing again");

    // A rollback takes graphile's rows out: the tool sees them pending.
    p.run(&["rollback", "--steps", "2"]).expect_code(0);
    let (code, said) = graphile(&p, &tool, &["status"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("2 committed migrations pending"), "{said}");

    // A committed file changed afterwards is refused by name, as the tool
    // refuses it; nothing runs.
    let last = dir.join("000036-step-35.sql");
    let text = std::fs::read_to_string(&last).unwrap();
    std::fs::write(&last, text.replace("grant select", "grant insert")).unwrap();
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("000036-step-35.sql")
        .expect_output("no longer matches its hash");
    assert_eq!(db.applied().len(), 34);
}

#[test]
fn a_fresh_database_gets_graphiles_history_from_the_first_migrate() {
    let Some(tool) = program("graphile-migrate", ".ci/tools/graphile-migrate.sh") else { return };
    let p = Project::bare("graphile_fresh");
    p.write(".gmrc", "{\n  \"placeholders\": { \":APP_ROLE\": \"public\" },\n}\n");
    committed(&p, &tool, &bodies(8));
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(db.count("graphile_migrate.migrations"), 8);
    let (code, said) = graphile(&p, &tool, &["migrate"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("Running migration"), "{said}");
    assert_eq!(db.count("graphile_migrate.migrations"), 8);
}

/// A committed file with its author's own `BEGIN` … `COMMIT`, which
/// graphile-migrate runs (in its transaction, the file sent as one
/// query): Backstop runs it too, and its hash stays the file's. Before,
/// the file was blocked, and both fixes offered changed its hash.
#[test]
fn a_committed_file_with_its_authors_transaction_runs_as_graphile_runs_it() {
    let Some(tool) = program("graphile-migrate", ".ci/tools/graphile-migrate.sh") else { return };
    let p = Project::bare("graphile_txn");
    p.write(".gmrc", "{\n  \"placeholders\": { \":APP_ROLE\": \"public\" },\n}\n");
    let mut bodies = bodies(2);
    bodies.push(
        "BEGIN;\ncreate table txn_t (id int primary key);\ninsert into txn_t values (1);\nCOMMIT;"
            .into(),
    );
    committed(&p, &tool, &bodies);
    p.run(&["check"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(db.count("public.txn_t"), 1);
    assert_eq!(db.count("graphile_migrate.migrations"), 3);
    let (code, said) = graphile(&p, &tool, &["migrate"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("Running migration"), "graphile-migrate takes Backstop's run: {said}");
}
