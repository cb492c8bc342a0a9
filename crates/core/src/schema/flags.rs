//! `backstop.flags`: the release flags as stored, and the `NOTIFY` on
//! their channel that every `backstop flags serve` listens to. The rules (which
//! change is allowed, the rollout's targeting, the ETag) are the flags
//! domain's; this is where they are read and written.

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Error;

/// The channel `NOTIFY` uses; its payload is the new ETag.
pub const CHANNEL: &str = "backstop_flags";

/// Whether a flag serves its variants or is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Enabled,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enabled => "ENABLED",
            State::Disabled => "DISABLED",
        }
    }

    fn parse(text: &str) -> State {
        if text == "ENABLED" {
            State::Enabled
        } else {
            State::Disabled
        }
    }
}

/// One flag, as stored and as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub key: String,
    pub state: State,
    /// Variant name → value.
    pub variants: Map<String, Value>,
    pub default_variant: String,
    /// flagd's JsonLogic targeting; `None` serves the default variant.
    pub targeting: Option<Value>,
    pub description: String,
    pub owner: Option<String>,
    pub release: String,
    /// What the application's code falls back to when the flag is off.
    pub code_default: Option<Value>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub updated_by: String,
}

/// Every flag, by key; none when the table does not exist yet.
pub fn list(client: &mut impl GenericClient) -> Result<Vec<Flag>, Error> {
    if !super::has(client, "backstop.flags")? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select key, state, variants, default_variant, targeting, description, owner,
                release, code_default, updated_at, updated_by
           from backstop.flags order by key",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Flag {
            key: r.get(0),
            state: State::parse(r.get(1)),
            variants: match r.get::<_, Value>(2) {
                Value::Object(m) => m,
                _ => Default::default(),
            },
            default_variant: r.get(3),
            targeting: r.get(4),
            description: r.get(5),
            owner: r.get(6),
            release: r.get(7),
            code_default: r.get(8),
            updated_at: r.get(9),
            updated_by: r.get(10),
        })
        .collect())
}

/// Locks the flag `key` for a change in this transaction; whether it exists.
pub fn lock(client: &mut impl GenericClient, key: &str) -> Result<bool, Error> {
    Ok(client
        .query_one("select exists (select from backstop.flags where key = $1 for update)", &[&key])?
        .get(0))
}

/// Sets `key`'s state (and, when enabling, its targeting).
pub fn set_state(
    client: &mut impl GenericClient,
    key: &str,
    state: State,
    targeting: Option<&Value>,
    actor: &str,
) -> Result<(), Error> {
    match state {
        State::Enabled => client.execute(
            "update backstop.flags set state = 'ENABLED', targeting = $2, updated_at = now(), updated_by = $3
              where key = $1",
            &[&key, &targeting, &actor],
        )?,
        State::Disabled => client.execute(
            "update backstop.flags set state = 'DISABLED', updated_at = now(), updated_by = $2 where key = $1",
            &[&key, &actor],
        )?,
    };
    Ok(())
}

/// Turns off every flag of `release`; each flag's key and state before.
pub fn disable_release(
    client: &mut impl GenericClient,
    release: &str,
    actor: &str,
) -> Result<Vec<(String, State)>, Error> {
    let rows = client.query(
        "select key, state from backstop.flags where release = $1 order by key for update",
        &[&release],
    )?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    client.execute(
        "update backstop.flags set state = 'DISABLED', updated_at = now(), updated_by = $2
          where release = $1",
        &[&release, &actor],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), State::parse(r.get(1)))).collect())
}

/// A flag declared in config, created off.
#[derive(Debug, Clone)]
pub struct NewFlag<'a> {
    pub key: &'a str,
    pub variants: Value,
    pub default_variant: &'a str,
    pub description: &'a str,
    pub owner: Option<&'a str>,
    pub release: &'a str,
    pub code_default: Option<&'a Value>,
}

/// Deletes a flag; whether there was one.
pub fn delete(client: &mut impl GenericClient, key: &str) -> Result<bool, Error> {
    Ok(client.execute("delete from backstop.flags where key = $1", &[&key])? > 0)
}

/// Creates a flag, off.
pub fn insert(client: &mut impl GenericClient, f: &NewFlag<'_>, actor: &str) -> Result<(), Error> {
    client.execute(
        "insert into backstop.flags
           (key, state, variants, default_variant, description, owner, release, code_default, updated_by)
         values ($1, 'DISABLED', $2, $3, $4, $5, $6, $7, $8)",
        &[
            &f.key,
            &f.variants,
            &f.default_variant,
            &f.description,
            &f.owner,
            &f.release,
            &f.code_default,
            &actor,
        ],
    )?;
    Ok(())
}

/// Tells every listener the flags changed; sent when the transaction commits.
pub fn notify(client: &mut impl GenericClient, etag: &str) -> Result<(), Error> {
    client.execute("select pg_notify($1, $2)", &[&CHANNEL, &etag])?;
    Ok(())
}

/// Makes `to`'s flags what `from`'s are: a restore puts back the data, and
/// the flags stay as they are now (a kill before the restore stays a kill).
pub fn carry_over(from: &mut Client, to: &mut Client) -> Result<u64, Error> {
    if !super::has(from, "backstop.flags")? {
        return Ok(0);
    }
    let rows: Value = from
        .query_one("select coalesce(jsonb_agg(to_jsonb(f)), '[]') from backstop.flags f", &[])?
        .get(0);
    super::ensure(to)?;
    let mut tx = to.transaction()?;
    tx.execute("delete from backstop.flags", &[])?;
    let n = tx.execute(
        "insert into backstop.flags select * from jsonb_populate_recordset(null::backstop.flags, $1)",
        &[&rows],
    )?;
    tx.commit()?;
    Ok(n)
}
