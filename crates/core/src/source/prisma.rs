//! Prisma Migrate's layout: `prisma/migrations/<timestamp>_<name>/migration.sql`,
//! one folder per migration, no down, with `migration_lock.toml` (the
//! database provider) beside. Prisma takes the folders in the order of
//! their names (`0_init`, as its baselining guide names one, comes first)
//! and records each by its folder name. It sends a migration's script to
//! PostgreSQL as one query: several statements run in one implicit
//! transaction, a single statement alone runs outside one, so a
//! `CREATE INDEX CONCURRENTLY` must be the only statement of its script.

use std::path::Path;

use super::{
    entries, file_name, Discovered, Found, Ignored, Part, PartSource, Problem, ProblemKind,
    SourceError,
};

/// The file of a migration folder that Prisma runs.
pub(super) const SCRIPT: &str = "migration.sql";

/// Prisma's lock file beside the migration folders.
pub(super) const LOCK: &str = "migration_lock.toml";

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    for path in entries(dir)? {
        if path.file_name().and_then(|n| n.to_str()).is_none() {
            out.ignored.push(Ignored {
                path,
                why: "a name that is not UTF-8: Prisma cannot read it as a migration; rename it"
                    .into(),
            });
            continue;
        }
        let folder = file_name(&path).to_string();
        if !path.is_dir() {
            let why = if folder == LOCK {
                "Prisma's lock of the database provider, not a migration"
            } else {
                "a file beside the migration folders (Prisma reads only the folders)"
            };
            out.ignored.push(Ignored { path, why: why.into() });
            continue;
        }
        let (version, name) = match folder.split_once('_') {
            Some((v, n)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                (v.to_string(), n.to_string())
            }
            _ => (folder.clone(), folder.clone()),
        };
        let script = path.join(SCRIPT);
        let mut found = Found::new(version, folder.clone(), name, PartSource::file(script.clone()));
        if !super::present(&script) {
            found.up.text = Some(String::new());
            found.problems.push(Problem {
                part: Part::Up,
                kind: ProblemKind::MissingFile,
                path: path.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "the Prisma migration folder {folder} has no {SCRIPT}; restore it from \
                     version control, or delete the folder if the migration was abandoned \
                     (Prisma refuses the whole folder until then)"
                ),
            });
        }
        for other in entries(&path)?.into_iter().filter(|p| file_name(p) != SCRIPT) {
            out.ignored.push(Ignored {
                path: other,
                why: format!("Prisma runs only the {SCRIPT} of a migration folder"),
            });
        }
        out.migrations.push(found);
    }
    // Prisma applies its folders in the order of their names.
    out.migrations.sort_by(|a, b| a.tool_version.cmp(&b.tool_version));
    key_shared_timestamps(&mut out.migrations);
    Ok(out)
}

/// Prisma keys a migration by its whole folder name, so two folders may
/// share a timestamp (`20240101000000_init`, `20240101000000_tags`): a
/// squashed history or a merge leaves such pairs. Each of those is keyed
/// by its folder name in Backstop's history too; a timestamp no other
/// folder shares stays the key, as it always was.
fn key_shared_timestamps(found: &mut [Found]) {
    let mut count: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for f in found.iter() {
        *count.entry(f.version.clone()).or_default() += 1;
    }
    for f in found.iter_mut().filter(|f| count[&f.version] > 1) {
        f.version = f.tool_version.clone();
        f.name = f.tool_version.clone();
    }
}
