//! Snapshots of a copy (its schema and every table's content) and how two
//! of them differ, named by object: the round trip and the scenarios all
//! prove their claim by comparing the copy with its start.

use postgres::Client;

use super::outcome::Difference;
use super::RehearseError;
use crate::pg::checksum::{table_checksums_prepared, TableChecksum};
use crate::pg::fingerprint::Schema;
use crate::pg::tracked::{Part, Tracked, Written};
use crate::pg::Prepared;

/// A snapshot of a copy: its schema and every table's content.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub(super) schema: Schema,
    pub(super) tables: Vec<TableChecksum>,
}

impl From<Part> for Snapshot {
    fn from(part: Part) -> Snapshot {
        Snapshot { schema: part.schema, tables: part.tables }
    }
}

impl Snapshot {
    /// How many rows `table` (`schema.name`) held, where the snapshot
    /// counted it.
    pub(super) fn rows_of(&self, table: &str) -> Option<i64> {
        self.tables.iter().find(|t| t.table == table).map(|t| t.rows)
    }

    /// The snapshot split by where each object and table lives: in one of
    /// `schemas`, and elsewhere (other schemas, and objects of no schema
    /// such as an extension kept in `pg_catalog`). What a restore in place
    /// put back is the first part.
    pub(super) fn split(&self, schemas: &[String]) -> (Snapshot, Snapshot) {
        let within = |schema: &str| schemas.iter().any(|s| s == schema);
        let part = |objects: &[crate::pg::fingerprint::Object]| {
            let (inside, outside): (Vec<_>, Vec<_>) =
                objects.iter().cloned().partition(|o| within(o.schema()));
            (inside, outside)
        };
        let (objects_in, objects_out) = part(&self.schema.objects);
        let (cosmetic_in, cosmetic_out) = part(&self.schema.cosmetic);
        let (tables_in, tables_out): (Vec<_>, Vec<_>) = self
            .tables
            .iter()
            .cloned()
            .partition(|t| within(t.table.split_once('.').map_or("public", |(s, _)| s)));
        (
            Snapshot {
                schema: Schema { objects: objects_in, cosmetic: cosmetic_in },
                tables: tables_in,
            },
            Snapshot {
                schema: Schema { objects: objects_out, cosmetic: cosmetic_out },
                tables: tables_out,
            },
        )
    }
}

fn db(source: postgres::Error) -> RehearseError {
    RehearseError::Db(crate::pg::DbError::new("taking a snapshot of the copy", source))
}

/// The copy's picture, read whole once and then kept current, from the
/// journal of what each command changed where the session may keep one.
pub(super) fn track(
    client: &mut Client,
    prepared: &mut Prepared,
) -> Result<Tracked, RehearseError> {
    Tracked::read_journaled(client, prepared).map_err(db)
}

/// Brings the picture up to the copy's state now.
pub(super) fn refresh(
    tracked: &mut Tracked,
    client: &mut Client,
    prepared: &mut Prepared,
) -> Result<(), RehearseError> {
    tracked.refresh(client, prepared).map_err(db)
}

/// The part of the copy that may differ from the picture, before and now,
/// in `client`'s transaction; `written`: relations written since the ups
/// that [`Tracked::wrote`] noted (in a transaction, [`written_here`]).
pub(super) fn look(
    tracked: &Tracked,
    client: &mut impl postgres::GenericClient,
    prepared: &mut Prepared,
    written: Written,
) -> Result<(Snapshot, Snapshot), RehearseError> {
    let (before, after) = tracked.look(client, prepared, written).map_err(db)?;
    Ok((before.into(), after.into()))
}

/// The relations the open transaction holds a lock on that lets it write
/// rows: no row is written without one.
pub(super) fn written_here(
    client: &mut impl postgres::GenericClient,
) -> Result<Written, RehearseError> {
    Written::here(client).map_err(db)
}

pub(super) fn snapshot(client: &mut Client) -> Result<Snapshot, RehearseError> {
    snapshot_prepared(client, &mut Prepared::default())
}

/// A snapshot with the schema query prepared in `prepared`, which belongs
/// to `client`'s connection: the round trips take two per migration.
pub(super) fn snapshot_prepared(
    client: &mut impl postgres::GenericClient,
    prepared: &mut Prepared,
) -> Result<Snapshot, RehearseError> {
    let db = |source| {
        RehearseError::Db(crate::pg::DbError::new("taking a snapshot of the copy", source))
    };
    Ok(Snapshot {
        schema: Schema::read_prepared(client, prepared).map_err(db)?,
        tables: table_checksums_prepared(client, prepared).map_err(db)?,
    })
}

/// The object a schema difference is about: `table public.t is gone` and
/// `table public.t changed: ...` are both about `table public.t`.
fn object_of(difference: &str) -> String {
    difference
        .split(" is ")
        .next()
        .unwrap_or(difference)
        .split(" changed")
        .next()
        .unwrap_or(difference)
        .to_string()
}

/// How `after` differs from `before` in schema and data; with `version`,
/// each difference blames that migration's down.
pub(super) fn compare(
    before: &Snapshot,
    after: &Snapshot,
    version: Option<&str>,
) -> Vec<Difference> {
    let lead = match version {
        Some(v) => format!("down.sql of {v} does not restore: "),
        None => String::new(),
    };
    let mut out: Vec<Difference> = before
        .schema
        .differences(&after.schema)
        .into_iter()
        .map(|d| Difference {
            version: version.map(str::to_string),
            object: object_of(&d),
            message: format!("{lead}{d}"),
        })
        .collect();
    for t in &before.tables {
        match after.tables.iter().find(|a| a.table == t.table) {
            Some(a) if a == t => {}
            Some(a) => out.push(Difference {
                version: version.map(str::to_string),
                object: format!("table {}", t.table),
                message: format!(
                    "{lead}data of table {} differs ({} rows before, {} after)",
                    t.table, t.rows, a.rows
                ),
            }),
            // A missing table is already a schema difference.
            None => {}
        }
    }
    out
}

/// The first few of `names`, and how many more, for a one-line detail.
pub(super) fn first_of(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

/// A list of differences for a one-line detail.
pub(super) fn listed(diffs: &[Difference]) -> String {
    diffs.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::fingerprint::Object;

    fn snap(objects: &[(&str, &str)], tables: &[(&str, i64, &str)]) -> Snapshot {
        Snapshot {
            schema: Schema {
                objects: objects
                    .iter()
                    .map(|(k, d)| Object { key: k.to_string(), definition: d.to_string() })
                    .collect(),
                cosmetic: Vec::new(),
            },
            tables: tables
                .iter()
                .map(|(t, rows, sum)| TableChecksum {
                    table: t.to_string(),
                    rows: *rows,
                    checksum: sum.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_split_keeps_each_object_with_the_schema_it_lives_in() {
        let s = snap(
            &[
                ("column public.t.a", "int"),
                ("extension citext", "1.6 schema=public"),
                ("extension pg_cron", "1.6 schema=pg_catalog"),
                ("policy storage.objects.mine", "using (true)"),
                ("schema cron", "postgres"),
                ("schema public", "postgres"),
            ],
            &[("public.t", 3, "abc"), ("cron.job", 1, "x")],
        );
        let (inside, outside) = s.split(&["public".to_string()]);
        let keys =
            |s: &Snapshot| s.schema.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&inside), ["column public.t.a", "extension citext", "schema public"]);
        assert_eq!(
            keys(&outside),
            ["extension pg_cron", "policy storage.objects.mine", "schema cron"],
            "an extension lives in its own schema, whatever its name"
        );
        assert_eq!(inside.tables.len(), 1);
        assert_eq!(outside.tables[0].table, "cron.job");
    }

    #[test]
    fn differences_are_named_by_their_object() {
        assert_eq!(object_of("table public.t is gone"), "table public.t");
        assert_eq!(object_of("column public.t.a changed: int -> text"), "column public.t.a");
        assert_eq!(object_of("index public.i is new"), "index public.i");
    }

    #[test]
    fn identical_snapshots_do_not_differ() {
        let s = snap(&[("table public.t", "a int")], &[("public.t", 3, "abc")]);
        assert!(compare(&s, &s.clone(), Some("1")).is_empty());
    }

    #[test]
    fn a_down_that_misses_schema_and_data_is_blamed_for_both() {
        let before = snap(
            &[("column public.t.a", "int"), ("table public.t", "")],
            &[("public.t", 3, "abc"), ("public.gone", 1, "x")],
        );
        let after = snap(
            &[("column public.t.a", "text"), ("table public.t", "")],
            &[("public.t", 2, "abd")],
        );
        let diffs = compare(&before, &after, Some("7"));
        let got: Vec<_> = diffs.iter().map(|d| (d.object.as_str(), d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "column public.t.a",
                    "down.sql of 7 does not restore: column public.t.a changed: int -> text"
                ),
                (
                    "table public.t",
                    "down.sql of 7 does not restore: data of table public.t differs (3 rows before, 2 after)"
                ),
            ],
            "a table missing after is left to the schema comparison"
        );
        assert!(diffs.iter().all(|d| d.version.as_deref() == Some("7")));
        assert_eq!(
            listed(&compare(&before, &after, None)),
            "column public.t.a changed: int -> text; data of table public.t differs (3 rows before, 2 after)"
        );
    }
}
