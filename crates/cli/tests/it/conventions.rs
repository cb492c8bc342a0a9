//! What people expect of a command-line tool, checked on the real binary
//! with no database: `init` keeping Backstop's local files out of git.

use std::path::Path;

use crate::common::{backstop_bin, program, run_program, Run};

/// `backstop ARGS` in `dir`, with no config or database from outside.
fn backstop(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(backstop_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("BACKSTOP_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .expect("backstop runs");
    Run::from_output(out)
}

fn gitignore(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".gitignore")).expect("init leaves a .gitignore")
}

#[test]
fn init_writes_backstop_into_gitignore_once_across_two_runs_and_keeps_the_projects_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The project's own lines, the last without its newline.
    std::fs::write(dir.join(".gitignore"), "node_modules/\n# logs\n*.log").unwrap();

    backstop(dir, &["init"]).expect_code(0).expect_output("added `.backstop/` to ./.gitignore");
    let once = gitignore(dir);
    assert!(once.starts_with("node_modules/\n# logs\n*.log\n"), "{once:?}");
    assert_eq!(once.lines().filter(|l| *l == ".backstop/").count(), 1, "{once:?}");

    // A second init refuses (the config exists) and touches nothing.
    backstop(dir, &["init"]).expect_code(2).expect_output("already exists");
    assert_eq!(gitignore(dir), once);

    // Starting over, as that refusal says: the line is not added again.
    std::fs::remove_file(dir.join("backstop.toml")).unwrap();
    backstop(dir, &["init"])
        .expect_code(0)
        .expect_output("./.gitignore already ignores `.backstop/`");
    assert_eq!(gitignore(dir), once);
}

#[test]
fn init_creates_a_gitignore_that_git_obeys_for_every_local_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    backstop(dir, &["init"]).expect_code(0).expect_output("wrote ./.gitignore with `.backstop/`");
    assert_eq!(gitignore(dir).lines().filter(|l| *l == ".backstop/").count(), 1);
    let Some(git) = program("git", "the system's packages (apt-get install git)") else {
        return;
    };
    run_program(std::process::Command::new(&git).args(["init", "-q"]).current_dir(dir));
    // The default places of backups, exports, rehearsal reports and proofs.
    for file in [
        ".backstop/backups/20260107T120000Z-beef/manifest.json",
        ".backstop/exports/2026-01-07T12:00:00Z/users.csv",
        ".backstop/rehearsals/2026-01-07-x.md",
        ".backstop/proofs.json",
    ] {
        let ignored = std::process::Command::new(&git)
            .args(["check-ignore", "-q", file])
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(ignored.success(), "git does not ignore {file}");
    }
    for kept in ["backstop.toml", "migrations/1_a/up.sql"] {
        let ignored = std::process::Command::new(&git)
            .args(["check-ignore", "-q", kept])
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(!ignored.success(), "git ignores {kept}, which the project keeps");
    }
}
