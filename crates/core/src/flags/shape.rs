//! The release flag of an expand: which shape of a schema an application
//! instance uses, as the `search_path` it sets on its connections. An
//! expand makes it, off, in its own transaction: key `shape_<schema>`,
//! release `<schema>_<version>` (the new shape's schema), variants `new`
//! (`<schema>_<version>, <schema>`) and `old` (`<schema>`), and the old
//! one as the code default, so a flag that is off, or killed, sends every
//! instance to the old shape. `flags enable shape_public --percent 10`
//! moves a tenth of the instances (by targeting key) to the new shape,
//! `flags ramp <schema>_<version>` moves them step by step under the
//! triggers, and method A (a kill) moves them all back. Contract and
//! rollback delete it: the shapes are one again.

use postgres::Transaction;
use serde_json::{json, Value};

use super::store::record;
use super::{shape_key as key, FlagChange, FlagsError, State};
use crate::pg::db;
use crate::schema::flags as table;

/// Makes the flag of an expand of `schema` served as `new_schema`, off
/// (one a past expand left is replaced), in `tx`.
pub fn open(
    tx: &mut Transaction<'_>,
    schema: &str,
    new_schema: &str,
    version: &str,
    actor: &str,
) -> Result<(), FlagsError> {
    let key = key(schema);
    table::delete(tx, &key).map_err(db("replacing the shape flag"))?;
    let old = Value::String(schema.to_string());
    let description = format!(
        "which shape of schema {schema} an instance uses, as the search_path it sets: new is the \
         expand of {version} (served in {new_schema}), old the shape the running release reads"
    );
    let row = table::NewFlag {
        key: &key,
        variants: json!({ "new": format!("{new_schema}, {schema}"), "old": schema }),
        default_variant: "new",
        description: &description,
        owner: None,
        release: new_schema,
        code_default: Some(&old),
    };
    table::insert(tx, &row, actor).map_err(db("making the shape flag"))?;
    let change = change(&key, new_schema, State::Disabled);
    record(tx, &mut [change], actor, "an expand serves a new shape")
}

/// Deletes the flag of an expand of `schema` (`why`: contracted, rolled
/// back), in `tx`; nothing when there is none.
pub fn close(
    tx: &mut Transaction<'_>,
    schema: &str,
    new_schema: &str,
    actor: &str,
    why: &str,
) -> Result<(), FlagsError> {
    let key = key(schema);
    let state = table::list(tx).map_err(db("reading backstop.flags"))?;
    let Some(flag) = state.into_iter().find(|f| f.key == key) else { return Ok(()) };
    table::delete(tx, &key).map_err(db("deleting the shape flag"))?;
    let mut change = change(&key, new_schema, State::Disabled);
    change.from = flag.state;
    record(tx, &mut [change], actor, why)
}

fn change(key: &str, release: &str, to: State) -> FlagChange {
    FlagChange {
        key: key.to_string(),
        release: release.to_string(),
        from: State::Disabled,
        to,
        percent: None,
        etag: String::new(),
        ramp: None,
    }
}
