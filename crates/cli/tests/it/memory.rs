//! A large data migration costs memory in proportion to its text: `check`
//! and `migrate` of a 20 MB file of INSERTs stay within a few times its
//! size (they took 56 times, holding every parse tree at once). Its own test
//! binary, so that the peak of this process's children is only these runs.

use crate::common::Project;
use nix::sys::resource::{getrusage, UsageWho};

/// About `bytes` of multi-row INSERTs, as a data migration or a seed dump writes them.
fn data_migration(bytes: usize) -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, note text, \
         amount numeric(12,2));\n",
    );
    let mut id = 0u64;
    while sql.len() < bytes {
        sql.push_str("INSERT INTO customers (id, name, note, amount) VALUES\n");
        let rows: Vec<String> = (0..500)
            .map(|_| {
                id += 1;
                format!(
                    "  ({id}, 'customer {id}', 'note for row {id}; see ticket', {}.{:02})",
                    id % 9973,
                    id % 100
                )
            })
            .collect();
        sql.push_str(&rows.join(",\n"));
        sql.push_str(";\n");
    }
    sql
}

/// Largest resident size, in bytes, of any child this process has waited for.
fn peak_of_children() -> u64 {
    // ru_maxrss is in kilobytes on Linux.
    getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() as u64 * 1024
}

#[test]
fn check_and_migrate_of_a_20_mb_data_migration_stay_within_a_few_times_its_size() {
    let p = Project::new("memory");
    let sql = data_migration(20 << 20);
    p.migration("20260101000000_customers", &sql, Some("DROP TABLE customers;\n"));
    let size = sql.len() as u64;
    let limit = 8 * size;

    p.run(&["check", "--offline"]).expect_code(0).expect_output("GO");
    let check = peak_of_children();
    assert!(
        check < limit,
        "check --offline peaked at {} MB for a {} MB file",
        check >> 20,
        size >> 20
    );

    p.run(&["migrate"]).expect_code(0);
    let rows: i64 = p.client().query_one("SELECT count(*) FROM customers", &[]).unwrap().get(0);
    assert!(rows > 100_000, "the data migration ran: {rows} rows");
    let migrate = peak_of_children();
    assert!(migrate < limit, "migrate peaked at {} MB for a {} MB file", migrate >> 20, size >> 20);
    eprintln!(
        "peak: check {} MB, migrate {} MB, file {} MB",
        check >> 20,
        migrate >> 20,
        size >> 20
    );
}
