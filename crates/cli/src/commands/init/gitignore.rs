//! Keeping Backstop's local files out of version control: `backstop init`
//! adds `.backstop/` to the project's `.gitignore`, once, and leaves every
//! other line of the file as it was.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use backstop_core::config::LOCAL_DIR;

/// What became of the project's `.gitignore`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// There was none; it was written with the one entry.
    Created(PathBuf),
    /// The entry was appended.
    Added(PathBuf),
    /// A line of the file already ignores the folder.
    AlreadyIgnored(PathBuf),
    /// A line of the file (`!.backstop/`) keeps the folder in version
    /// control: the project chose so, and init does not overrule it.
    KeptByTheProject(PathBuf, String),
}

impl Outcome {
    /// The line `init` prints about it.
    pub fn said(&self) -> String {
        let entry = entry();
        let why = "backups, exports, forensics, rehearsal reports and proofs stay out of git";
        match self {
            Outcome::Created(p) => format!("wrote {} with `{entry}` ({why})", p.display()),
            Outcome::Added(p) => format!("added `{entry}` to {} ({why})", p.display()),
            Outcome::AlreadyIgnored(p) => {
                format!("{} already ignores `{entry}`; left it as it is", p.display())
            }
            Outcome::KeptByTheProject(p, line) => format!(
                "left {} as it is: its line `{line}` keeps `{entry}` in git; what Backstop writes \
                 there ignores itself all the same ({LOCAL_DIR}/.gitignore holds `*`)",
                p.display()
            ),
        }
    }
}

/// Makes Backstop's own folder, which ignores itself whoever makes it
/// (a `.gitignore` of its own holding `*`): what `init` says of it.
pub fn local_folder(dir: &Path) -> anyhow::Result<String> {
    let local = dir.join(LOCAL_DIR);
    std::fs::create_dir_all(&local).with_context(|| format!("creating {}", local.display()))?;
    backstop_core::pg::export::ignored(&local);
    Ok(format!(
        "made {}/ for what Backstop writes in the project (backups, exports, forensics, \
         rehearsal reports, proofs.json): it ignores itself, its .gitignore holds `*` (keep \
         proofs.json as a CI artifact to carry a rehearsal's proofs to the deploy)",
        local.display()
    ))
}

/// The line `init` adds.
fn entry() -> String {
    format!("{LOCAL_DIR}/")
}

/// The comment above the added line, so a reader of the file knows who
/// wrote it and why.
const COMMENT: &str = "# Backstop's local files: backups, exports, rehearsal reports, proofs";

/// Adds the entry to `dir/.gitignore` unless a line already decides it.
pub fn ensure(dir: &Path) -> anyhow::Result<Outcome> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read(&path) {
        Ok(bytes) => Some(String::from_utf8(bytes).with_context(|| {
            format!(
                "reading {}: it is not UTF-8; add the line `{}` yourself",
                path.display(),
                entry()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match plan(text.as_deref()) {
        Plan::Write(new) => {
            std::fs::write(&path, new).with_context(|| {
                format!("writing {}; add the line `{}` yourself", path.display(), entry())
            })?;
            Ok(if text.is_none() { Outcome::Created(path) } else { Outcome::Added(path) })
        }
        Plan::Ignored => Ok(Outcome::AlreadyIgnored(path)),
        Plan::Kept(line) => Ok(Outcome::KeptByTheProject(path, line)),
    }
}

/// What to do with the file's text (`None`: there is no file).
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Write(String),
    Ignored,
    Kept(String),
}

fn plan(text: Option<&str>) -> Plan {
    let text = text.unwrap_or("");
    for line in text.lines() {
        let line = line.trim();
        if names_the_folder(line) {
            return Plan::Ignored;
        }
        if line.strip_prefix('!').is_some_and(names_the_folder) {
            return Plan::Kept(line.to_string());
        }
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut new = text.to_string();
    if !new.is_empty() {
        if !new.ends_with('\n') {
            new.push_str(newline);
        }
        new.push_str(newline);
    }
    new.push_str(COMMENT);
    new.push_str(newline);
    new.push_str(&entry());
    new.push_str(newline);
    Plan::Write(new)
}

/// Whether a `.gitignore` pattern is one of the ways of naming the whole
/// folder (`.backstop`, `/.backstop/`, `.backstop/*`, ...).
fn names_the_folder(pattern: &str) -> bool {
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    let p = p.strip_suffix("/**").or_else(|| p.strip_suffix("/*")).unwrap_or(p);
    let p = p.strip_suffix('/').unwrap_or(p);
    p == LOCAL_DIR
}

#[cfg(test)]
mod tests {
    use super::{plan, Plan};

    fn written(text: Option<&str>) -> String {
        match plan(text) {
            Plan::Write(s) => s,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_gets_the_comment_and_the_entry() {
        assert_eq!(
            written(None),
            "# Backstop's local files: backups, exports, rehearsal reports, proofs\n.backstop/\n"
        );
    }

    #[test]
    fn existing_lines_stay_and_a_missing_last_newline_is_added() {
        let new = written(Some("/target\n*.log"));
        assert!(new.starts_with("/target\n*.log\n\n# Backstop"), "{new:?}");
        assert!(new.ends_with("\n.backstop/\n"), "{new:?}");
    }

    #[test]
    fn a_crlf_file_stays_crlf() {
        let new = written(Some("/target\r\n"));
        assert_eq!(new.matches('\n').count(), new.matches("\r\n").count(), "{new:?}");
    }

    #[test]
    fn every_way_of_naming_the_folder_counts_as_ignored() {
        for line in [
            ".backstop",
            ".backstop/",
            "/.backstop",
            "/.backstop/",
            ".backstop/*",
            "  .backstop/**  ",
        ] {
            assert_eq!(plan(Some(&format!("target\n{line}\n"))), Plan::Ignored, "{line}");
        }
        // A file under it, or another folder of that prefix, is not the folder.
        for line in [".backstop/backups", ".backstopped/", "# .backstop/"] {
            assert!(matches!(plan(Some(line)), Plan::Write(_)), "{line}");
        }
    }

    #[test]
    fn a_negation_is_the_projects_choice_and_stays() {
        assert_eq!(plan(Some("!.backstop/\n")), Plan::Kept("!.backstop/".into()));
    }
}
