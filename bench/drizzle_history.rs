//! A drizzle history shaped like the long public ones: files named
//! `NNNN_<name>.sql` with `--> statement-breakpoint` between statements,
//! the order and identity in `meta/_journal.json`, drizzle-kit's quoted
//! DDL, the author's `COMMIT` before the `CREATE INDEX CONCURRENTLY` that
//! must run outside drizzle's transaction, labels added to enums that
//! partial indexes compare, table and index storage parameters, views,
//! foreign keys, renames (half of them in a DO block that EXECUTEs a
//! constant). Shared by the test that runs it and the
//! benchmark that times it.

use std::fmt::Write as _;
use std::path::Path;

/// Migrations in a block; one block per table.
pub const PER_BLOCK: usize = 10;

/// Tag and statements of each migration of block `b`.
pub fn block(b: usize) -> Vec<(String, Vec<String>)> {
    let t = format!("events_{b}");
    let kind = format!("kind_{b}");
    let fk = if b == 0 {
        vec![format!("ALTER TABLE \"{t}\" ADD COLUMN \"score\" integer DEFAULT 0")]
    } else {
        vec![format!(
            "ALTER TABLE \"{t}\" ADD CONSTRAINT \"{t}_owner_{}_fk\" FOREIGN KEY (\"owner\") REFERENCES \
             \"public\".\"events_{}\"(\"id\") ON DELETE set null ON UPDATE no action",
            b - 1,
            b - 1
        )]
    };
    vec![
        (
            format!("create_{t}"),
            vec![
                format!("CREATE TYPE \"public\".\"{kind}\" AS ENUM('a', 'b')"),
                format!(
                    "CREATE TABLE \"{t}\" (\n\t\"id\" serial PRIMARY KEY NOT NULL,\n\t\"kind\" \"{kind}\" DEFAULT 'a' NOT NULL,\n\t\
                     \"owner\" integer,\n\t\"body\" text,\n\t\"legacy\" text,\n\t\"created_at\" timestamp DEFAULT now() NOT NULL\n)"
                ),
            ],
        ),
        // A partial index that compares the column with a label.
        (
            format!("{t}_kind_a_index"),
            vec![format!(
                "CREATE INDEX \"{t}_a_idx\" ON \"{t}\" USING btree (\"id\") WHERE \"{t}\".\"kind\" = 'a'"
            )],
        ),
        // A label added to the enum the partial index compares.
        (format!("{kind}_add_c"), vec![format!("ALTER TYPE \"public\".\"{kind}\" ADD VALUE 'c'")]),
        // The author ends drizzle's transaction for the concurrent index.
        (
            format!("{t}_tag_index"),
            vec![
                format!("ALTER TABLE \"{t}\" ADD COLUMN \"tag\" text"),
                "COMMIT".to_string(),
                format!("CREATE INDEX CONCURRENTLY \"{t}_tag_idx\" ON \"{t}\" USING btree (\"tag\")"),
            ],
        ),
        (
            format!("{t}_autovacuum"),
            vec![format!(
                "ALTER TABLE \"{t}\" SET (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 90)"
            )],
        ),
        (format!("{t}_owner"), fk),
        (
            format!("recent_{b}_view"),
            vec![format!(
                "CREATE VIEW \"public\".\"recent_{b}\" AS (select \"id\", \"kind\" from \"{t}\" where \"{t}\".\"created_at\" > now() - interval '7 days')"
            )],
        ),
        (format!("{t}_rename_body"), vec![rename_body(b, &t)]),
        (format!("{t}_drop_legacy"), vec![format!("ALTER TABLE \"{t}\" DROP COLUMN \"legacy\"")]),
        (
            format!("{t}_owner_index"),
            vec![format!(
                "CREATE INDEX \"{t}_owner_idx\" ON \"{t}\" USING btree (\"owner\") WITH (fillfactor=70)"
            )],
        ),
    ]
}

/// The rename of `body`; in every other block guarded, as hand-edited
/// drizzle histories often do it, by a DO block whose EXECUTE is a
/// constant (run again where the column was already renamed by hand).
fn rename_body(b: usize, t: &str) -> String {
    let rename = format!("ALTER TABLE \"{t}\" RENAME COLUMN \"body\" TO \"content\"");
    if b.is_multiple_of(2) {
        return rename;
    }
    format!(
        "DO $$ BEGIN\n  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = '{t}' \
         AND column_name = 'body') THEN\n    EXECUTE '{}';\n  END IF;\nEND $$",
        rename.replace('\'', "''")
    )
}

/// drizzle-kit's journal of the first `n` of `tags`.
pub fn journal(tags: &[String], n: usize) -> String {
    let mut entries = String::new();
    for (i, tag) in tags.iter().take(n).enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let when = 1_672_531_200_000u64 + i as u64 * 60_000;
        let _ = write!(
            entries,
            "{comma}\n    {{\n      \"idx\": {i},\n      \"version\": \"7\",\n      \"when\": {when},\n      \
             \"tag\": \"{tag}\",\n      \"breakpoints\": true\n    }}"
        );
    }
    format!("{{\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\",\n  \"entries\": [{entries}\n  ]\n}}\n")
}

/// Writes `blocks` blocks of migrations into `dir` (drizzle's output
/// folder) with a journal of the first `listed` of them (all when
/// `None`); returns every tag in order.
pub fn write(dir: &Path, blocks: usize, listed: Option<usize>) -> Vec<String> {
    std::fs::create_dir_all(dir.join("meta")).expect("the drizzle folder is made");
    let mut tags = Vec::with_capacity(blocks * PER_BLOCK);
    for b in 0..blocks {
        for (name, stmts) in block(b) {
            let tag = format!("{:04}_{name}", tags.len());
            let text = format!("{};", stmts.join(";--> statement-breakpoint\n"));
            std::fs::write(dir.join(format!("{tag}.sql")), text).expect("a migration is written");
            tags.push(tag);
        }
    }
    let n = listed.unwrap_or(tags.len());
    std::fs::write(dir.join("meta").join("_journal.json"), journal(&tags, n))
        .expect("the journal is written");
    tags
}
