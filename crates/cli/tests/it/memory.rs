//! A large data migration costs memory in proportion to its text: `check`
//! and `migrate` of a data migration stay well within 8 times its size,
//! the target (they took 56 times, holding every parse tree at once, and
//! then more than 8, holding every token of every row). The tests hold 6,
//! so that a regression shows before the target is lost; they peak at
//! about 3 to 4.5. Each run's own peak is measured, so the tests running
//! beside these do not count.

use std::process::Stdio;

use crate::common::{Project, Run};

/// About `bytes` of INSERTs of `rows` rows each, as a data migration or a
/// seed dump writes them.
fn data_migration(bytes: usize, rows: usize) -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, note text, \
         amount numeric(12,2));\n",
    );
    let mut id = 0u64;
    while sql.len() < bytes {
        sql.push_str("INSERT INTO customers (id, name, note, amount) VALUES\n");
        let values: Vec<String> = (0..rows)
            .map(|_| {
                id += 1;
                format!(
                    "  ({id}, 'customer {id}', 'note for row {id}; see ticket', {}.{:02})",
                    id % 9973,
                    id % 100
                )
            })
            .collect();
        sql.push_str(&values.join(",\n"));
        sql.push_str(";\n");
    }
    sql
}

/// Runs `backstop ARGS` in the project: what it did, and the largest
/// resident size its own program reached, in bytes. Read from its
/// `VmHWM` while it runs: the peak `wait4` or `getrusage` report for a
/// child counts the memory of the process that started it, which here
/// is this test binary with its 50 MB of SQL.
fn measured(p: &Project, args: &[&str]) -> (Run, u64) {
    let child = p
        .std_cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backstop runs");
    // `spawn` returns once the program is exec'd: from here on the
    // process's memory is backstop's own.
    let status = format!("/proc/{}/status", child.id());
    let watcher = std::thread::spawn(move || {
        let mut peak = 0u64;
        // Until the process has exited (a zombie has no VmHWM) or is reaped.
        while let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().to_string();
            line.trim_end_matches("kB").trim().parse::<u64>().ok()
        }) {
            peak = peak.max(kb * 1024);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let run = Run::from_output(child.wait_with_output().expect("backstop runs"));
    (run, watcher.join().unwrap())
}

/// `check --offline` and `migrate` of `sql` each peak under 6 times its size.
fn stays_within_6_times(label: &str, sql: &str) {
    let p = Project::new(label);
    p.migration("20260101000000_customers", sql, Some("DROP TABLE customers;\n"));
    let size = sql.len() as u64;
    let limit = 6 * size;
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);

    let (run, check) = measured(&p, &["check", "--offline"]);
    run.expect_code(0).expect_output("GO");
    let (run, migrate) = measured(&p, &["migrate"]);
    run.expect_code(0);
    let rows: i64 = p.client().query_one("SELECT count(*) FROM customers", &[]).unwrap().get(0);
    assert!(rows > 100_000, "the data migration ran: {rows} rows");
    eprintln!(
        "{label}: file {:.0} MB; peak: check {:.0} MB ({:.1}x), migrate {:.0} MB ({:.1}x)",
        mb(size),
        mb(check),
        check as f64 / size as f64,
        mb(migrate),
        migrate as f64 / size as f64
    );
    assert!(check < limit, "check --offline peaked at {:.0} MB for {:.0} MB", mb(check), mb(size));
    assert!(migrate < limit, "migrate peaked at {:.0} MB for {:.0} MB", mb(migrate), mb(size));
}

#[test]
fn check_and_migrate_of_a_20_mb_data_migration_stay_within_6_times_its_size() {
    stays_within_6_times("memory", &data_migration(20 << 20, 500));
}

/// Regression: a 50 MB data migration of 5,697 statements (long INSERT ...
/// VALUES) peaked at 572 MB in `migrate` and `check`: every token of every
/// row was held for the rules, and the text was copied for the check.
#[test]
fn a_50_mb_data_migration_of_5697_statements_stays_within_6_times_its_size() {
    // 50 MB in 5,697 statements of 123 rows each, as reported.
    let sql = data_migration((50 << 20) + (4 << 10), 123);
    assert_eq!(sql.matches(";\n").count(), 5697, "the shape of the reported file");
    stays_within_6_times("memory_50mb", &sql);
}
