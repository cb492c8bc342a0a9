//! From the configuration to a plan: the targets resolved (URLs filled in
//! from the environment, a query's rows read on the control database in
//! a read-only transaction) and dealt to the waves in order, each wave
//! taking from what no earlier wave took. Everything wrong here is bad
//! input, found before anything is written.

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::{RolloutConfig, Source, Take, WaveDecl};
use super::{pattern, RolloutError, Target};

/// One wave of a plan: its settings and the targets it takes, in order.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedWave {
    pub name: String,
    /// Indices into [`Plan::targets`].
    #[serde(skip)]
    pub targets: Vec<usize>,
    /// Their names, for people and programs.
    #[serde(rename = "targets")]
    pub names: Vec<String>,
    pub parallel: usize,
    pub halt_after: usize,
    #[serde(serialize_with = "ms")]
    pub bake: std::time::Duration,
}

fn ms<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The targets and the waves that take them.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    #[serde(serialize_with = "shown")]
    pub targets: Vec<Target>,
    pub waves: Vec<PlannedWave>,
    /// Targets that no wave takes (not part of the rollout).
    pub untaken: Vec<String>,
}

fn shown<S: serde::Serializer>(targets: &[Target], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(targets.len()))?;
    for t in targets {
        seq.serialize_element(&serde_json::json!({
            "name": t.name, "url": t.shown_url(), "kind": t.kind.as_str(),
        }))?;
    }
    seq.end()
}

/// The control database, connected.
pub(super) fn connect(config: &RolloutConfig) -> Result<postgres::Client, RolloutError> {
    let url = control_url(config)?;
    crate::pg::connect(&url, "backstop rollout")
        .map_err(|source| RolloutError::Control { url: crate::pg::redact(&url), source })
}

/// The control database's URL, `${ENV}` filled in.
pub fn control_url(config: &RolloutConfig) -> Result<String, RolloutError> {
    let Some((raw, line)) = config.control() else {
        return Err(RolloutError::NoTargets { path: config.path.clone() });
    };
    filled(config, raw, line, "[rollout] control")
}

fn filled(
    config: &RolloutConfig,
    raw: &str,
    line: usize,
    what: &str,
) -> Result<String, RolloutError> {
    crate::kit::env::from_env(raw).map_err(|e| RolloutError::Input {
        path: config.path.clone(),
        line,
        message: match e {
            crate::kit::env::Interpolation::Missing(var) => {
                format!(
                    "{what} names ${{{var}}}, which is not set in the environment; export {var}"
                )
            }
            crate::kit::env::Interpolation::Unterminated => {
                format!("{what} has an unterminated `${{`; write `${{NAME}}`")
            }
        },
    })
}

/// Every target, in the order declared (a query's in the order of its
/// rows), URLs filled in; `control` runs the queries.
pub fn resolve(
    config: &RolloutConfig,
    control: &mut postgres::Client,
) -> Result<Vec<Target>, RolloutError> {
    let mut out: Vec<Target> = Vec::new();
    // Where each name came from, for "declared twice" messages.
    let mut from: BTreeMap<String, usize> = BTreeMap::new();
    for decl in &config.targets {
        let input = |message: String| RolloutError::Input {
            path: config.path.clone(),
            line: decl.line,
            message,
        };
        let found = match &decl.source {
            Source::Url(raw) => {
                let what = format!("target {:?}: url", decl.name);
                vec![(decl.name.clone(), filled(config, raw, decl.line, &what)?)]
            }
            Source::Query(sql) => rows(control, sql)
                .map_err(|e| {
                    input(format!(
                    "target {:?}: the query failed on the control database: {e}; fix the query \
                     (it returns two text columns, name and url)",
                    decl.name
                ))
                })?
                .into_iter()
                .map(|(name, url)| (decl.name.replace("{name}", &name), url))
                .collect(),
        };
        for (name, url) in found {
            if let Err(e) = crate::pg::conn::parse_url(&url) {
                return Err(input(format!(
                    "target {name:?}: its url is not one PostgreSQL can use ({e})"
                )));
            }
            if let Some(line) = from.get(&name) {
                return Err(input(format!(
                    "two targets are named {name:?} (the other from line {line}); target names must \
                     be unique: fix the query's names or the template"
                )));
            }
            from.insert(name.clone(), decl.line);
            out.push(Target { name, url, kind: decl.kind });
        }
    }
    Ok(out)
}

/// The `(name, url)` rows of `sql`, read-only; why not, in words.
fn rows(control: &mut postgres::Client, sql: &str) -> Result<Vec<(String, String)>, String> {
    let words = |e: postgres::Error| crate::pg::conn::error_chain(&e);
    let mut tx = control.build_transaction().read_only(true).start().map_err(words)?;
    let rows = tx.query(sql, &[]).map_err(words)?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.len() < 2 {
            return Err(format!("it returns {} column(s), not two (name, url)", row.len()));
        }
        let text = |col: usize| -> Result<Option<String>, String> {
            row.try_get::<_, Option<String>>(col).map_err(|_| {
                format!(
                    "its column {} is of type {}, not text; cast it (`select name::text, url::text ...`)",
                    col + 1,
                    row.columns()[col].type_()
                )
            })
        };
        match (text(0)?, text(1)?) {
            (Some(name), Some(url)) if !name.trim().is_empty() => out.push((name, url)),
            _ => return Err(format!("row {} has no name or no url", i + 1)),
        }
    }
    tx.commit().map_err(words)?;
    Ok(out)
}

/// Deals `targets` to the waves in order; a wave that takes nothing is
/// bad input.
pub fn plan(config: &RolloutConfig, targets: Vec<Target>) -> Result<Plan, RolloutError> {
    if config.waves.is_empty() {
        return Err(RolloutError::NoWaves { path: config.path.clone() });
    }
    let mut taken = vec![false; targets.len()];
    let mut waves = Vec::new();
    for w in &config.waves {
        let matching: Vec<usize> = (0..targets.len())
            .filter(|&i| w.patterns.iter().any(|p| pattern::matches(p, &targets[i].name)))
            .collect();
        let free: Vec<usize> = matching.iter().copied().filter(|&i| !taken[i]).collect();
        let n = how_many(w, free.len());
        if n == 0 {
            let why = if matching.is_empty() {
                "no target has a name its patterns match (a query may have returned no row)"
            } else {
                "every target its patterns match went to an earlier wave"
            };
            return Err(RolloutError::Input {
                path: config.path.clone(),
                line: w.line,
                message: format!(
                    "wave {:?} takes no database: {why}; remove the wave or widen its targets",
                    w.name
                ),
            });
        }
        let chosen: Vec<usize> = free.into_iter().take(n).collect();
        for &i in &chosen {
            taken[i] = true;
        }
        waves.push(PlannedWave {
            name: w.name.clone(),
            names: chosen.iter().map(|&i| targets[i].name.clone()).collect(),
            targets: chosen,
            parallel: w.parallel,
            halt_after: w.halt_after,
            bake: w.bake,
        });
    }
    let untaken =
        (0..targets.len()).filter(|&i| !taken[i]).map(|i| targets[i].name.clone()).collect();
    Ok(Plan { targets, waves, untaken })
}

/// How many of `free` databases wave `w` takes.
fn how_many(w: &WaveDecl, free: usize) -> usize {
    match w.take {
        Take::All => free,
        Take::Count(n) => n.min(free),
        Take::Share(p) => {
            ((free as f64 * p / 100.0).ceil() as usize).clamp(1, free.max(1)).min(free)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn targets(names: &[&str]) -> Vec<Target> {
        names
            .iter()
            .map(|n| Target {
                name: n.to_string(),
                url: format!("postgres://u:secret@h/{n}"),
                kind: Default::default(),
            })
            .collect()
    }

    fn config(waves: &str) -> RolloutConfig {
        let text = format!(
            "[rollout]\ncontrol = \"postgres://c\"\n[[targets]]\nname = \"staging\"\nurl = \"postgres://s\"\n[[targets]]\nname = \"tenant-{{name}}\"\nquery = \"q\"\n{waves}"
        );
        Config::parse(&text, Path::new("b.toml")).unwrap().rollout
    }

    fn tenants(n: usize) -> Vec<&'static str> {
        let mut names = vec!["staging"];
        for i in 1..=n {
            names.push(Box::leak(format!("tenant-{i:03}").into_boxed_str()));
        }
        names
    }

    #[test]
    fn waves_take_in_order_what_no_earlier_wave_took() {
        let cfg = config(
            "[[waves]]\nname = \"staging\"\ntargets = [\"staging\"]\n\
             [[waves]]\nname = \"canary\"\ntargets = [\"tenant-*\"]\ncount = 2\n\
             [[waves]]\nname = \"early\"\ntargets = [\"tenant-*\"]\ncount = 20\nparallel = 8\n\
             [[waves]]\nname = \"rest\"\ntargets = [\"tenant-*\"]\nparallel = 8\n",
        );
        let plan = plan(&cfg, targets(&tenants(200))).unwrap();
        let sizes: Vec<usize> = plan.waves.iter().map(|w| w.targets.len()).collect();
        assert_eq!(sizes, [1, 2, 20, 178]);
        assert_eq!(plan.waves[1].names, ["tenant-001", "tenant-002"]);
        assert_eq!(plan.waves[2].names[0], "tenant-003");
        assert!(plan.untaken.is_empty());
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("secret") && json.contains("****"), "{json}");
    }

    #[test]
    fn a_share_is_rounded_up_and_takes_at_least_one() {
        let cfg = config(
            "[[waves]]\nname = \"ten\"\ntargets = [\"tenant-*\"]\nshare = 10\n\
             [[waves]]\nname = \"tiny\"\ntargets = [\"tenant-*\"]\nshare = 0.5\n",
        );
        let plan = plan(&cfg, targets(&tenants(25))).unwrap();
        assert_eq!(plan.waves[0].targets.len(), 3);
        assert_eq!(plan.waves[1].targets.len(), 1);
        assert_eq!(plan.untaken.len(), 1 + 21);
    }

    #[test]
    fn a_wave_that_takes_nothing_is_refused_with_its_line() {
        let cfg = config(
            "[[waves]]\nname = \"all\"\ntargets = [\"tenant-*\"]\n\
             [[waves]]\nname = \"rest\"\ntargets = [\"tenant-*\"]\n",
        );
        let e = plan(&cfg, targets(&tenants(3))).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.starts_with("b.toml:13:") && text.contains("earlier wave"), "{text}");
        let e = plan(&cfg, targets(&["staging"])).unwrap_err().to_string();
        assert!(e.contains("wave \"all\" takes no database") && e.contains("no row"), "{e}");
    }
}
