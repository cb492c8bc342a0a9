//! What an incident's own events say happened, read into the model the
//! texts are made from: the decision that opened it, each method with the
//! steps that were done (and the one that failed, if one did), what was
//! exposed and exported, what a restore set aside. A step that failed or
//! never ran is never told as done.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::kit::duration;
use crate::schema::events::Logged;

/// One method of the incident, as its events tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodRun {
    /// `A`, `B` or `C`.
    pub method: String,
    /// `ok`, `failed`, or `started` (no outcome recorded: interrupted).
    pub outcome: String,
    /// Why it was carried out, as the operator or watch said (internal).
    pub reason: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The steps that were done, in words.
    pub done: Vec<String>,
    /// The step that failed and why, if one did.
    pub failed: Option<String>,
    /// The flags it turned off (internal names).
    pub flags_off: usize,
}

/// A table the release created, as method C found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExposedTable {
    pub table: String,
    pub rows: i64,
    pub owners: Option<i64>,
    pub rls_enabled: bool,
    pub policies: i64,
    /// What kind of data it holds: its columns besides key and owner.
    pub columns: Vec<String>,
}

/// What the release exposed, as method C counted it before undoing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    pub tables: Vec<ExposedTable>,
    pub rows: i64,
    /// Distinct owners over the tables that have an owner column.
    pub owners: i64,
    /// Whether rows were readable beyond their owners: a table without
    /// row-level security, or without a policy.
    pub open: bool,
    /// From when the data was there (its migration applied) to when
    /// method C removed it.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// That span for people ("3 h 20 min").
    pub lasted: Option<String>,
    /// What was exported before the undo: files and counts, in words.
    pub exported: Vec<String>,
    /// The forensics folder.
    pub folder: Option<String>,
}

/// What a method B restore brought back, and what it did with the state
/// it replaced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restored {
    pub backup: String,
    /// When the backup was taken (`None` in records of older versions).
    pub taken_at: Option<DateTime<Utc>>,
    /// The migrations the restore took back (`version_name`, oldest
    /// first): those the backup predates. `None` where it was not
    /// recorded, and then no text says what the restore took back.
    pub undid: Option<Vec<String>>,
    /// The latest migration still applied after it: its schema, and that
    /// of every migration before it, is still there.
    pub at: Option<String>,
    /// Where the replaced state is kept (a database or a backup).
    pub kept_in: String,
    /// Rows that state held beyond the backup: written after the migration.
    pub rows_since: Option<i64>,
    /// What the restore took back, row by row, where it was counted.
    pub taken_back: Option<TakenBack>,
}

/// The rows a restore took back, both ways: written after the backup
/// (gone now), deleted after it (back now) and changed after it (as the
/// backup had them now).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TakenBack {
    pub added: i64,
    pub deleted: i64,
    pub changed: i64,
}

/// The sentence a finished step says about what was done.
fn step_done(name: &str, detail: &str) -> String {
    match name {
        "flags off" if detail.starts_with("no flag") => "found no flag on to turn off".to_string(),
        "flags off" => format!("turned the release's flags off ({detail})"),
        "after_kill hook" | "stop_writes hook" | "resume_writes hook" => {
            format!("ran the {name} ({detail})")
        }
        "restore" => format!("restored the database: {detail}"),
        "assess exposure" => format!("counted what was exposed: {detail}"),
        "export forensics" => format!("exported the release's tables: {detail}"),
        "down migrations" => format!("ran the down migrations: {detail}"),
        "protected tables" => format!("checked the protected tables: {detail}"),
        "verify" => format!("verified the database: {detail}"),
        "count what the restore took back" => detail.to_string(),
        other => format!("{other}: {detail}"),
    }
}

/// Reads method `started` and its outcome (if any) into a [`MethodRun`].
pub(super) fn method_run(started: &Logged, outcome: Option<&Logged>) -> MethodRun {
    let d = &started.details;
    let mut run = MethodRun {
        method: d["method"].as_str().unwrap_or("?").to_string(),
        outcome: outcome.map_or("started", |o| o.outcome.as_str()).to_string(),
        reason: d["reason"].as_str().unwrap_or("").to_string(),
        started_at: started.at,
        ended_at: outcome.map(|o| o.at),
        done: Vec::new(),
        failed: None,
        flags_off: 0,
    };
    let Some(end) = outcome else { return run };
    for s in end.details["steps"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("?");
        let detail = s["detail"].as_str().unwrap_or("");
        if s["ok"] == true {
            if name == "flags off" {
                run.flags_off += detail
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
            }
            run.done.push(step_done(name, detail));
        } else {
            run.failed = Some(format!("{name}: {detail}"));
        }
    }
    // Method C with no verify check: said, never claimed as verified.
    if let Some(why) = end.details["not_verified"].as_str() {
        run.done.push(format!("did not verify the database: {why}"));
    }
    run
}

/// What method C's outcome event says was exposed and kept.
pub(super) fn exposure(end: &Logged) -> Option<Exposure> {
    let tables: Vec<ExposedTable> = end.details["exposure"]
        .as_array()?
        .iter()
        .map(|t| ExposedTable {
            table: t["table"].as_str().unwrap_or("?").to_string(),
            rows: t["rows"].as_i64().unwrap_or(0),
            owners: t["owners"].as_i64(),
            rls_enabled: t["rls_enabled"] == true,
            policies: t["policies"].as_i64().unwrap_or(0),
            columns: t["columns"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect();
    let since = end.details["exposure"]
        .as_array()?
        .iter()
        .filter_map(|t| t["since"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc)))
        .min();
    let until = Some(end.at);
    let mut exported: Vec<String> =
        tables.iter().map(|t| format!("{} rows of {}", t.rows, t.table)).collect();
    for k in end.details["kept"].as_array().into_iter().flatten() {
        let (table, column, rows) = (
            k["table"].as_str().unwrap_or("?"),
            k["column"].as_str(),
            k["rows"].as_i64().unwrap_or(0),
        );
        match (column, k["what"].as_str()) {
            (Some(c), Some("column")) => exported.push(format!("{rows} values of {table}.{c}")),
            (_, Some("table")) => {}
            (_, what) => exported.push(format!("{rows} rows of {table} ({})", what.unwrap_or(""))),
        }
    }
    Some(Exposure {
        rows: tables.iter().map(|t| t.rows).sum(),
        owners: tables.iter().filter_map(|t| t.owners).sum(),
        open: tables.iter().any(|t| t.rows > 0 && (!t.rls_enabled || t.policies == 0)),
        lasted: since.and_then(|s| until.map(|u| duration::age(u - s))),
        since,
        until,
        tables,
        exported,
        folder: end.details["forensics"].as_str().map(str::to_string),
    })
}

/// What method B's outcome event says the restore set aside.
pub(super) fn restored(end: &Logged) -> Option<Restored> {
    let r = &end.details["restore"];
    let names = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
    };
    Some(Restored {
        backup: r["backup"].as_str()?.to_string(),
        taken_at: r["taken_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        undid: names(&r["undid"]),
        at: r["at"].as_str().map(str::to_string),
        kept_in: r["kept_in"].as_str().unwrap_or("?").to_string(),
        rows_since: r["rows_since"].as_i64(),
        taken_back: r["taken_back"]["added"].as_i64().map(|added| TakenBack {
            added,
            deleted: r["taken_back"]["deleted"].as_i64().unwrap_or(0),
            changed: r["taken_back"]["changed"].as_i64().unwrap_or(0),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn logged(outcome: &str, details: Value) -> Logged {
        Logged {
            id: 1,
            at: Utc::now(),
            kind: "method".into(),
            outcome: outcome.into(),
            actor: "ops@host".into(),
            versions: vec![],
            details,
        }
    }

    #[test]
    fn a_verify_that_did_not_run_is_said_and_never_told_as_verified() {
        let started = logged("started", json!({ "method": "C", "reason": "errors" }));
        let end = logged(
            "ok",
            json!({ "method": "C", "not_verified": "no verify check runs after a rollback (see [verify])",
                    "steps": [{ "name": "down migrations", "ok": true, "detail": "2 reverted" }] }),
        );
        let run = method_run(&started, Some(&end));
        assert!(run.done.iter().all(|d| !d.starts_with("verified")), "{:?}", run.done);
        assert_eq!(
            run.done.last().map(String::as_str),
            Some(
                "did not verify the database: no verify check runs after a rollback (see [verify])"
            )
        );
    }

    #[test]
    fn a_failed_step_is_never_told_as_done() {
        let started = logged("started", json!({ "method": "B", "reason": "errors" }));
        let end = logged(
            "failed",
            json!({ "method": "B", "steps": [
                { "name": "flags off", "ok": true, "detail": "2 flag(s) of release v2 off" },
                { "name": "restore", "ok": false, "detail": "pg_restore failed" },
            ]}),
        );
        let run = method_run(&started, Some(&end));
        assert_eq!(run.flags_off, 2);
        assert_eq!(run.done.len(), 1);
        assert!(run.done[0].starts_with("turned the release's flags off"));
        assert_eq!(run.failed.as_deref(), Some("restore: pg_restore failed"));
        assert!(restored(&end).is_none(), "no restore is told where none was recorded");
        let interrupted = method_run(&started, None);
        assert_eq!(interrupted.outcome, "started");
        assert!(interrupted.done.is_empty());
    }

    #[test]
    fn an_exposure_counts_rows_owners_and_whether_it_was_open() {
        let end = logged(
            "ok",
            json!({ "method": "C", "exposure": [
                { "table": "clients", "rows": 47, "owners": 12, "rls_enabled": false, "policies": 0,
                  "columns": ["name", "company"], "since": "2026-01-07T10:00:00Z" },
            ], "kept": [
                { "table": "public.orders", "column": "client_id", "what": "column", "rows": 300 },
            ]}),
        );
        let e = exposure(&end).unwrap();
        assert_eq!((e.rows, e.owners, e.open), (47, 12, true));
        assert!(e.exported.contains(&"300 values of public.orders.client_id".to_string()));
        assert!(e.lasted.is_some());
    }
}
