//! `explain`: a query's plan reads the named table through an index, not a
//! sequential scan (the runbooks' "should use Index Scan"). The query is
//! planned, never run.

use postgres::{Client, SimpleQueryMessage};
use serde_json::Value;

use super::{db, pg_message, table, Outcome};
use crate::verify::config::ExplainCheck;
use crate::verify::VerifyError;

/// How one plan node reads the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub node: String,
    pub index: Option<String>,
}

pub(crate) fn run(c: &ExplainCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let rel = match table(client, &c.table)? {
        Ok(rel) => rel,
        Err(why) => return Ok(Outcome::Fail(why)),
    };
    let mut tx = client.transaction().map_err(db("starting a transaction"))?;
    if c.disable_seqscan {
        tx.batch_execute("SET LOCAL enable_seqscan = off").map_err(db("setting enable_seqscan"))?;
    }
    let explained = match tx.simple_query(&format!("EXPLAIN (VERBOSE, FORMAT JSON) {}", c.query)) {
        Ok(m) => m,
        Err(e) if e.as_db_error().is_some() => {
            return Ok(Outcome::Fail(format!("the query cannot be planned: {}", pg_message(&e))))
        }
        Err(e) => return Err(VerifyError::Db(crate::pg::DbError::new("planning the query", e))),
    };
    let text = explained
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default();
    let plan: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut accesses = Vec::new();
    if let Some(root) = plan.get(0).and_then(|p| p.get("Plan")) {
        collect(root, &rel.schema, &rel.name, &mut accesses);
    }
    let how = if c.disable_seqscan { " (planned with enable_seqscan off)" } else { "" };
    Ok(judge(&accesses, &rel.to_string(), c.index.as_deref()).map_or_else(
        |why| Outcome::Fail(format!("{why}{how}")),
        |ok| Outcome::Pass(format!("{ok}{how}")),
    ))
}

/// Every node of the plan that reads `schema.name`.
pub(crate) fn collect(node: &Value, schema: &str, name: &str, out: &mut Vec<Access>) {
    let reads = node.get("Relation Name").and_then(Value::as_str) == Some(name)
        && node.get("Schema").and_then(Value::as_str).is_none_or(|s| s == schema);
    if reads {
        let node_type = node.get("Node Type").and_then(Value::as_str).unwrap_or("?").to_string();
        let index =
            node.get("Index Name").and_then(Value::as_str).map(str::to_string).or_else(|| {
                // A bitmap heap scan names its index in the bitmap index scan below it.
                node.get("Plans")
                    .and_then(Value::as_array)
                    .and_then(|kids| kids.iter().find_map(|k| k.get("Index Name")?.as_str()))
                    .map(str::to_string)
            });
        out.push(Access { node: node_type, index });
    }
    if let Some(kids) = node.get("Plans").and_then(Value::as_array) {
        for kid in kids {
            collect(kid, schema, name, out);
        }
    }
}

/// Pass when every read of the table goes through an index (the named
/// one, if given).
pub(crate) fn judge(
    accesses: &[Access],
    table: &str,
    index: Option<&str>,
) -> Result<String, String> {
    if accesses.is_empty() {
        return Err(format!("the plan does not read {table}"));
    }
    let describe = |a: &Access| match &a.index {
        Some(i) => format!("{} using {i} on {table}", a.node),
        None => format!("{} on {table}", a.node),
    };
    if let Some(scan) = accesses.iter().find(|a| a.index.is_none()) {
        return Err(format!("{} (no index used)", describe(scan)));
    }
    if let Some(want) = index {
        if let Some(other) = accesses.iter().find(|a| a.index.as_deref() != Some(want)) {
            return Err(format!("{}, not {want}", describe(other)));
        }
    }
    Ok(accesses.iter().map(describe).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_scans_count_as_index_use_and_seq_scans_do_not() {
        let plan: Value = serde_json::json!({
            "Node Type": "Nested Loop",
            "Plans": [
                {"Node Type": "Bitmap Heap Scan", "Relation Name": "clients", "Schema": "public",
                 "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "clients_user_id_idx"}]},
                {"Node Type": "Seq Scan", "Relation Name": "clients", "Schema": "other"},
                {"Node Type": "Seq Scan", "Relation Name": "users", "Schema": "public"}
            ]
        });
        let mut found = Vec::new();
        collect(&plan, "public", "clients", &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(
            judge(&found, "clients", None).unwrap(),
            "Bitmap Heap Scan using clients_user_id_idx on clients"
        );
        assert!(judge(&found, "clients", Some("other_idx")).unwrap_err().contains("not other_idx"));
        let mut users = Vec::new();
        collect(&plan, "public", "users", &mut users);
        assert_eq!(judge(&users, "users", None).unwrap_err(), "Seq Scan on users (no index used)");
        assert!(judge(&[], "x", None).unwrap_err().contains("does not read x"));
    }
}
