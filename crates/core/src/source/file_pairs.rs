//! File pairs: `VERSION_name.up.sql` with `VERSION_name.down.sql`, as sqlx
//! and golang-migrate write them, and sqlx's plain `VERSION_name.sql`.
//! Both tools parse the version as an integer and order by it. sqlx wraps
//! each file in a transaction unless its first line is `-- no-transaction`;
//! golang-migrate never does, so the author's own `BEGIN` … `COMMIT` count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    entries, file_name, numeric_order, real_dir, split_stem, Discovered, Found, Ignored, Layout,
    PartSource, SourceError,
};

/// sqlx's marker for a migration that runs outside a transaction.
const SQLX_NO_TRANSACTION: &str = "-- no-transaction";

pub(super) fn discover(dir: &Path, layout: Layout) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    // By stem: (up, down).
    let mut pairs: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for path in entries(dir)? {
        let name = file_name(&path).to_string();
        let Some(base) = name.strip_suffix(".sql").filter(|_| !real_dir(&path)) else {
            out.ignored.push(Ignored { path, why: format!("not a {layout} migration file") });
            continue;
        };
        let (stem, down) = match (base.strip_suffix(".up"), base.strip_suffix(".down")) {
            (Some(stem), _) => (stem, false),
            (_, Some(stem)) => (stem, true),
            // A plain VERSION_name.sql is a migration without a down for
            // sqlx; golang-migrate only reads .up and .down files.
            _ if layout == Layout::Sqlx => (base, false),
            _ => {
                out.ignored.push(Ignored {
                    path,
                    why: "golang-migrate reads only VERSION_name.up.sql and .down.sql".into(),
                });
                continue;
            }
        };
        if split_stem(stem).is_none() {
            out.ignored.push(Ignored {
                path,
                why: "no VERSION_ at the start of its name: not a migration".into(),
            });
            continue;
        }
        let slot = pairs.entry(stem.to_string()).or_default();
        if down {
            slot.1 = Some(path);
        } else {
            slot.0 = Some(path);
        }
    }
    for (stem, (up, down)) in pairs {
        let (version, name) = split_stem(&stem).expect("checked when collected");
        let Some(up) = up else {
            let path = down.expect("a pair has at least one file");
            out.ignored.push(Ignored {
                path,
                why: format!("a down without its up; add {stem}.up.sql or remove it"),
            });
            continue;
        };
        let tool_version = version.trim_start_matches('0');
        let tool_version = if tool_version.is_empty() { "0" } else { tool_version };
        let mut found =
            Found::new(version.clone(), tool_version.to_string(), name, part(up, layout));
        found.down = down.map(|d| part(d, layout));
        out.migrations.push(found);
    }
    out.migrations.sort_by(|a, b| {
        numeric_order(&a.tool_version, &b.tool_version).then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

fn part(path: PathBuf, layout: Layout) -> PartSource {
    // Read here once; a file that cannot be read is reported when parsed.
    let text = std::fs::read_to_string(&path).ok();
    let no_transaction = layout == Layout::Sqlx
        && text.as_deref().is_some_and(|t| t.starts_with(SQLX_NO_TRANSACTION));
    PartSource { path, text, no_transaction }
}
