//! The incident's texts from templates: what the templates get besides the
//! incident itself is worked out here once, from what was done (never from
//! what was planned), so that no text can say a step ran that did not: the
//! public actions (flags off, a restore, the release undone), what did not
//! work in an outage, what kind of data was visible in an exposure.

use std::path::Path;

use chrono::{DateTime, Utc};
use minijinja::{context, Environment};
use serde_json::{json, Value};

use super::{Incident, IncidentError, Restored};

/// The built-in templates, by name.
pub const TEMPLATES: [(&str, &str); 7] = [
    ("report.md", include_str!("report.md")),
    ("slack_alert.md", include_str!("slack_alert.md")),
    ("slack_escalated.md", include_str!("slack_escalated.md")),
    ("slack_method.md", include_str!("slack_method.md")),
    ("slack_resolved.md", include_str!("slack_resolved.md")),
    ("status_page.txt", include_str!("status_page.txt")),
    ("user_email.txt", include_str!("user_email.txt")),
];

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// What users may be told a restore brought back: only as far back as it
/// went. A backup taken before the update's latest change leaves the
/// changes before it in place, so it is never "the state before the
/// update"; where the record does not say what was taken back, only that a
/// backup was restored.
fn restored_what(r: &Restored) -> String {
    match r.undid.as_deref() {
        Some([]) | None => "restored our data from a backup".to_string(),
        Some([_]) => {
            "restored our data from a backup taken before the update's latest database change"
                .to_string()
        }
        Some(many) => format!(
            "restored our data from a backup taken before the update's latest {} database changes",
            many.len()
        ),
    }
}

/// What users may be told was done: only what finished.
fn public_actions(i: &Incident) -> Vec<String> {
    let mut out = Vec::new();
    let done =
        |prefix: &str| i.methods.iter().any(|m| m.done.iter().any(|d| d.starts_with(prefix)));
    if done("turned the release's flags off") {
        out.push("switched off the new features of the update".to_string());
    }
    if let Some(r) = &i.restored {
        out.push(restored_what(r));
    }
    if i.methods.iter().any(|m| m.method == "C" && m.outcome == "ok") {
        out.push("undid the update".to_string());
    }
    out
}

/// What did not work, as users would say it, from the decision's reason.
fn outage_what(i: &Incident) -> String {
    let trigger = i.trigger.as_deref().unwrap_or("").to_lowercase();
    if trigger.contains("error") || trigger.contains("5xx") || trigger.contains("fail") {
        format!("some requests to {} failed", i.product)
    } else if trigger.contains("latenc") || trigger.contains("slow") || trigger.contains("p95") {
        format!("{} was slow to answer", i.product)
    } else {
        format!("{} did not work as it should", i.product)
    }
}

/// What kind of data may have been visible: per open table, its records
/// and their fields (`client records (name, company)`).
fn data_kinds(i: &Incident) -> Vec<String> {
    let Some(e) = &i.exposure else { return Vec::new() };
    e.tables
        .iter()
        .filter(|t| t.rows > 0 && (!t.rls_enabled || t.policies == 0))
        .map(|t| {
            let name = t.table.rsplit('.').next().unwrap_or(&t.table).replace('_', " ");
            let name = name.strip_suffix('s').unwrap_or(&name).to_string();
            if t.columns.is_empty() {
                format!("{name} records")
            } else {
                format!("{name} records ({})", t.columns.join(", ").replace('_', " "))
            }
        })
        .collect()
}

/// Renders template `name` for `incident`, the user's version from `dir`
/// when it has one.
pub fn render(
    name: &str,
    incident: &Incident,
    dir: Option<&Path>,
) -> Result<String, IncidentError> {
    let err = |e: minijinja::Error| IncidentError::Template {
        name: name.to_string(),
        message: e.to_string(),
    };
    let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        Some(path) => std::fs::read_to_string(&path).map_err(|e| IncidentError::Template {
            name: path.display().to_string(),
            message: e.to_string(),
        })?,
        None => TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()).ok_or_else(
            || IncidentError::Template { name: name.into(), message: "no such template".into() },
        )?,
    };
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_template_owned(name.to_string(), source).map_err(err)?;
    let timeline: Vec<Value> = incident
        .timeline
        .iter()
        .map(|e| json!({ "at": e.at.format("%H:%M:%S").to_string(), "kind": e.kind, "summary": e.summary, "actor": e.actor }))
        .collect();
    let exposure = incident.exposure.as_ref();
    env.get_template(name)
        .map_err(err)?
        .render(context! {
            i => incident,
            opened => when(incident.opened_at),
            closed => when(incident.closed_at),
            since => when(exposure.and_then(|e| e.since)),
            until => when(exposure.and_then(|e| e.until)),
            actions => public_actions(incident),
            outage_what => outage_what(incident),
            data_kinds => data_kinds(incident),
            method => incident.last_method(),
            methods_ok => incident.methods_ok(),
            settled => incident.settled(),
            taken => when(incident.restored.as_ref().and_then(|r| r.taken_at)),
            timeline => timeline,
        })
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{ExposedTable, Exposure, Kind, MethodRun, Restored};

    fn incident() -> Incident {
        let mut i = Incident::empty("Acme", "app");
        i.id = Some(7);
        i.opened_at = Some(Utc::now());
        i.lasted = "4 min".into();
        i.open = true;
        i.opened_by = "method C: RLS leak".into();
        i
    }

    fn method(m: &str, outcome: &str, done: &[&str], failed: Option<&str>) -> MethodRun {
        MethodRun {
            method: m.into(),
            outcome: outcome.into(),
            reason: "internal reason".into(),
            started_at: Utc::now(),
            ended_at: Some(Utc::now()),
            done: done.iter().map(|d| d.to_string()).collect(),
            failed: failed.map(str::to_string),
            flags_off: 2,
        }
    }

    #[test]
    fn a_method_c_incident_claims_no_restore_and_tells_users_about_the_exposure() {
        // Regression: after a manual method C, the texts claimed a restore
        // C never did and told users of "a rise in errors" when 47 users'
        // records had been visible to others.
        let mut i = incident();
        i.kind = Kind::Exposure;
        i.methods.push(method(
            "C",
            "ok",
            &["turned the release's flags off (2 flag(s))", "ran the down migrations: reverted 2"],
            None,
        ));
        i.exposure = Some(Exposure {
            tables: vec![ExposedTable {
                table: "clients".into(),
                rows: 120,
                owners: Some(47),
                rls_enabled: false,
                policies: 0,
                columns: vec!["name".into(), "company".into()],
            }],
            rows: 120,
            owners: 47,
            open: true,
            since: Some(Utc::now() - chrono::Duration::hours(3)),
            until: Some(Utc::now()),
            lasted: Some("3 h".into()),
            exported: vec!["120 rows of clients".into()],
            folder: Some("forensics/x".into()),
        });
        for name in ["report.md", "user_email.txt", "slack_method.md", "status_page.txt"] {
            let text = render(name, &i, None).unwrap();
            assert!(!text.to_lowercase().contains("restor"), "{name} claims a restore:\n{text}");
        }
        let email = render("user_email.txt", &i, None).unwrap();
        assert!(email.contains("client records (name, company)"), "{email}");
        assert!(email.contains("47"), "{email}");
        assert!(!email.contains("error"), "{email}");
        let status = render("status_page.txt", &i, None).unwrap();
        assert!(!status.contains("internal reason") && !status.contains("clients"), "{status}");
    }

    #[test]
    fn a_failed_restore_is_not_told_as_done_and_outages_say_what_failed() {
        let mut i = incident();
        i.trigger = Some("error rate above 0.05 for 5 min".into());
        i.methods.push(method("A", "ok", &["turned the release's flags off (2 flag(s))"], None));
        i.methods.push(method(
            "B",
            "failed",
            &["turned the release's flags off (2 flag(s))"],
            Some("restore: pg_restore failed"),
        ));
        i.escalated = true;
        let email = render("user_email.txt", &i, None).unwrap();
        assert!(email.contains("some requests to Acme failed"), "{email}");
        assert!(!email.to_lowercase().contains("restored"), "{email}");
        let report = render("report.md", &i, None).unwrap();
        assert!(report.contains("STOPPED at restore: pg_restore failed"), "{report}");
        i.restored = Some(restored(None, None));
        // Slack says what each method did, flags included, and where B stopped.
        let slack = render("slack_resolved.md", &i, None).unwrap();
        assert!(
            slack.contains("Method A: done (turned the release's flags off (2 flag(s)))"),
            "{slack}"
        );
        assert!(slack.contains("Method B: stopped at restore: pg_restore failed"), "{slack}");
        let escalated = render("slack_escalated.md", &i, None).unwrap();
        assert!(
            escalated.contains("Method A before it: done (turned the release's flags off"),
            "{escalated}"
        );
    }

    fn restored(undid: Option<&[&str]>, at: Option<&str>) -> Restored {
        Restored {
            backup: "b2".into(),
            taken_at: Some(Utc::now()),
            undid: undid.map(|u| u.iter().map(|v| v.to_string()).collect()),
            at: at.map(str::to_string),
            kept_in: "app_pre".into(),
            rows_since: Some(12),
            taken_back: None,
        }
    }

    #[test]
    fn a_restore_is_told_with_the_rows_it_took_back_both_ways() {
        let mut i = incident();
        i.methods.push(method("B", "ok", &[], None));
        let mut r = restored(Some(&["3_v2"]), Some("2_v1"));
        let report =
            render("report.md", &Incident { restored: Some(r.clone()), ..i.clone() }, None)
                .unwrap();
        assert!(report.contains("12 row(s) more than the backup held, written after the migration (rows changed or deleted since were not counted)"), "{report}");
        r.taken_back =
            Some(crate::incident::story::TakenBack { added: 12, deleted: 2, changed: 3645 });
        i.restored = Some(r);
        let report = render("report.md", &i, None).unwrap();
        assert!(report.contains("the restore took back 12 row(s) written after the backup, brought back 2 deleted and changed back 3645"), "{report}");
        let slack = render("slack_resolved.md", &i, None).unwrap();
        assert!(slack.contains("changed back 3645"), "{slack}");
    }

    #[test]
    fn a_restore_of_the_latest_migrations_backup_is_not_told_as_the_state_before_the_update() {
        // Regression: method B restored the backup taken before only the
        // latest migration, the release's first migration still applied,
        // and every text said "restored our data to its state before the
        // update".
        let mut i = incident();
        i.trigger = Some("error rate above 0.05 for 5 min".into());
        let restore = "restored the database: backup b2 restored";
        i.methods.push(method("B", "ok", &[restore], None));
        i.restored = Some(restored(Some(&["3_notes"]), Some("2_clients")));
        for name in ["status_page.txt", "user_email.txt"] {
            let text = render(name, &i, None).unwrap();
            assert!(!text.contains("its state before the update"), "{name}:\n{text}");
            assert!(
                text.contains("restored our data from a backup taken before the update's latest database change"),
                "{name}:\n{text}"
            );
            assert!(!text.contains("3_notes") && !text.contains("b2"), "{name}:\n{text}");
        }
        let report = render("report.md", &i, None).unwrap();
        assert!(report.contains("Method B restored backup b2 (taken "), "{report}");
        assert!(report.contains("it took back 3_notes; the database is at 2_clients, and what the migrations up to it made is still there"), "{report}");

        i.restored = Some(restored(Some(&["2_clients", "3_notes"]), Some("1_users")));
        let status = render("status_page.txt", &i, None).unwrap();
        assert!(status.contains("before the update's latest 2 database changes"), "{status}");
        // A record that does not say what was taken back claims no point in time.
        i.restored = Some(restored(None, None));
        let status = render("status_page.txt", &i, None).unwrap();
        assert!(status.contains("We restored our data from a backup."), "{status}");
        let report = render("report.md", &i, None).unwrap();
        assert!(report.contains("which migrations it took back was not recorded"), "{report}");
    }

    #[test]
    fn a_method_done_while_the_triggers_still_breach_is_not_monitoring() {
        // Regression: the status page said "Monitoring" once the methods
        // had finished, with errors still at 8 %.
        let mut i = incident();
        i.trigger = Some("error rate above 0.05 for 5 min".into());
        i.methods.push(method("A", "ok", &["turned the release's flags off (2 flag(s))"], None));
        for still in [Some("rollback"), Some("hold"), None] {
            i.latest_decision = still.map(str::to_string);
            let status = render("status_page.txt", &i, None).unwrap();
            assert!(status.starts_with("Acme: Investigating"), "{still:?}:\n{status}");
            assert!(status.contains("We are still working on it."), "{still:?}:\n{status}");
            assert!(!status.contains("Monitoring"), "{still:?}:\n{status}");
            let email = render("user_email.txt", &i, None).unwrap();
            assert!(email.contains("We are still working on it."), "{email}");
        }
        i.latest_decision = Some("ok".into());
        let status = render("status_page.txt", &i, None).unwrap();
        assert!(status.starts_with("Acme: Monitoring"), "{status}");
        assert!(status.contains("The problem has stopped"), "{status}");
        assert!(!status.contains("still working"), "{status}");
        // Clear triggers do not make a stopped method settled.
        i.methods.push(method("B", "failed", &[], Some("restore: pg_restore failed")));
        let status = render("status_page.txt", &i, None).unwrap();
        assert!(status.starts_with("Acme: Investigating"), "{status}");
    }
}
