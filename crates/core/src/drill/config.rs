//! `[drill]`: the runbook's promises a drill is held to (a time per
//! method, as the quick reference card gives them), how often a drill must
//! pass, which of the `[hooks]` may run during a drill, and whether the
//! report goes to the team.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[drill]` in backstop.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillSection {
    /// Method A's target (flags off, the safe hooks, the verify suite).
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub method_a: Duration,
    /// Method B's target (A, the restore, the verify suite).
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub method_b: Duration,
    /// Method C's target (exports, A, the downs, the verify suite).
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub method_c: Duration,
    /// The restore of the backup into the throwaway cluster; none by default.
    #[serde(deserialize_with = "crate::kit::duration::de_opt")]
    pub restore: Option<Duration>,
    /// How old the last passed drill may be before `drill --due` fails.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub every: Duration,
    /// The `[hooks]` a drill runs, because they are safe to run while
    /// production is fine: only `after_kill` may be named (`stop_writes`
    /// and `resume_writes` stop and start production's traffic).
    #[serde(deserialize_with = "hooks")]
    pub hooks: Vec<String>,
    /// Send the report to the team (`[notify]` Slack and e-mail).
    pub notify: bool,
    /// How long a drill waits for another drill of the same database.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub lock_wait: Duration,
    /// The methods the project's runbook uses, of `A`, `B` and `C`; a
    /// method left out is reported `not used`. Default: all three, but A
    /// where the project declares no `[[flags]]`.
    #[serde(deserialize_with = "methods")]
    pub methods: Option<Vec<char>>,
}

impl Default for DrillSection {
    fn default() -> Self {
        DrillSection {
            method_a: Duration::from_secs(5 * 60),
            method_b: Duration::from_secs(20 * 60),
            method_c: Duration::from_secs(60 * 60),
            restore: None,
            every: Duration::from_secs(90 * 86_400),
            hooks: Vec::new(),
            notify: true,
            lock_wait: Duration::from_secs(2 * 3600),
            methods: None,
        }
    }
}

impl DrillSection {
    /// Whether the drill plays method `m` (`A`, `B`, `C`), or why not:
    /// `[drill] methods` names the runbook's; without it, all three, but
    /// A where the project declares no flags (it has no kill switch).
    pub fn uses(&self, m: char, has_flags: bool) -> Result<(), String> {
        match &self.methods {
            Some(chosen) if !chosen.contains(&m) => {
                Err(format!("method {m} is not among [drill] methods"))
            }
            Some(_) => Ok(()),
            None if m == 'A' && !has_flags => Err(
                "the project declares no [[flags]], so it has no kill switch to turn off; declare \
                 the release's flags to drill method A, or name the methods the runbook uses in \
                 [drill] methods"
                    .into(),
            ),
            None => Ok(()),
        }
    }

    /// Whether `[hooks] after_kill` may run during a drill.
    pub fn runs_after_kill(&self) -> bool {
        self.hooks.iter().any(|h| h == "after_kill")
    }
}

fn methods<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<char>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut out = Vec::new();
    for name in &names {
        match name.trim().to_ascii_uppercase().as_str() {
            m @ ("A" | "B" | "C") => out.extend(m.chars()),
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "methods: {name:?} is no method of the runbook; write some of \"A\" (the \
                     kill switch), \"B\" (restore the backup) and \"C\" (the downs)"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(serde::de::Error::custom(
            "methods: a drill plays at least one method; leave the key out for all of them",
        ));
    }
    Ok(Some(out))
}

fn hooks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    for name in &names {
        match name.as_str() {
            "after_kill" => {}
            "stop_writes" | "resume_writes" => {
                return Err(serde::de::Error::custom(format!(
                    "hooks: {name:?} stops or starts production's writes, which a drill on a copy \
                     must never do; only \"after_kill\" may run during a drill"
                )))
            }
            other => {
                return Err(serde::de::Error::custom(format!(
                    "hooks: {other:?} is no hook; write hooks = [\"after_kill\"] to run \
                     [hooks] after_kill during drills, or leave it out"
                )))
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DrillSection, String> {
        #[derive(Deserialize)]
        struct File {
            drill: DrillSection,
        }
        toml::from_str::<File>(text).map(|f| f.drill).map_err(|e| e.to_string())
    }

    #[test]
    fn the_quick_reference_card_is_the_default_and_can_be_written_down() {
        let d = parse("[drill]\n").unwrap();
        assert_eq!(d, DrillSection::default());
        let d = parse(
            "[drill]\nmethod_a = \"5m\"\nmethod_b = \"20m\"\nmethod_c = \"1h\"\nevery = \"90d\"\n\
             hooks = [\"after_kill\"]\n",
        )
        .unwrap();
        assert_eq!(d.method_b, Duration::from_secs(1200));
        assert_eq!(d.every, Duration::from_secs(90 * 86_400));
        assert!(d.runs_after_kill());
        assert_eq!(parse("[drill]\nmethod_b = \"1ms\"\n").unwrap().method_b.as_millis(), 1);
    }

    #[test]
    fn a_hook_that_acts_on_production_is_refused() {
        let err = parse("[drill]\nhooks = [\"stop_writes\"]\n").unwrap_err();
        assert!(err.contains("production's writes"), "{err}");
        let err = parse("[drill]\nhooks = [\"redeploy\"]\n").unwrap_err();
        assert!(err.contains("is no hook"), "{err}");
        let err = parse("[drill]\nevery = \"quarterly\"\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
        let err = parse("[drill]\nmethods = [\"A\", \"D\"]\n").unwrap_err();
        assert!(err.contains("\"D\" is no method"), "{err}");
        assert!(parse("[drill]\nmethods = []\n").unwrap_err().contains("at least one"));
        assert_eq!(
            parse("[drill]\nmethods = [\"b\", \"C\"]\n").unwrap().methods,
            Some(vec!['B', 'C'])
        );
    }
}
