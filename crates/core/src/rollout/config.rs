//! `[rollout]`, `[[targets]]` and `[[waves]]` in backstop.toml, checked
//! when the config loads: every mistake that can be seen without the
//! databases (a pattern no target can match, `count` and `share` both
//! set, a name declared twice) is an error naming its line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::pattern;
use crate::kit::text::{line_col, Located};

/// `[rollout]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    control: Option<Spanned<String>>,
}

/// One `[[targets]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    name: Spanned<String>,
    url: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
}

/// One `[[waves]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWave {
    name: Spanned<String>,
    targets: Spanned<Vec<String>>,
    count: Option<Spanned<i64>>,
    share: Option<Spanned<toml::Value>>,
    parallel: Option<Spanned<i64>>,
    bake: Option<Spanned<String>>,
    halt_after: Option<Spanned<i64>>,
}

/// What a database is, for the guards that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// One PostgreSQL database.
    #[default]
    Postgres,
    /// The coordinator of a Citus cluster: a migration goes through it
    /// once, and Citus carries the DDL to the shards on the workers.
    CitusCoordinator,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::CitusCoordinator => "citus-coordinator",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::Postgres, Kind::CitusCoordinator].into_iter().find(|k| k.as_str() == text)
    }
}

/// Where a declared target's databases come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One database; the URL as written, `${ENV}` filled in when used.
    Url(String),
    /// One database per row `(name, url)` of this query on the control
    /// database; the declared name is a template with `{name}`.
    Query(String),
}

/// One `[[targets]]`, checked.
#[derive(Debug, Clone)]
pub struct TargetDecl {
    /// The name, or the template (`tenant-{name}`) of a query's targets.
    pub name: String,
    pub source: Source,
    pub kind: Kind,
    /// The line of its `name`, for messages.
    pub line: usize,
}

/// How many of the databases its patterns match a wave takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// All those no earlier wave took.
    All,
    /// The first N.
    Count(usize),
    /// This per cent, rounded up (at least one).
    Share(f64),
}

/// One `[[waves]]`, checked.
#[derive(Debug, Clone)]
pub struct WaveDecl {
    pub name: String,
    /// Patterns of target names (`*`, `?`).
    pub patterns: Vec<String>,
    pub take: Take,
    /// Databases migrated at once.
    pub parallel: usize,
    /// How long the triggers must hold after the wave before the next.
    pub bake: Duration,
    /// Failed databases after which the rollout stops.
    pub halt_after: usize,
    /// The line of its `name`, for messages.
    pub line: usize,
}

/// `[rollout]`, `[[targets]]` and `[[waves]]`, checked.
#[derive(Debug, Clone, Default)]
pub struct RolloutConfig {
    /// `[rollout] control` as written, with its line.
    control: Option<(String, usize)>,
    pub targets: Vec<TargetDecl>,
    pub waves: Vec<WaveDecl>,
    /// The config file, for messages.
    pub path: PathBuf,
}

/// The sections as written, for [`RolloutConfig::from_raw`].
pub struct Raw {
    pub section: RawSection,
    pub targets: Vec<RawTarget>,
    pub waves: Vec<RawWave>,
}

impl RolloutConfig {
    /// Checks the sections as written; `text` and `path` place the errors.
    pub fn from_raw(raw: Raw, text: &str, path: &Path) -> Result<RolloutConfig, Located> {
        let at = |offset: usize, message: String| Located {
            path: path.to_path_buf(),
            line: line_col(text, offset).0,
            column: 1,
            message,
        };
        let targets = targets(raw.targets, &at)?;
        let control = raw.section.control.map(|c| {
            let line = line_col(text, c.span().start).0;
            (c.into_inner(), line)
        });
        if control.is_none() {
            if let Some(first) = targets.first().filter(|t| matches!(t.source, Source::Query(_))) {
                return Err(Located {
                    path: path.to_path_buf(),
                    line: first.line,
                    column: 1,
                    message: format!(
                        "target {:?} is a query, which runs on the control database, and there is \
                         no [rollout] control; set control = \"${{CONTROL_URL}}\", or put a target \
                         with a url first (it is the control database by default)",
                        first.name
                    ),
                });
            }
        }
        let waves = waves(raw.waves, &targets, &at)?;
        Ok(RolloutConfig { control, targets, waves, path: path.to_path_buf() })
    }

    /// `[rollout] control` as written with its line, or the first
    /// target's URL with its: the control database, `${ENV}` not yet
    /// filled in. `None` without targets.
    pub fn control(&self) -> Option<(&str, usize)> {
        if let Some((url, line)) = &self.control {
            return Some((url, *line));
        }
        self.targets.first().and_then(|t| match &t.source {
            Source::Url(url) => Some((url.as_str(), t.line)),
            Source::Query(_) => None,
        })
    }
}

type At<'a> = dyn Fn(usize, String) -> Located + 'a;

fn targets(raw: Vec<RawTarget>, at: &At<'_>) -> Result<Vec<TargetDecl>, Located> {
    let mut out: Vec<TargetDecl> = Vec::new();
    for t in raw {
        let offset = t.name.span().start;
        let name = t.name.into_inner();
        let fail = |message: String| Err(at(offset, message));
        if name.trim().is_empty() {
            return fail(
                "a [[targets]] name is blank; name each target, e.g. name = \"staging\"".into(),
            );
        }
        if name.contains(['*', '?']) {
            return fail(format!(
                "target name {name:?} holds * or ?, which waves use as patterns; rename it"
            ));
        }
        let source = match (t.url, t.query) {
            (Some(_), Some(_)) => {
                return fail(format!("target {name:?} has both url and query; keep one"))
            }
            (None, None) => {
                return fail(format!(
                    "target {name:?} has neither url nor query; give url = \"${{STAGING_URL}}\", or \
                     query = \"select name, url from tenants\" with a name like \"tenant-{{name}}\""
                ))
            }
            (Some(url), None) => {
                if name.contains("{name}") {
                    return fail(format!(
                        "target {name:?}: {{name}} is filled from the rows of a query; give query, or a plain name"
                    ));
                }
                if url.get_ref().trim().is_empty() {
                    return Err(at(url.span().start, format!("target {name:?} has a blank url")));
                }
                Source::Url(url.into_inner())
            }
            (None, Some(query)) => {
                if !name.contains("{name}") {
                    return fail(format!(
                        "target {name:?} is a query: its name is a template filled from each row's \
                         first column, e.g. \"tenant-{{name}}\""
                    ));
                }
                if query.get_ref().trim().is_empty() {
                    return Err(at(query.span().start, format!("target {name:?} has a blank query")));
                }
                Source::Query(query.into_inner())
            }
        };
        let kind = match t.kind {
            None => Kind::Postgres,
            Some(k) => Kind::parse(k.get_ref()).ok_or_else(|| {
                at(
                    k.span().start,
                    format!(
                        "target {name:?}: unknown kind {:?}; use \"postgres\" (the default) or \"citus-coordinator\"",
                        k.get_ref()
                    ),
                )
            })?,
        };
        if out.iter().any(|o| o.name == name) {
            return fail(format!("target {name:?} is declared twice"));
        }
        let line = at(offset, String::new()).line;
        out.push(TargetDecl { name, source, kind, line });
    }
    Ok(out)
}

fn waves(raw: Vec<RawWave>, targets: &[TargetDecl], at: &At<'_>) -> Result<Vec<WaveDecl>, Located> {
    let mut out: Vec<WaveDecl> = Vec::new();
    for w in raw {
        let offset = w.name.span().start;
        let name = w.name.into_inner();
        let fail = |offset: usize, message: String| Err(at(offset, message));
        if name.trim().is_empty() {
            return fail(
                offset,
                "a [[waves]] name is blank; name each wave, e.g. name = \"canary\"".into(),
            );
        }
        if out.iter().any(|o| o.name == name) {
            return fail(offset, format!("wave {name:?} is declared twice"));
        }
        if targets.is_empty() {
            return fail(
                offset,
                format!("wave {name:?} has no [[targets]] to take from; declare them"),
            );
        }
        let patterns_at = w.targets.span().start;
        let patterns = w.targets.into_inner();
        if patterns.is_empty() {
            return fail(
                patterns_at,
                format!(
                "wave {name:?}: targets is empty; name what it takes, e.g. targets = [\"tenant-*\"]"
            ),
            );
        }
        for p in &patterns {
            if !targets.iter().any(|t| pattern::may_match(p, &t.name)) {
                let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
                return fail(
                    patterns_at,
                    format!(
                        "wave {name:?}: {p:?} matches no target; the targets are {}",
                        known.join(", ")
                    ),
                );
            }
        }
        let take = take(&name, w.count, w.share, at)?;
        let at_least_one = |v: Option<Spanned<i64>>, key: &str, why: &str| match v {
            None => Ok(1),
            Some(v) if *v.get_ref() >= 1 => Ok(*v.get_ref() as usize),
            Some(v) => {
                Err(at(v.span().start, format!("wave {name:?}: {key} = {} {why}", v.get_ref())))
            }
        };
        let parallel = at_least_one(
            w.parallel,
            "parallel",
            "would migrate nothing; give at least 1 (one database at a time)",
        )?;
        let halt_after = at_least_one(
            w.halt_after,
            "halt_after",
            "would stop before any failure; give at least 1 (stop at the first failed database)",
        )?;
        let bake = match w.bake {
            None => Duration::ZERO,
            Some(b) => crate::kit::duration::parse(b.get_ref())
                .map_err(|e| at(b.span().start, format!("wave {name:?}: bake: {e}")))?,
        };
        let line = at(offset, String::new()).line;
        out.push(WaveDecl { name, patterns, take, parallel, bake, halt_after, line });
    }
    Ok(out)
}

fn take(
    wave: &str,
    count: Option<Spanned<i64>>,
    share: Option<Spanned<toml::Value>>,
    at: &At<'_>,
) -> Result<Take, Located> {
    match (count, share) {
        (Some(_), Some(s)) => Err(at(
            s.span().start,
            format!(
                "wave {wave:?} sets both count and share; keep one (count = N databases, or share = P per cent)"
            ),
        )),
        (Some(c), None) if *c.get_ref() >= 1 => Ok(Take::Count(*c.get_ref() as usize)),
        (Some(c), None) => Err(at(
            c.span().start,
            format!("wave {wave:?}: count = {} takes no database; give at least 1", c.get_ref()),
        )),
        (None, Some(s)) => {
            let value = match s.get_ref() {
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Float(f) => Some(*f),
                _ => None,
            };
            match value {
                Some(v) if v > 0.0 && v <= 100.0 => Ok(Take::Share(v)),
                _ => Err(at(
                    s.span().start,
                    format!(
                        "wave {wave:?}: share is a per cent of the databases its patterns match, \
                         above 0 and at most 100 (e.g. share = 10)"
                    ),
                )),
            }
        }
        (None, None) => Ok(Take::All),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    use super::*;

    const ISSUE_EXAMPLE: &str = r#"[rollout]
control = "${CONTROL_URL}"

[[targets]]
name = "staging"
url = "${STAGING_URL}"

[[targets]]
name = "tenant-{name}"
query = "select name, url from tenants order by name"

[[waves]]
name = "staging"
targets = ["staging"]
bake = "10m"

[[waves]]
name = "canary"
targets = ["tenant-*"]
count = 2

[[waves]]
name = "rest"
targets = ["tenant-*"]
parallel = 8
halt_after = 1
"#;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("b.toml")).unwrap_err().to_string()
    }

    #[test]
    fn the_issue_example_is_read_as_written() {
        let cfg = Config::parse(ISSUE_EXAMPLE, Path::new("b.toml")).unwrap();
        let r = &cfg.rollout;
        assert_eq!(r.control(), Some(("${CONTROL_URL}", 2)));
        assert_eq!(r.targets.len(), 2);
        assert!(matches!(r.targets[1].source, Source::Query(_)));
        assert_eq!(r.targets[1].line, 9);
        let names: Vec<&str> = r.waves.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["staging", "canary", "rest"]);
        assert_eq!(r.waves[0].bake, Duration::from_secs(600));
        assert_eq!(r.waves[1].take, Take::Count(2));
        assert_eq!(r.waves[1].parallel, 1);
        assert_eq!(r.waves[2].take, Take::All);
        assert_eq!((r.waves[2].parallel, r.waves[2].halt_after), (8, 1));
        assert_eq!(r.waves[2].line, 23);
    }

    #[test]
    fn the_first_target_is_the_control_database_by_default() {
        let cfg = Config::parse(
            "[[targets]]\nname = \"a\"\nurl = \"${A}\"\n[[targets]]\nname = \"b\"\nurl = \"${B}\"\n",
            Path::new("b.toml"),
        )
        .unwrap();
        assert_eq!(cfg.rollout.control(), Some(("${A}", 2)));
        let e = err("[[targets]]\nname = \"t-{name}\"\nquery = \"select 1\"\n");
        assert!(e.starts_with("b.toml:2:") && e.contains("[rollout] control"), "{e}");
    }

    #[test]
    fn bad_waves_are_refused_with_their_line_and_fix() {
        let base = "[rollout]\ncontrol = \"x\"\n[[targets]]\nname = \"tenant-{name}\"\nquery = \"select 1\"\n[[targets]]\nname = \"staging\"\nurl = \"y\"\n[[waves]]\nname = \"w\"\n";
        let e = err(&format!("{base}targets = [\"tenat-*\"]\n"));
        assert!(e.starts_with("b.toml:11:") && e.contains("\"tenat-*\" matches no target"), "{e}");
        assert!(e.contains("tenant-{name}, staging"), "{e}");
        let e = err(&format!("{base}targets = [\"tenant-*\"]\ncount = 2\nshare = 10\n"));
        assert!(e.starts_with("b.toml:13:") && e.contains("both count and share"), "{e}");
        let e = err(&format!("{base}targets = [\"tenant-*\"]\nshare = 0\n"));
        assert!(e.contains("share is a per cent"), "{e}");
        let e = err(&format!("{base}targets = [\"tenant-*\"]\nparallel = 0\n"));
        assert!(e.starts_with("b.toml:12:") && e.contains("parallel = 0"), "{e}");
        let e = err(&format!("{base}targets = []\n"));
        assert!(e.contains("targets is empty"), "{e}");
        let e = err(&format!("{base}targets = [\"staging\"]\nbake = \"soon\"\n"));
        assert!(e.starts_with("b.toml:12:") && e.contains("invalid duration"), "{e}");
        let e = err(&format!("{base}targets = [\"staging\"]\nparalel = 2\n"));
        assert!(e.starts_with("b.toml:12:") && e.contains("paralel"), "{e}");
        let twice = format!(
            "{base}targets = [\"staging\"]\n[[waves]]\nname = \"w\"\ntargets = [\"staging\"]\n"
        );
        assert!(err(&twice).contains("wave \"w\" is declared twice"));
    }

    #[test]
    fn bad_targets_are_refused_with_their_line_and_fix() {
        let e =
            err("[[targets]]\nname = \"a\"\nurl = \"x\"\n[[targets]]\nname = \"a\"\nurl = \"y\"\n");
        assert!(e.starts_with("b.toml:5:") && e.contains("declared twice"), "{e}");
        let e = err("[[targets]]\nname = \"a\"\nurl = \"x\"\nquery = \"select 1\"\n");
        assert!(e.contains("both url and query"), "{e}");
        let e = err("[[targets]]\nname = \"a\"\n");
        assert!(e.contains("neither url nor query"), "{e}");
        let e = err(
            "[rollout]\ncontrol = \"c\"\n[[targets]]\nname = \"tenants\"\nquery = \"select 1\"\n",
        );
        assert!(e.contains("template"), "{e}");
        let e = err("[[targets]]\nname = \"a\"\nurl = \"x\"\nkind = \"citus\"\n");
        assert!(e.starts_with("b.toml:4:") && e.contains("citus-coordinator"), "{e}");
        let e = err("[[targets]]\nname = \"a\"\nurl = \"x\"\nport = 5432\n");
        assert!(e.starts_with("b.toml:4:") && e.contains("port"), "{e}");
        let e = err("[rollout]\ncontrl = \"x\"\n");
        assert!(e.starts_with("b.toml:2:") && e.contains("contrl"), "{e}");
        let cfg = Config::parse(
            "[[targets]]\nname = \"c\"\nurl = \"x\"\nkind = \"citus-coordinator\"\n",
            Path::new("b.toml"),
        )
        .unwrap();
        assert_eq!(cfg.rollout.targets[0].kind, Kind::CitusCoordinator);
    }
}
