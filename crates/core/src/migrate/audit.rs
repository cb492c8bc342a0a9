//! What a migrate or rollback writes to the audit log besides its
//! outcome: that it started, that it was refused, and why the person who
//! ran it said it was run (`rollback --reason`).

use postgres::Client;
use serde_json::json;

use super::{ApplyError, Settings};
use crate::schema::{self, events};

/// Adds the reason the person gave for the run, if any, to an event's details.
pub(super) fn said(details: &mut serde_json::Value, settings: &Settings) {
    if let Some(reason) = &settings.reason {
        details["reason"] = json!(reason);
    }
}

/// Records that a run starts, so that one killed before its outcome shows
/// (`backstop status`).
pub(super) fn started(
    client: &mut Client,
    kind: &str,
    versions: Vec<String>,
    reason: Option<&str>,
) -> Result<(), ApplyError> {
    if !schema::exists(client).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("reading backstop.events", source))
    })? {
        return Ok(());
    }
    let details = match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    let event = events::Event { kind, outcome: "started", versions, details };
    events::record(client, &event).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("writing the start event", source))
    })
}

/// Audits a run refused before it started (drift, a missing down) and
/// hands the error back. Best effort: the refusal itself is what matters.
pub(super) fn refused(client: &mut Client, kind: &str, err: ApplyError) -> ApplyError {
    let versions = match &err {
        ApplyError::Drift(d) => d.iter().map(|d| d.version.clone()).collect(),
        ApplyError::OutOfOrder { older, .. } => older.clone(),
        // Labels are `VERSION_name`; the log holds versions, as elsewhere.
        ApplyError::RowsBlock(blocks) => blocks.iter().map(|b| b.version.clone()).collect(),
        ApplyError::MissingDown(labels) => labels
            .iter()
            .map(|l| l.split_once('_').map_or(l.as_str(), |(version, _)| version).to_string())
            .collect(),
        _ => Vec::new(),
    };
    if schema::exists(client).unwrap_or(false) {
        let event = events::Event {
            kind,
            outcome: "refused",
            versions,
            details: json!({ "reason": err.to_string() }),
        };
        let _ = events::record(client, &event);
    }
    err
}

/// Refuses (audited) a rollback of `chosen` beneath a migration a tool's
/// history records as applied and Backstop has not
/// (`adopt::in_step::beneath`). Only where the tool's history is kept: a
/// throwaway copy holds none.
pub(super) fn not_beneath(
    client: &mut Client,
    migrations: &[crate::source::Migration],
    settings: &Settings,
    chosen: &[&super::Entry],
) -> Result<(), ApplyError> {
    if !settings.tool_history.writes() {
        return Ok(());
    }
    let reverting: Vec<&str> = chosen.iter().map(|e| e.version.as_str()).collect();
    match crate::adopt::in_step::beneath(client, migrations, &reverting)? {
        Some(e) => Err(refused(client, "rollback", ApplyError::ToolHistory(e))),
        None => Ok(()),
    }
}

/// Refuses (audited) a plain migrate or rollback while an expand is open:
/// it would change the tables under both shapes the expand serves.
pub(super) fn not_expanded(client: &mut Client, kind: &str) -> Result<(), ApplyError> {
    let open = crate::schema::expands::open(client).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("reading the expand in progress", source))
    })?;
    match open {
        Some(e) => Err(refused(
            client,
            kind,
            ApplyError::Expanded { version: e.version, new_schema: e.new_schema },
        )),
        None => Ok(()),
    }
}
