//! A Prisma history shaped like the long public ones: folders named
//! `<timestamp>_<name>` (two sharing a timestamp in every block, as a
//! squash or a merge leaves them), Prisma's quoted DDL with its comments,
//! the author's own `BEGIN` … `COMMIT`, `ALTER TYPE … ADD VALUE` then
//! `COMMIT` before the statement that uses the value, one-statement
//! `CREATE INDEX CONCURRENTLY` scripts, Prisma's enum swap, work tables by
//! `SELECT … INTO`, a type change with `USING`, foreign servers of
//! `postgres_fdw`, and renames. Shared by the test that runs it and the
//! benchmark that times it.

use std::path::Path;

/// Migrations in a block; one block per table.
pub const PER_BLOCK: usize = 10;

/// Prisma's folder timestamp of step `i`: one minute apart from the
/// start of 2023 (within January for any history under 40,000 steps).
pub fn stamp(i: usize) -> String {
    let (minute, hour, day) = (i % 60, (i / 60) % 24, 1 + i / 1440);
    format!("202301{day:02}{hour:02}{minute:02}00")
}

/// Whether the migration in `folder` changes rows no SQL can put back
/// (its `UPDATE` of the scored items): its down is `irreversible`.
pub fn is_data_change(folder: &str) -> bool {
    folder.contains("_score_work_")
}

/// Folder name and script of each migration of block `b`.
pub fn block(b: usize) -> Vec<(String, String)> {
    let i = |k: usize| stamp(b * PER_BLOCK + k);
    let item = format!("Item_{b}");
    let tag = format!("Tag_{b}");
    let status = format!("ItemStatus_{b}");
    let priority = format!("Priority_{b}");
    let owner_fk = if b == 0 {
        String::new()
    } else {
        format!(
            "\n\n-- AddForeignKey\nALTER TABLE \"{item}\" ADD CONSTRAINT \"{item}_ownerId_fkey\" \
             FOREIGN KEY (\"ownerId\") REFERENCES \"Item_{}\"(\"id\") ON DELETE SET NULL ON UPDATE CASCADE;",
            b - 1
        )
    };
    // The last migration of a block: a foreign server every tenth block,
    // a rename otherwise.
    let last = if b.is_multiple_of(10) {
        (
            format!("{}_report_server_{b}", i(9)),
            format!(
                "-- Reports live in another database.\nCREATE EXTENSION IF NOT EXISTS postgres_fdw;\n\n\
                 CREATE SERVER \"reports_{b}\" FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost', dbname 'reports');\n\n\
                 CREATE USER MAPPING FOR CURRENT_USER SERVER \"reports_{b}\" OPTIONS (user 'reporter');\n"
            ),
        )
    } else {
        (
            format!("{}_rename_tag_label_{b}", i(9)),
            format!(
                "-- RenameColumn\nALTER TABLE \"{tag}\" RENAME COLUMN \"label\" TO \"title\";\n"
            ),
        )
    };
    vec![
        (
            format!("{}_create_item_{b}", i(0)),
            format!(
                "-- CreateEnum\nCREATE TYPE \"{status}\" AS ENUM ('DRAFT', 'LIVE');\n\n\
                 -- CreateTable\nCREATE TABLE \"{item}\" (\n    \"id\" SERIAL NOT NULL,\n    \"name\" TEXT NOT NULL,\n    \
                 \"status\" \"{status}\" NOT NULL DEFAULT 'DRAFT',\n    \"payload\" TEXT,\n    \"ownerId\" INTEGER,\n\n    \
                 CONSTRAINT \"{item}_pkey\" PRIMARY KEY (\"id\")\n);{owner_fk}\n"
            ),
        ),
        // Two folders sharing a timestamp: Prisma keys them by name.
        (
            format!("{}_add_tags_{b}", i(1)),
            format!(
                "-- CreateEnum\nCREATE TYPE \"{priority}\" AS ENUM ('LOW', 'MEDIUM', 'HIGH', 'URGENT');\n\n\
                 -- CreateTable\nCREATE TABLE \"{tag}\" (\n    \"id\" SERIAL NOT NULL,\n    \"label\" TEXT NOT NULL,\n    \
                 \"priority\" \"{priority}\" NOT NULL DEFAULT 'LOW',\n\n    CONSTRAINT \"{tag}_pkey\" PRIMARY KEY (\"id\")\n);\n\n\
                 -- CreateIndex\nCREATE UNIQUE INDEX \"{tag}_label_key\" ON \"{tag}\"(\"label\");\n"
            ),
        ),
        (
            format!("{}_add_notes_{b}", i(1)),
            format!("-- AlterTable\nALTER TABLE \"{item}\" ADD COLUMN     \"notes\" TEXT;\n"),
        ),
        // The author's transaction around the whole script.
        (
            format!("{}_add_score_{b}", i(3)),
            format!(
                "BEGIN;\n\n-- AlterTable\nALTER TABLE \"{item}\" ADD COLUMN     \"score\" INTEGER NOT NULL DEFAULT 0;\n\n\
                 -- CreateIndex\nCREATE INDEX \"{item}_score_idx\" ON \"{item}\"(\"score\");\n\nCOMMIT;\n"
            ),
        ),
        // A new value committed before the statement that uses it.
        (
            format!("{}_archive_status_{b}", i(4)),
            format!(
                "-- AlterEnum\nALTER TYPE \"{status}\" ADD VALUE 'ARCHIVED';\nCOMMIT;\n\n\
                 -- CreateIndex\nCREATE INDEX \"{item}_archived_idx\" ON \"{item}\"(\"id\") WHERE \"status\" = 'ARCHIVED';\n"
            ),
        ),
        // Prisma runs a one-statement script alone.
        (
            format!("{}_name_index_{b}", i(5)),
            format!("-- CreateIndex\nCREATE INDEX CONCURRENTLY \"{item}_name_idx\" ON \"{item}\"(\"name\");\n"),
        ),
        // Prisma's own way to remove an enum value.
        (
            format!("{}_drop_urgent_{b}", i(6)),
            format!(
                "-- AlterEnum\nBEGIN;\nCREATE TYPE \"{priority}_new\" AS ENUM ('LOW', 'MEDIUM', 'HIGH');\n\
                 ALTER TABLE \"{tag}\" ALTER COLUMN \"priority\" DROP DEFAULT;\n\
                 ALTER TABLE \"{tag}\" ALTER COLUMN \"priority\" TYPE \"{priority}_new\" USING (\"priority\"::text::\"{priority}_new\");\n\
                 ALTER TYPE \"{priority}\" RENAME TO \"{priority}_old\";\n\
                 ALTER TYPE \"{priority}_new\" RENAME TO \"{priority}\";\n\
                 DROP TYPE \"{priority}_old\";\n\
                 ALTER TABLE \"{tag}\" ALTER COLUMN \"priority\" SET DEFAULT 'LOW';\nCOMMIT;\n"
            ),
        ),
        // A work table made by SELECT … INTO, used and dropped.
        (
            format!("{}_score_work_{b}", i(7)),
            format!(
                "SELECT \"id\", \"name\" INTO \"work_{b}\" FROM \"{item}\" WHERE \"score\" > 0;\n\
                 CREATE INDEX \"work_{b}_id\" ON \"work_{b}\"(\"id\");\n\
                 UPDATE \"{item}\" SET \"notes\" = 'scored' WHERE \"id\" IN (SELECT \"id\" FROM \"work_{b}\");\n\
                 DROP TABLE \"work_{b}\";\n"
            ),
        ),
        (
            format!("{}_payload_json_{b}", i(8)),
            format!(
                "-- AlterTable\nALTER TABLE \"{item}\" ALTER COLUMN \"payload\" SET DATA TYPE JSONB USING \"payload\"::jsonb;\n"
            ),
        ),
        last,
    ]
}

/// Writes `blocks` blocks of migrations into `dir` (Prisma's migrations
/// folder), with its lock file; returns the folder names in Prisma's
/// order.
pub fn write(dir: &Path, blocks: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("the migrations folder is made");
    std::fs::write(dir.join("migration_lock.toml"), "provider = \"postgresql\"\n")
        .expect("the lock file is written");
    let mut names = Vec::with_capacity(blocks * PER_BLOCK);
    for b in 0..blocks {
        for (name, sql) in block(b) {
            let folder = dir.join(&name);
            std::fs::create_dir_all(&folder).expect("a migration folder is made");
            std::fs::write(folder.join("migration.sql"), sql).expect("a migration is written");
            names.push(name);
        }
    }
    names.sort();
    names
}
