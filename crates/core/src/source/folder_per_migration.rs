//! The backstop/diesel layout: one folder per migration,
//! `VERSION_name/{up,down,verify}.sql`, with diesel's optional
//! `metadata.toml` (`run_in_transaction = false`). Versions order as diesel
//! orders them: the part before the first `_` with its dashes removed,
//! compared as text, so `20170318181441`, `2017-08-31-230457` and
//! `2026-07-30-140000-0000` fall in date order; short plain numbers in
//! numeric order.

use std::path::Path;

use super::{entries, file_name, present, Discovered, Found, Ignored, PartSource, SourceError};

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    for path in entries(dir)? {
        let folder = file_name(&path).to_string();
        if !path.is_dir() {
            out.ignored.push(Ignored {
                path,
                why: "a file beside the migration folders (diesel ignores those too)".into(),
            });
            continue;
        }
        let up = path.join("up.sql");
        // Present, even as a symlink that leads nowhere: reported when read.
        if !present(&up) {
            out.ignored.push(Ignored {
                path,
                why: "a folder without up.sql; add one if it is a migration".into(),
            });
            continue;
        }
        let version = folder.split('_').next().unwrap_or_default().to_string();
        let name = folder.split_once('_').map_or(folder.as_str(), |(_, n)| n).to_string();
        let no_transaction = !runs_in_transaction(&path.join("metadata.toml"));
        let part = |file: &str| {
            let p = path.join(file);
            present(&p).then_some(PartSource { path: p, text: None, no_transaction })
        };
        let mut found = Found::new(
            version.clone(),
            version.replace('-', ""),
            name,
            PartSource { path: up.clone(), text: None, no_transaction },
        );
        found.down = part("down.sql");
        found.verify = part("verify.sql").map(|mut v| {
            v.no_transaction = false;
            v
        });
        out.migrations.push(found);
    }
    out.migrations.sort_by(|a, b| {
        order_key(&a.tool_version).cmp(&order_key(&b.tool_version)).then(a.name.cmp(&b.name))
    });
    Ok(out)
}

/// diesel compares versions as text, once their dashes are removed, which
/// keeps timestamps of every format in date order. Plain numbers shorter
/// than a timestamp (`1_init`, …, `10_more`) are taken in numeric order,
/// which is what their authors mean (as text, `10` would come before `9`).
fn order_key(version: &str) -> (u8, String) {
    if version.len() < 14 && !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
        (0, format!("{version:0>14}"))
    } else {
        (1, version.to_string())
    }
}

/// diesel's `metadata.toml`: `run_in_transaction = false` runs the
/// migration outside a transaction. A file that does not parse is ignored,
/// as diesel ignores it.
fn runs_in_transaction(path: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Metadata {
        run_in_transaction: Option<bool>,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return true;
    };
    toml::from_str::<Metadata>(&text).ok().and_then(|m| m.run_in_transaction).unwrap_or(true)
}
