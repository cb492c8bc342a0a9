//! Carrying out a rollback method after COMMIT. Method A, the kill switch:
//! the release's flags off (or the one flag a trigger names), then the
//! `[hooks] after_kill` command (a redeploy, a cache purge). Each step is
//! timed and recorded in `backstop.events`, a started event first, so an
//! interrupted run shows in `status`; killing flags twice changes nothing,
//! so a method run again after a crash finishes where it stopped.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit;
use crate::flags::{self, FlagsError};

/// `[hooks]`: shell commands the methods run at their steps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksSection {
    /// After the flags are off (e.g. a redeploy, so no cached flag lingers).
    pub after_kill: Option<String>,
    /// How long a hook may run before it is stopped and the method with it.
    #[serde(deserialize_with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for HooksSection {
    fn default() -> Self {
        HooksSection { after_kill: None, timeout: Duration::from_secs(120) }
    }
}

/// What method A turns off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every flag of a release.
    Release(String),
    /// One flag.
    Flag(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Release(r) => write!(f, "release {r}"),
            Target::Flag(k) => write!(f, "flag {k}"),
        }
    }
}

/// One finished step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub took_ms: u64,
    /// What it did, or why it failed.
    pub detail: String,
    /// A hook's output (truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Why a method stopped.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    Flags(#[from] FlagsError),
    #[error("step {step} failed: {detail}; the steps before it stand (see `backstop status`)")]
    Step { step: String, detail: String },
    #[error("database error while recording the method")]
    Db(#[from] postgres::Error),
}

impl RespondError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RespondError::Flags(e) => e.exit_code(),
            RespondError::Step { .. } => 1,
            RespondError::Db(_) => 3,
        }
    }
}

/// Runs a hook: whether it succeeded, and its output (truncated), or why not.
pub fn run_hook(command: &str, timeout: Duration) -> (bool, String) {
    let ran = crate::shell::run(command, timeout);
    let output = crate::shell::truncated(format!("{}{}", ran.stdout, ran.stderr).trim_end(), 4000);
    match ran.outcome {
        Ok(()) => (true, output),
        Err(why) if output.is_empty() => (false, why),
        Err(why) => (false, format!("{why}\n{output}")),
    }
}

fn step(name: &str, started: Instant, ok: bool, detail: String, output: Option<String>) -> Step {
    Step { name: name.into(), ok, took_ms: started.elapsed().as_millis() as u64, detail, output }
}

/// Method A: the flags off, then the after-kill hook. `on_step` sees each
/// step as it finishes. Records a started event and the outcome.
pub fn method_a(
    client: &mut postgres::Client,
    target: &Target,
    hooks: &HooksSection,
    reason: &str,
    lock_wait: Duration,
    mut on_step: impl FnMut(&Step),
) -> Result<Vec<Step>, RespondError> {
    let actor = audit::actor();
    let base = json!({ "method": "A", "target": target, "reason": reason });
    // Without the audit log there are no flags either: the kill says so.
    let logged: bool =
        client.query_one("select to_regclass('backstop.events') is not null", &[])?.get(0);
    if logged {
        let start = audit::Event {
            kind: "method",
            outcome: "started",
            versions: vec![],
            details: base.clone(),
        };
        audit::record(client, &start)?;
    }
    let mut steps = Vec::new();
    let finish = |client: &mut postgres::Client,
                  steps: &[Step],
                  outcome: &str|
     -> Result<(), RespondError> {
        if !logged {
            return Ok(());
        }
        let mut details = base.clone();
        details["steps"] = json!(steps);
        audit::record(
            client,
            &audit::Event { kind: "method", outcome, versions: vec![], details },
        )?;
        Ok(())
    };

    let started = Instant::now();
    let killed = match target {
        Target::Release(r) => {
            flags::kill_release(client, r, &actor, reason, lock_wait).map(|c| c.len())
        }
        Target::Flag(k) => flags::disable(client, k, &actor, reason, lock_wait).map(|_| 1),
    };
    let n = match killed {
        Ok(n) => n,
        Err(e) => {
            let s = step("flags off", started, false, e.to_string(), None);
            on_step(&s);
            steps.push(s);
            finish(client, &steps, "failed")?;
            return Err(e.into());
        }
    };
    let s = step(
        "flags off",
        started,
        true,
        format!("{n} flag(s) of {target} off; serve pushed the change"),
        None,
    );
    on_step(&s);
    steps.push(s);

    if let Some(hook) = &hooks.after_kill {
        let started = Instant::now();
        let (ok, output) = run_hook(hook, hooks.timeout);
        let detail = if ok {
            format!("`{hook}` ran")
        } else {
            format!("`{hook}`: {}", output.lines().next().unwrap_or(""))
        };
        let s = step("after_kill hook", started, ok, detail.clone(), Some(output));
        on_step(&s);
        steps.push(s);
        if !ok {
            finish(client, &steps, "failed")?;
            return Err(RespondError::Step { step: "after_kill hook".into(), detail });
        }
    }
    finish(client, &steps, "ok")?;
    Ok(steps)
}
