//! What people expect of a command-line tool, checked on the real binary
//! with no database: shell completions and man pages generated from the
//! parser itself, the top-level words in noun groups with the old words
//! still answering, and `init` keeping Backstop's local files out of git.

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

#[test]
fn bash_completions_complete_the_commands_of_the_real_parser() {
    let tmp = tempfile::tempdir().unwrap();
    let run = backstop(tmp.path(), &["completions", "bash"]);
    run.expect_code(0);
    for needle in ["_backstop()", "rehearse", "rollback", "completions", "--database-url"] {
        assert!(run.stdout.contains(needle), "the script lacks {needle:?}");
    }
    let Some(bash) = program("bash", "the system's packages") else { return };
    let script = tmp.path().join("backstop.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    // What bash offers after `backstop re<TAB>` and `backstop completions <TAB>`.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _backstop backstop '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = run_program(std::process::Command::new(&bash).args(["--norc", "-c", &probe]));
        let mut offered: Vec<String> = out.lines().map(str::to_string).collect();
        offered.sort();
        offered
    };
    // The old words answer but are not offered; their groups offer them.
    assert_eq!(complete("backstop re"), ["rehearse", "respond"]);
    assert_eq!(complete("backstop backup re"), ["restore"]);
    // The shells, beside the options (bash offers both on an empty word).
    let shells: Vec<String> =
        complete("backstop completions ").into_iter().filter(|w| !w.starts_with('-')).collect();
    assert_eq!(shells, ["bash", "elvish", "fish", "powershell", "zsh"]);
}

#[test]
fn every_shell_gets_a_script_and_an_unknown_shell_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let run = backstop(tmp.path(), &["completions", shell]);
        run.expect_code(0);
        assert!(run.stdout.contains("rehearse"), "{shell}: the script lacks rehearse");
    }
    let run = backstop(tmp.path(), &["completions", "nosuch"]);
    run.expect_code(2)
        .expect_output("invalid value 'nosuch'")
        .expect_output("[possible values: bash, elvish, fish, powershell, zsh]");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn man_prints_backstops_page_in_roff() {
    let tmp = tempfile::tempdir().unwrap();
    let run = backstop(tmp.path(), &["man"]);
    run.expect_code(0);
    // Only roff requests (string definitions) come before the title.
    let mut lines = run.stdout.lines();
    let title = lines.by_ref().find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
    let title = title.unwrap_or_default();
    assert!(title.starts_with(".TH backstop 1 "), "first line after the definitions: {title:?}");
    assert!(run.stdout.starts_with('.'), "not roff: {:?}", &run.stdout[..80.min(run.stdout.len())]);
    for needle in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS", "backstop\\-rehearse(1)"] {
        assert!(run.stdout.contains(needle), "the page lacks {needle:?}");
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("share/man/man1");
    let run = backstop(tmp.path(), &["man", "--dir", out.to_str().unwrap()]);
    run.expect_code(0);
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for page in [
        "backstop.1",
        "backstop-migrate.1",
        "backstop-rehearse.1",
        "backstop-flags-list.1",
        "backstop-backup-restore.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} missing from {pages:?}");
        let text = std::fs::read_to_string(out.join(page)).unwrap();
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!("\n.TH {name} 1 ")), "{page} is titled otherwise");
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "clap's help got a page: {pages:?}");
    // An old word kept as an alias has no page of its own.
    assert!(!pages.iter().any(|p| p == "backstop-restore.1"), "{pages:?}");
    run.expect_output(&format!("wrote {} man pages to ", pages.len()));
}

/// The top-level words `backstop --help` lists, without clap's `help`.
fn top_words(help: &str) -> Vec<String> {
    let listing = help.split("Commands:").nth(1).expect("a Commands: section");
    let listing = listing.split("Options:").next().unwrap_or_default();
    listing
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect()
}

/// What a command's `--help` says after its usage line: its arguments
/// and options.
fn arguments_of(help: &str) -> String {
    let at = help.find("\nArguments:").or_else(|| help.find("\nOptions:"));
    help[at.expect("arguments or options in the help")..].to_string()
}

#[test]
fn the_top_level_words_are_noun_groups_and_every_old_word_still_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = backstop(tmp.path(), &["--help"]);
    run.expect_code(0);
    let words = top_words(&run.stdout);
    assert!(words.len() <= 18, "{} top-level words: {words:?}", words.len());
    for group in ["backup", "flags", "respond", "data", "history"] {
        assert!(words.iter().any(|w| w == group), "no {group} among {words:?}");
    }
    let old = [
        ("decide", "respond decide"),
        ("watch", "respond watch"),
        ("incident", "respond incident"),
        ("compare", "data compare"),
        ("clear", "data clear"),
        ("sync", "data sync"),
        ("adopt", "history adopt"),
        ("repair", "history repair"),
        ("restore", "backup restore"),
        ("freeze", "backup freeze"),
        ("unfreeze", "backup unfreeze"),
        ("drill", "backup drill"),
        ("serve", "flags serve"),
    ];
    for (word, now) in old {
        assert!(!words.iter().any(|w| w == word), "the old word {word} is still listed");
        let by_old = backstop(tmp.path(), &[word, "--help"]);
        by_old.expect_code(0);
        let mut new_args: Vec<&str> = now.split(' ').collect();
        new_args.push("--help");
        let by_new = backstop(tmp.path(), &new_args);
        by_new.expect_code(0);
        assert!(by_old.stdout.contains(&format!("`backstop {now}`")), "{word}: {}", by_old.stdout);
        assert_eq!(
            arguments_of(&by_old.stdout),
            arguments_of(&by_new.stdout),
            "`backstop {word}` takes other arguments than `backstop {now}`"
        );
        // A usage error answers alike by either name.
        let wrong_old = backstop(tmp.path(), &[word, "--no-such-option"]);
        wrong_old.expect_code(2).expect_output("--no-such-option");
    }
    // Hidden, not gone: the man page still answers.
    backstop(tmp.path(), &["man"]).expect_code(0);
    // Run on a terminal (util-linux's `script` gives it one), an old word
    // says its new form; a script's output (no terminal) has no such line.
    let by_script = backstop(tmp.path(), &["decide", "--samples", "none.json"]);
    assert!(!by_script.stderr.contains("is now"), "{}", by_script.stderr);
    let Some(script) = program("script", "Debian's util-linux (bsdutils)") else { return };
    let line = format!("{} decide --samples none.json", backstop_bin().display());
    let out = std::process::Command::new(script)
        .args(["-qec", &line, "/dev/null"])
        .current_dir(tmp.path())
        .env_remove("BACKSTOP_CONFIG")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("note: `backstop decide` is now `backstop respond decide`"),
        "on a terminal: {said}"
    );
}
