//! Running the suite: choose the checks, load what they compare with, then
//! run them concurrently (each database check in its own session) and
//! collect one result per check, in config order. A check that overruns
//! its timeout is reported as failed and abandoned; its session's own
//! `statement_timeout` ends its query on the server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use postgres::Client;

use super::checks::{self, Job, Outcome};
use super::config::{Phase, ResolvedHeaders, Severity, VerifySection};
use super::report::{CheckResult, Status, SuiteReport};
use super::snapshot::{self, Snapshot};
use super::VerifyError;

/// Extra time a check gets past its own timeout before it is abandoned.
const GRACE: Duration = Duration::from_secs(2);

/// Which configured checks run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these names (`--only`); empty means all.
    pub only: Vec<String>,
    /// After a `migrate` or `rollback`: only the checks that belong there.
    pub phase: Option<Phase>,
    /// `--snapshot NAME`: what snapshot checks without their own compare with.
    pub snapshot: Option<String>,
    /// Where backups are, for snapshots named `backup:latest` or `backup:ID`.
    pub backups: Option<std::path::PathBuf>,
}

/// A suite ready to run: checks chosen, snapshots loaded, headers resolved.
pub struct Suite {
    jobs: Vec<Arc<Job>>,
    concurrency: usize,
    secrets: Vec<String>,
}

impl Selection {
    fn chosen<'s>(
        &self,
        section: &'s VerifySection,
    ) -> Result<Vec<&'s super::CheckSpec>, VerifyError> {
        for name in &self.only {
            if !section.checks.iter().any(|c| &c.name == name) {
                return Err(VerifyError::UnknownCheck {
                    name: name.clone(),
                    known: section.checks.iter().map(|c| c.name.clone()).collect(),
                });
            }
        }
        Ok(section
            .checks
            .iter()
            .filter(|c| self.only.is_empty() || self.only.contains(&c.name))
            .filter(|c| self.phase.is_none_or(|p| c.after.contains(&p)))
            .collect())
    }

    /// Whether some chosen check compares with a snapshot it does not name
    /// itself and none is given: `migrate` and `rollback` then take one
    /// just before they run.
    pub fn needs_baseline(&self, section: &VerifySection) -> Result<bool, VerifyError> {
        Ok(self.snapshot.is_none()
            && self.chosen(section)?.iter().any(|c| c.kind.snapshot() == Some(None)))
    }
}

impl Suite {
    /// Chooses the checks and loads the snapshots they compare with;
    /// `baseline` serves checks that name none when `--snapshot` is not given.
    pub fn prepare(
        client: &mut Client,
        url: &str,
        section: &VerifySection,
        selection: &Selection,
        baseline: Option<Snapshot>,
        headers: &ResolvedHeaders,
    ) -> Result<Suite, VerifyError> {
        let chosen = selection.chosen(section)?;
        let baseline = baseline.map(Arc::new);
        let mut loaded: BTreeMap<String, Arc<Snapshot>> = BTreeMap::new();
        let mut jobs = Vec::with_capacity(chosen.len());
        for spec in chosen {
            let snapshot = match spec.kind.snapshot() {
                None => None,
                Some(own) => match own.or(selection.snapshot.as_deref()) {
                    Some(name) => Some(match loaded.get(name) {
                        Some(s) => s.clone(),
                        None => {
                            let s = Arc::new(match name.strip_prefix(snapshot::BACKUP_PREFIX) {
                                Some(which) => {
                                    let dir = selection
                                        .backups
                                        .as_deref()
                                        .unwrap_or(std::path::Path::new("backups"));
                                    snapshot::from_backup(client, dir, which)?
                                }
                                None => snapshot::load(client, name)?,
                            });
                            loaded.insert(name.to_string(), s.clone());
                            s
                        }
                    }),
                    None => Some(baseline.clone().ok_or_else(|| VerifyError::NoSnapshot {
                        check: spec.name.clone(),
                        line: spec.line,
                    })?),
                },
            };
            jobs.push(Arc::new(Job {
                spec: spec.clone(),
                url: url.to_string(),
                snapshot,
                headers: headers.by_check.get(&spec.name).cloned().unwrap_or_default(),
            }));
        }
        Ok(Suite {
            jobs,
            concurrency: section.concurrency.max(1),
            secrets: headers.secrets.clone(),
        })
    }

    /// True when no configured check was chosen.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs every check, at most `concurrency` at a time.
    pub fn run(&self) -> SuiteReport {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel::<(usize, CheckResult)>();
        let mut waiting: VecDeque<usize> = (0..self.jobs.len()).collect();
        let mut running: HashMap<usize, Instant> = HashMap::new();
        let mut results: Vec<Option<CheckResult>> = vec![None; self.jobs.len()];
        loop {
            while running.len() < self.concurrency {
                let Some(i) = waiting.pop_front() else { break };
                let job = self.jobs[i].clone();
                let tx = tx.clone();
                running.insert(i, Instant::now());
                std::thread::spawn(move || {
                    let _ = tx.send((i, run_one(&job)));
                });
            }
            let Some(deadline) =
                running.iter().map(|(i, start)| *start + self.jobs[*i].spec.timeout + GRACE).min()
            else {
                break;
            };
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((i, result)) => {
                    // A late answer of an abandoned check is dropped.
                    if running.remove(&i).is_some() {
                        results[i] = Some(result);
                    }
                }
                Err(_) => {
                    let now = Instant::now();
                    let overdue: Vec<usize> = running
                        .iter()
                        .filter(|(i, start)| now >= **start + self.jobs[**i].spec.timeout + GRACE)
                        .map(|(i, _)| *i)
                        .collect();
                    for i in overdue {
                        let start = running.remove(&i).unwrap_or(now);
                        let job = &self.jobs[i];
                        let outcome = Outcome::Fail(format!(
                            "timed out after {}; raise timeout on this check if it needs longer",
                            crate::kit::duration::human(job.spec.timeout)
                        ));
                        results[i] = Some(result_of(job, outcome, now - start));
                    }
                }
            }
        }
        let checks = results
            .into_iter()
            .flatten()
            .map(|mut r| {
                r.detail = mask(&r.detail, &self.secrets);
                r
            })
            .collect();
        SuiteReport::new(checks, started.elapsed())
    }
}

fn run_one(job: &Job) -> CheckResult {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checks::run(job)))
        .unwrap_or_else(|_| {
            Ok(Outcome::Fail("the check crashed; this is a bug in Backstop".into()))
        })
        .unwrap_or_else(|e| Outcome::Fail(error_text(&e)));
    result_of(job, outcome, started.elapsed())
}

fn result_of(job: &Job, outcome: Outcome, elapsed: Duration) -> CheckResult {
    let (status, detail) = match outcome {
        Outcome::Pass(d) => (Status::Pass, d),
        Outcome::Fail(d) if job.spec.severity == Severity::Warning => (Status::Warn, d),
        Outcome::Fail(d) => (Status::Fail, d),
    };
    CheckResult {
        name: job.spec.name.clone(),
        kind: job.spec.kind.name().to_string(),
        severity: job.spec.severity,
        status,
        detail,
        duration_ms: elapsed.as_millis().try_into().unwrap_or(u64::MAX),
    }
}

/// The error and its causes in one line, PostgreSQL's words included.
fn error_text(e: &VerifyError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = match s.downcast_ref::<postgres::Error>() {
            Some(pg) => checks::pg_message(pg),
            None => s.to_string(),
        };
        text.push_str(": ");
        text.push_str(&part);
        source = s.source().filter(|_| s.downcast_ref::<postgres::Error>().is_none());
    }
    text
}

/// Replaces every secret (header values from the environment) with `****`.
fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "****");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            mask("401 for Bearer t0ken and t0ken", &["t0ken".to_string()]),
            "401 for Bearer **** and ****"
        );
    }
}
