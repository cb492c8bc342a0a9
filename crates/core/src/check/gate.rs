//! The check gate: `migrate` runs the risk check on the pending migrations
//! under the migration lock, with live facts from the same session, and
//! refuses a NO-GO unless each critical finding's code is accepted with
//! `--accept-risk`. What was accepted goes into the audit log.

use postgres::Client;
use serde_json::json;

use backstop_lint::{Code, Severity};

use super::on_copy::{self, OnCopy};
use super::{analyze, live, Assessment, CheckError, LiveInfo, Settings, Source};
use crate::migrate::{Gate, GatePass, GateRefusal};
use crate::source::Migration;

/// The gate. `notify` sees the assessment before the decision, so the CLI
/// can show the verdict and conditions before anything is applied.
pub struct CheckGate<'a> {
    pub settings: Settings,
    /// Codes the operator accepts for this run (`--accept-risk`).
    pub accept: Vec<Code>,
    /// Why they are accepted (`--reason`), recorded with them.
    pub because: Option<String>,
    /// Shown in the assessment; the URL with its password masked.
    pub database: String,
    pub notify: Box<dyn FnMut(&Assessment) + 'a>,
    /// Codes the step being taken does not bear out (an expand or its
    /// contract serves those statements another way): set apart.
    pub served: Vec<Code>,
    /// Where the pending migrations run first, on a copy of the target's
    /// schema: a statement that fails there is NO-GO before any backup.
    pub on_copy: Option<OnCopy>,
}

/// What `migrate --expand` does another way than the statements say: a
/// rename served by a view (BS301, BS302), a dropped column hidden until
/// contract (BS102), a type change by a twin and a backfill (BS206), a
/// computed default by a backfill (BS205), a NOT NULL or a constraint
/// proved by a validation that blocks no write (BS204, BS203).
pub const SERVED_AT_EXPAND: &[Code] =
    &[Code::BS301, Code::BS302, Code::BS102, Code::BS206, Code::BS205, Code::BS204, Code::BS203];

/// What `migrate --contract` does another way: the same but the dropped
/// column, whose values the contract does remove (BS102 stays). A rename
/// is the contract's purpose: the old shape is retired.
pub const SERVED_AT_CONTRACT: &[Code] =
    &[Code::BS301, Code::BS302, Code::BS206, Code::BS205, Code::BS204, Code::BS203];

impl CheckGate<'_> {
    /// Runs the check; the decision is [`decide`].
    pub fn assess(
        &self,
        client: &mut Client,
        pending: &[&Migration],
    ) -> Result<Assessment, CheckError> {
        let settings = self.settings.for_server(client)?;
        let server = settings.lint.server_major;
        let sources: Vec<Source> =
            pending.iter().map(|m| Source::of_migration_on(m, server)).collect();
        let mut report = analyze(&sources, &settings);
        live::assess(client, &mut report, &settings)?;
        let on = (
            self.on_copy.as_ref(),
            &mut crate::migrate::Quiet as &mut dyn crate::migrate::Progress,
        );
        let copy =
            on_copy::findings_of_pending(client, &mut report.findings, &settings, pending, on)?;
        let server_version: String = client
            .query_one("select current_setting('server_version')", &[])
            .map(|r| r.get(0))
            .unwrap_or_default();
        let info = LiveInfo { database: self.database.clone(), server_version, copy };
        let mut assessment = Assessment::new(sources, report, Some(info));
        if !self.served.is_empty() {
            assessment.serve(&self.served);
        }
        Ok(assessment)
    }
}

/// Refuses a NO-GO whose critical findings are not all accepted. A pass
/// records the verdict, the counts and every accepted finding.
pub fn decide(assessment: &Assessment, accept: &[Code]) -> Result<serde_json::Value, GateRefusal> {
    let critical: Vec<_> =
        assessment.findings.iter().filter(|f| f.severity == Severity::Critical).collect();
    let refused: Vec<_> = critical.iter().filter(|f| !accept.contains(&f.code)).collect();
    if !refused.is_empty() {
        let mut reason = format!("NO-GO, {} critical finding(s):", refused.len());
        for f in &refused {
            reason.push_str(&format!(
                "\n  {} {}:{}: {}",
                f.code,
                f.file,
                f.line,
                short(&f.message)
            ));
        }
        let mut codes: Vec<&str> = refused.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        let flags: Vec<String> = codes.iter().map(|c| format!("--accept-risk {c}")).collect();
        reason.push_str(&format!(
            "\nfix the migrations, or accept the risks with {} (recorded in the audit log); \
             `backstop check` shows the full assessment",
            flags.join(" ")
        ));
        return Err(GateRefusal { gate: "check".into(), reason, exit_code: 1 });
    }
    let accepted: Vec<_> = critical
        .iter()
        .map(|f| json!({ "code": f.code, "file": f.file, "line": f.line, "message": f.message }))
        .collect();
    Ok(json!({
        "verdict": assessment.verdict,
        "summary": assessment.summary,
        "conditions": assessment.conditions,
        "accepted_risks": accepted,
    }))
}

/// A finding's message cut to one short line, at a word.
fn short(message: &str) -> String {
    const WIDTH: usize = 100;
    let line = message.lines().next().unwrap_or_default();
    if line.chars().count() <= WIDTH {
        return line.to_string();
    }
    let cut: String = line.chars().take(WIDTH).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}

impl Gate for CheckGate<'_> {
    fn name(&self) -> &str {
        "check"
    }

    fn check(
        &mut self,
        client: &mut Client,
        pending: &[&Migration],
        _dry_run: bool,
    ) -> Result<GatePass, GateRefusal> {
        let assessment = self.assess(client, pending).map_err(|e| {
            let mut reason = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                reason.push_str(&format!(": {c}"));
                cause = c.source();
            }
            GateRefusal { gate: "check".into(), reason, exit_code: e.exit_code() }
        })?;
        (self.notify)(&assessment);
        let mut detail = decide(&assessment, &self.accept)?;
        if let Some(because) = &self.because {
            detail["accepted_because"] = json!(because);
        }
        Ok(GatePass { detail, ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backstop_lint::{Finding, Report};

    fn assessment(codes: &[Code]) -> Assessment {
        let findings = codes
            .iter()
            .enumerate()
            .map(|(i, c)| Finding::new(*c, "m/up.sql", i + 1, format!("finding {i}"), "help"))
            .collect();
        Assessment::new(Vec::new(), Report { findings, ..Report::default() }, None)
    }

    #[test]
    fn no_go_is_refused_unless_every_critical_code_is_accepted() {
        let a = assessment(&[Code::BS100, Code::BS402, Code::BS101]);
        let refusal = decide(&a, &[]).unwrap_err();
        assert_eq!(refusal.exit_code, 1);
        assert!(refusal.reason.contains("\n  BS100 m/up.sql:1: finding 0\n"), "{}", refusal.reason);
        assert!(refusal.reason.contains("--accept-risk BS100 --accept-risk BS402"));

        let refusal = decide(&a, &[Code::BS100]).unwrap_err();
        assert!(!refusal.reason.contains("BS100 m/"), "{}", refusal.reason);

        let detail = decide(&a, &[Code::BS100, Code::BS402]).unwrap();
        assert_eq!(detail["verdict"], "NO-GO");
        let accepted: Vec<&str> = detail["accepted_risks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert_eq!(accepted, ["BS100", "BS402"]);
    }

    #[test]
    fn what_an_expand_does_another_way_is_set_apart_and_the_verdict_made_again() {
        let mut a = assessment(&[Code::BS102, Code::BS302, Code::BS201]);
        let total =
            |a: &Assessment| a.summary.critical + a.summary.high + a.summary.medium + a.summary.low;
        assert_eq!(total(&a), 3);
        a.serve(SERVED_AT_EXPAND);
        let kept: Vec<Code> = a.findings.iter().map(|f| f.code).collect();
        let apart: Vec<Code> = a.served.iter().map(|f| f.code).collect();
        assert_eq!((kept, apart), (vec![Code::BS201], vec![Code::BS102, Code::BS302]));
        assert_eq!(total(&a), 1, "the counts are made again");
        // The contract removes the dropped column's values: BS102 stays true.
        let mut a = assessment(&[Code::BS102, Code::BS302]);
        a.serve(SERVED_AT_CONTRACT);
        assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), [Code::BS102]);
    }

    #[test]
    fn a_long_no_go_is_one_short_line_per_finding_and_each_code_once() {
        let codes = [Code::BS402; 31];
        let mut a = assessment(&codes);
        for f in &mut a.findings {
            f.message = "live: person does not exist on the server: the statement fails, and \
                         this sentence goes on well past what fits on one line of a terminal"
                .into();
        }
        let reason = decide(&a, &[]).unwrap_err().reason;
        let lines: Vec<&str> = reason.lines().collect();
        assert_eq!(lines.len(), 33, "{reason}");
        assert!(lines.iter().all(|l| l.chars().count() < 160), "{reason}");
        assert_eq!(reason.matches("--accept-risk BS402").count(), 1, "{reason}");
        assert!(lines[1].ends_with('…'), "{}", lines[1]);
    }

    #[test]
    fn conditional_go_passes_and_records_its_conditions() {
        let detail = decide(&assessment(&[Code::BS101]), &[]).unwrap();
        assert_eq!(detail["verdict"], "CONDITIONAL GO");
        assert_eq!(detail["summary"]["high"], 1);
        assert_eq!(detail["conditions"].as_array().unwrap().len(), 1);
        assert!(detail["accepted_risks"].as_array().unwrap().is_empty());
    }
}
