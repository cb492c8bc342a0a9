//! A golang-migrate project's history: `migrations/NNNNNN_name.up.sql`
//! and `.down.sql` pairs, a Go module that requires the tool, and the
//! shapes of `history.rs` with its planted downs (in every block of 40,
//! one down that forgets what its up added, one that fails, one after
//! which the up fails again, three whose differences are cosmetic): about
//! 8 % of the authored downs are wrong, as in the long histories teams
//! keep and never roll back through. Every tenth file wraps itself in its
//! own `BEGIN` … `COMMIT`, as golang-migrate authors write (the tool runs
//! no transaction of its own). Deterministic.

use std::path::{Path, PathBuf};

/// The module that says the project runs golang-migrate.
const GO_MOD: &str = "module example.com/shop\n\ngo 1.22\n\n\
                      require github.com/golang-migrate/migrate/v4 v4.17.1\n";

/// Writes `n` pairs under `project/migrations` with `go.mod` at the root;
/// returns the up files, in order.
pub fn write(project: &Path, n: usize) -> Vec<PathBuf> {
    let dir = project.join("migrations");
    std::fs::create_dir_all(&dir).expect("the folder is made");
    std::fs::write(project.join("go.mod"), GO_MOD).expect("go.mod is written");
    (0..n)
        .map(|i| {
            let (up, down, _) = super::history::planted(i);
            let (up, down) = if i % 10 == 5 {
                (format!("BEGIN;\n{up}\nCOMMIT;\n"), format!("BEGIN;\n{down}\nCOMMIT;\n"))
            } else {
                (up, down)
            };
            let stem = format!("{:06}_m{i}", i + 1);
            let up_file = dir.join(format!("{stem}.up.sql"));
            std::fs::write(&up_file, up).expect("the up is written");
            std::fs::write(dir.join(format!("{stem}.down.sql")), down)
                .expect("the down is written");
            up_file
        })
        .collect()
}

/// Writes one more pair after the `n` of [`write`], with its authored
/// down; returns its up file.
pub fn more(project: &Path, n: usize) -> PathBuf {
    let dir = project.join("migrations");
    let stem = format!("{:06}_deploy_notes", n + 1);
    let up = dir.join(format!("{stem}.up.sql"));
    std::fs::write(
        &up,
        "ALTER TABLE t0 ADD COLUMN deploy_note text;\nCREATE INDEX t0_deploy_note_idx ON t0 (deploy_note);\n",
    )
    .expect("the up is written");
    std::fs::write(
        dir.join(format!("{stem}.down.sql")),
        "DROP INDEX t0_deploy_note_idx;\nALTER TABLE t0 DROP COLUMN deploy_note;\n",
    )
    .expect("the down is written");
    up
}
