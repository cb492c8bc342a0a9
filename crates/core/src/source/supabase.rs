//! The Supabase CLI's layout: `supabase/migrations/<timestamp>_<name>.sql`,
//! one file per migration and no down. The CLI takes every file whose name
//! is digits, `_`, anything, `.sql`, in the order of the names, and runs
//! each in a transaction (it has no option to run one outside). Beside the
//! folder, `supabase/seed.sql`, `supabase/config.toml` and the rest of the
//! project are not migrations; a `.sql` file with another name is skipped
//! by the CLI, which is a finding here (a migration its author meant to
//! run), not a reason to stop.

use std::path::{Path, PathBuf};

use super::{entries, file_name, Discovered, Found, Ignored, PartSource, SourceError, Stray};

/// The version and the name of a migration file, as the CLI reads them.
pub(super) fn parse_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let (version, title) = stem.split_once('_')?;
    let digits = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    digits.then_some((version, title))
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    for path in entries(dir)? {
        let name = file_name(&path).to_string();
        if super::real_dir(&path) {
            out.ignored.push(Ignored {
                path,
                why: "a folder inside supabase/migrations; the Supabase CLI reads only the \
                      files directly in it"
                    .into(),
            });
            continue;
        }
        let Some((version, title)) = parse_name(&name) else {
            if name.to_ascii_lowercase().ends_with(".sql") {
                out.strays.push(Stray {
                    path,
                    line: 1,
                    message: format!(
                        "`{name}` is not named `<timestamp>_<name>.sql`, so the Supabase CLI \
                         skips it and it never runs; rename it (e.g. \
                         `20240101120000_{}.sql`, as `supabase migration new` names files) or \
                         move it out of supabase/migrations",
                        suggested_title(&name)
                    ),
                });
            } else {
                out.ignored.push(Ignored { path, why: "not a .sql file".into() });
            }
            continue;
        };
        let found = Found::new(
            version.to_string(),
            version.to_string(),
            title.to_string(),
            PartSource::file(path.clone()),
        );
        out.migrations.push(found);
    }
    // The CLI applies its files in the order of their names.
    out.migrations.sort_by(|a, b| file_name(&a.up.path).cmp(file_name(&b.up.path)));
    out.ignored.extend(beside(dir));
    Ok(out)
}

/// The name part a file could keep when renamed: its words in snake case.
fn suggested_title(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let words: Vec<String> = stem
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !w.bytes().all(|b| b.is_ascii_digit()))
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if words.is_empty() {
        "name".to_string()
    } else {
        words.join("_")
    }
}

/// The Supabase project's files beside `migrations/`: listed, never read.
fn beside(dir: &Path) -> Vec<Ignored> {
    let Some(project) = dir.parent().filter(|p| file_name(p) == "supabase") else {
        return Vec::new();
    };
    let Ok(paths) = entries(project) else { return Vec::new() };
    paths
        .into_iter()
        .filter(|p| p.as_path() != dir)
        .map(|path: PathBuf| {
            let why = match file_name(&path) {
                "seed.sql" => {
                    "Supabase's seed data (`supabase db reset` loads it), not a migration"
                }
                "config.toml" => "the Supabase CLI's project settings",
                _ => "a Supabase project file beside supabase/migrations",
            };
            Ignored { path, why: why.into() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_the_cli_reads_them() {
        assert_eq!(
            parse_name("20240101120000_add_users.sql"),
            Some(("20240101120000", "add_users"))
        );
        assert_eq!(parse_name("1_x.sql"), Some(("1", "x")));
        assert_eq!(parse_name("20240101120000-add-users.sql"), None);
        assert_eq!(parse_name("add_users.sql"), None);
        assert_eq!(parse_name("20240101120000_add_users.txt"), None);
        assert_eq!(suggested_title("2024-01-01 Add Users.sql"), "add_users");
    }
}
