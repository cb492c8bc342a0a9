//! Rehearsal speed, as ratios measured in one run:
//!
//! 1. `backstop rehearse` over 300+ generated migrations of the shapes real
//!    projects write (tables, views, functions, triggers, enums, indexes,
//!    constraints, data backfills), each with an up → down → up round trip,
//!    against what projects do today: `pg_dump --schema-only` before the up
//!    and after the down of every migration, compared as text, with `psql`
//!    running the files. Target: 5× faster.
//! 2. Copying a pgbench database (scale from BENCH_SCALE, default 50) by
//!    template against `pg_dump | psql`. Target: 5× faster.
//!
//! Run: `cargo bench -p backstop-cli --bench rehearse`
//! (BENCH_MIGRATIONS sets the corpus size, default 300.)

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop_core::pg::cluster::Cluster;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Up and down SQL of migration `i`; table `t{k}` of an earlier migration
/// is the target of the shapes that alter something.
fn migration(i: usize) -> (String, String) {
    let base = i / 10 * 10; // the table created at the start of each block of ten
    let t = format!("t{base}");
    match i % 10 {
        0 => (
            format!(
                "CREATE TABLE {t} (\n  id bigserial PRIMARY KEY,\n  name text NOT NULL,\n  \
                 created_at timestamptz NOT NULL DEFAULT now(),\n  payload jsonb\n);\n\
                 INSERT INTO {t} (name, payload) SELECT 'row ' || g, jsonb_build_object('n', g, 'tag', md5(g::text))\n  \
                 FROM generate_series(1, 200) g;"
            ),
            format!("DROP TABLE {t};"),
        ),
        1 => (
            format!("ALTER TABLE {t} ADD COLUMN score{i} integer NOT NULL DEFAULT 0;"),
            format!("ALTER TABLE {t} DROP COLUMN score{i};"),
        ),
        2 => (
            format!("CREATE INDEX {t}_name_idx{i} ON {t} (name);"),
            format!("DROP INDEX {t}_name_idx{i};"),
        ),
        3 => (
            format!(
                "CREATE VIEW v{i} AS\n  SELECT id, name, payload ->> 'tag' AS tag FROM {t} WHERE created_at > now() - interval '30 days';"
            ),
            format!("DROP VIEW v{i};"),
        ),
        4 => (
            format!(
                "CREATE FUNCTION f{i}(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$\n\
                 BEGIN\n  -- a body with ; and quotes ' inside\n  RETURN x * {i} + length('a;b');\nEND\n$$;"
            ),
            format!("DROP FUNCTION f{i}(integer);"),
        ),
        5 => (
            format!(
                "CREATE FUNCTION touch{i}() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                 BEGIN NEW.created_at := now(); RETURN NEW; END\n$$;\n\
                 CREATE TRIGGER touch{i} BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION touch{i}();"
            ),
            format!("DROP TRIGGER touch{i} ON {t};\nDROP FUNCTION touch{i}();"),
        ),
        6 => (
            format!(
                "CREATE TYPE status{i} AS ENUM ('new', 'active', 'closed');\n\
                 ALTER TABLE {t} ADD COLUMN status{i} status{i} NOT NULL DEFAULT 'new';"
            ),
            format!("ALTER TABLE {t} DROP COLUMN status{i};\nDROP TYPE status{i};"),
        ),
        7 => (
            format!(
                "INSERT INTO {t} (name, payload)\n  SELECT 'backfill{i} ' || g, jsonb_build_object('batch', {i})\n  FROM generate_series(1, 100) g;\n\
                 UPDATE {t} SET payload = payload || '{{\"seen\": true}}' WHERE name LIKE 'backfill{i} %';"
            ),
            format!("DELETE FROM {t} WHERE name LIKE 'backfill{i} %';"),
        ),
        8 => (
            format!("ALTER TABLE {t} ADD CONSTRAINT {t}_name_len{i} CHECK (length(name) < 500);"),
            format!("ALTER TABLE {t} DROP CONSTRAINT {t}_name_len{i};"),
        ),
        _ => (
            format!(
                "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = '{t}') THEN\n    \
                 RAISE EXCEPTION 'missing {t}';\n  END IF;\nEND\n$$;\nCOMMENT ON TABLE {t} IS 'block {base}';"
            ),
            format!("COMMENT ON TABLE {t} IS NULL;"),
        ),
    }
}

fn write_corpus(dir: &Path, n: usize) {
    for i in 0..n {
        let (up, down) = migration(i);
        let m = dir.join(format!("{:05}_m{i}", i + 1));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("up.sql"), up).unwrap();
        std::fs::write(m.join("down.sql"), down).unwrap();
    }
}

fn run(cmd: &mut Command, what: &str) -> Duration {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn tool(cluster: &Cluster, name: &str) -> Command {
    let mut cmd = Command::new(cluster.bin().tool(name));
    cmd.env("PGPASSWORD", password(cluster));
    for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] {
        cmd.env_remove(var);
    }
    cmd
}

fn password(cluster: &Cluster) -> String {
    let url = cluster.url("x");
    url.split(':').nth(2).and_then(|p| p.split('@').next()).unwrap_or_default().to_string()
}

fn conninfo(cluster: &Cluster, db: &str) -> String {
    format!("host=127.0.0.1 port={} user=postgres dbname={db}", cluster.port())
}

fn psql_file(cluster: &Cluster, db: &str, file: &Path) {
    run(
        tool(cluster, "psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
            .arg(file)
            .arg(conninfo(cluster, db)),
        "psql",
    );
}

fn schema_dump(cluster: &Cluster, db: &str) -> String {
    let out = tool(cluster, "pg_dump")
        .args(["--schema-only", "--exclude-schema=backstop"])
        .arg(format!("--dbname={}", conninfo(cluster, db)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // pg_dump 15 has no random \restrict key, but later ones do: drop it.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Today's way: psql the files, pg_dump --schema-only around each down.
fn baseline(cluster: &Cluster, db: &str, dir: &Path, n: usize) -> Duration {
    let t = Instant::now();
    let mut mismatches = 0;
    for i in 0..n {
        let m = dir.join(format!("{:05}_m{i}", i + 1));
        let before = schema_dump(cluster, db);
        psql_file(cluster, db, &m.join("up.sql"));
        psql_file(cluster, db, &m.join("down.sql"));
        if schema_dump(cluster, db) != before {
            mismatches += 1;
        }
        psql_file(cluster, db, &m.join("up.sql"));
    }
    assert_eq!(mismatches, 0, "the generated downs must restore the schema");
    t.elapsed()
}

fn backstop(dir: &Path, url: &str, args: &[&str]) -> (Duration, String) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "backstop {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, stdout)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to run as a test
    }
    let n = env_num("BENCH_MIGRATIONS", 300);
    let scale = env_num("BENCH_SCALE", 50);
    let cluster = Cluster::start().expect("throwaway cluster");
    let work = tempfile::tempdir().unwrap();
    let migrations = work.path().join("migrations");
    write_corpus(&migrations, n);
    std::fs::write(work.path().join("backstop.toml"), "[migrations]\ndir = \"migrations\"\n")
        .unwrap();
    let mut report = String::new();

    // 1. Round trips over the corpus.
    cluster.create_database("corpus_backstop", None).unwrap();
    cluster.create_database("corpus_baseline", None).unwrap();
    eprintln!("rehearse: {n} migrations, backstop rehearse ...");
    let (ours, json) =
        backstop(work.path(), &cluster.url("corpus_backstop"), &["rehearse", "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("rehearse prints JSON");
    assert_eq!(parsed["ok"], true, "the corpus must rehearse cleanly: {json}");
    assert_eq!(parsed["migrations"].as_array().map(Vec::len), Some(n));
    eprintln!("rehearse: {n} migrations, pg_dump --schema-only + psql ...");
    let theirs = baseline(&cluster, "corpus_baseline", &migrations, n);
    let _ = writeln!(
        report,
        "round trips of {n} migrations: backstop rehearse {:.1}s, pg_dump -s + psql {:.1}s: {:.1}x faster (target 5x: {})",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        if theirs.as_secs_f64() / ours.as_secs_f64() >= 5.0 { "met" } else { "NOT met" }
    );

    // 2. Copying a pgbench database.
    cluster.create_database("bench_source", None).unwrap();
    eprintln!("clone: pgbench -i -s {scale} ...");
    run(
        tool(&cluster, "pgbench")
            .args(["-i", "-q", "-s", &scale.to_string()])
            .arg(conninfo(&cluster, "bench_source")),
        "pgbench -i",
    );
    let mut admin = cluster.connect("postgres").unwrap();
    let t = Instant::now();
    admin
        .batch_execute("CREATE DATABASE copy_template TEMPLATE bench_source STRATEGY FILE_COPY")
        .unwrap();
    let template = t.elapsed();
    cluster.create_database("copy_dump", None).unwrap();
    let t = Instant::now();
    let mut dump = tool(&cluster, "pg_dump")
        .arg(format!("--dbname={}", conninfo(&cluster, "bench_source")))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let restored = tool(&cluster, "psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(conninfo(&cluster, "copy_dump"))
        .stdin(dump.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(dump.wait().unwrap().success() && restored.success());
    let dumped = t.elapsed();
    let _ = writeln!(
        report,
        "copy of pgbench scale {scale}: template {:.2}s, pg_dump | psql {:.1}s: {:.0}x faster (target 5x: {})",
        template.as_secs_f64(),
        dumped.as_secs_f64(),
        dumped.as_secs_f64() / template.as_secs_f64(),
        if dumped.as_secs_f64() / template.as_secs_f64() >= 5.0 { "met" } else { "NOT met" }
    );
    print!("{report}");
}
