//! What a proof's key and a rollback's check leave out of the schema
//! picture: the project's migration tool's own history (its table, or
//! its schema), which the target keeps in step and a copy does not, and
//! the tables the session's role may neither read nor change, which a
//! copy made by `pg_dump` cannot hold. No down touches either. Also the
//! digest of a picture's objects, whose difference between the two ends
//! of an up says what the up touched.

use std::collections::BTreeMap;

use crate::pg::fingerprint::{Object, Schema};
use crate::source::Migration;

/// The fingerprint a proof is keyed by: the semantic schema's (of the
/// database `client` is on), less what the project's migration tool keeps
/// its history in (its table, with what belongs to it, or its whole
/// schema where it has one of its own: `supabase_migrations`, `drizzle`,
/// `sqitch`), and less the tables the session's role may neither read
/// nor change. A copy does not keep that history in step and the target
/// does; a copy made by `pg_dump` lacks those tables and the target has
/// them; no down touches either.
pub fn fingerprint(
    client: &mut impl postgres::GenericClient,
    schema: &Schema,
    migrations: &[Migration],
) -> Result<String, postgres::Error> {
    let history = ToolHistory::of(migrations).leaving_out(client)?;
    let settings = settings(client)?;
    Ok(history.fingerprint(schema.objects.iter().chain(&settings)))
}

/// The database's own settings (`ALTER DATABASE … SET`, `ALTER ROLE … IN
/// DATABASE … SET`) as objects a proof's key and a rollback's check count
/// with the schema: a down must put them back too. Named without the
/// database's name, which a copy's differs from. Read after every
/// migration of a replay: sent unprepared, in one round trip.
pub fn settings(client: &mut impl postgres::GenericClient) -> Result<Vec<Object>, postgres::Error> {
    let rows = client.query_typed(
        "select case when s.setrole = 0 then 'setting of the database '
                     else 'setting of role ' || quote_ident(r.rolname) || ' in the database ' end
                || split_part(c, '=', 1),
                substr(c, length(split_part(c, '=', 1)) + 2)
           from pg_db_role_setting s
           left join pg_roles r on r.oid = s.setrole
          cross join unnest(s.setconfig) c
          where s.setdatabase = (select oid from pg_database where datname = current_database())
          order by 1",
        &[],
    )?;
    Ok(rows.iter().map(|r| Object { key: r.get(0), definition: r.get(1) }).collect())
}

/// Where the project's migration tool keeps its history, and the tables
/// the role may neither read nor change, as [`fingerprint`] leaves them
/// out: found once for a replay of many migrations, each keyed at its
/// start and end.
pub struct ToolHistory {
    /// `schema.` for a schema of its own, `schema.table` otherwise.
    prefixes: Vec<String>,
    /// `schema.table` of each table left out, and how an index's
    /// definition names it (` ON public.t `).
    left_out: Vec<(String, String)>,
}

impl ToolHistory {
    pub fn of(migrations: &[Migration]) -> ToolHistory {
        let refs: Vec<&Migration> = migrations.iter().collect();
        let mut layouts: Vec<crate::source::Layout> = migrations.iter().map(|m| m.layout).collect();
        layouts.dedup();
        let mut prefixes: Vec<String> = Vec::new();
        for layout in layouts {
            for t in crate::adopt::history::candidates(layout, &refs) {
                match t.schema.as_deref() {
                    Some(own) if own != "public" => prefixes.push(format!("{own}.")),
                    own => prefixes.push(format!("{}.{}", own.unwrap_or("public"), t.name)),
                }
            }
        }
        ToolHistory { prefixes, left_out: Vec::new() }
    }

    /// Leaves out too what the role of `client` may neither read nor
    /// change (`pg::unreadable::left_out`), with what belongs to it: its
    /// columns, constraints, indexes, triggers and policies.
    pub fn leaving_out(
        mut self,
        client: &mut impl postgres::GenericClient,
    ) -> Result<ToolHistory, postgres::Error> {
        let tables = crate::pg::unreadable::left_out(client)?;
        self.left_out =
            tables.iter().map(|t| (t.qualified(), format!(" ON {} ", t.shown))).collect();
        Ok(self)
    }

    /// Whether `o` is, or belongs to, a table [`Self::leaving_out`] names:
    /// its name (the key's last word) is the table's or under it, or it is
    /// an index on it.
    fn left_out(&self, o: &Object) -> bool {
        let name = o.key.rsplit(' ').next().unwrap_or_default();
        self.left_out.iter().any(|(table, on)| {
            let under = name
                .strip_prefix(table.as_str())
                .is_some_and(|r| r.is_empty() || r.starts_with('.'));
            let index = o.key.starts_with("index ")
                && (o.definition.contains(on.as_str())
                    || o.definition.contains(&on.replacen(" ON ", " ON ONLY ", 1)));
            under || index
        })
    }

    /// Whether the picture's object `o` counts: it is neither the tool's
    /// history nor a table the role may neither read nor change.
    fn keeps(&self, o: &Object) -> bool {
        let prefixes = &self.prefixes;
        let tool_schema = |key: &str| {
            key.strip_prefix("schema ")
                .is_some_and(|n| prefixes.iter().any(|p| p.strip_suffix('.') == Some(n)))
        };
        let tool_object = |key: &str| {
            key.split(' ').skip(1).any(|word| {
                prefixes.iter().any(|p| {
                    word.strip_prefix(p.as_str()).is_some_and(|rest| {
                        p.ends_with('.') || rest.is_empty() || rest.starts_with(['.', '_'])
                    })
                })
            })
        };
        !tool_schema(&o.key) && !tool_object(&o.key) && !self.left_out(o)
    }

    /// The fingerprint of a schema's objects, in the picture's order.
    pub fn fingerprint<'a>(&self, objects: impl IntoIterator<Item = &'a Object>) -> String {
        let mut hasher = blake3::Hasher::new();
        for o in objects.into_iter().filter(|o| self.keeps(o)) {
            hasher.update(o.key.as_bytes());
            hasher.update(&[0]);
            hasher.update(keyed_definition(o).as_bytes());
            hasher.update(&[0]);
        }
        hasher.finalize().to_hex()[..16].to_string()
    }

    /// The fingerprint and the digest of a schema's objects at once.
    pub fn digest<'a>(&self, objects: impl IntoIterator<Item = &'a Object>) -> (String, Digest) {
        let mut hasher = blake3::Hasher::new();
        let mut digest = BTreeMap::new();
        for o in objects.into_iter().filter(|o| self.keeps(o)) {
            let definition = keyed_definition(o);
            hasher.update(o.key.as_bytes());
            hasher.update(&[0]);
            hasher.update(definition.as_bytes());
            hasher.update(&[0]);
            digest.insert(o.key.clone(), short_hash(&definition));
        }
        (hasher.finalize().to_hex()[..16].to_string(), Digest(digest))
    }

    /// [`ToolHistory::digest`] of `objects`, with the `cosmetic` ones
    /// (column order, comments) in the digest too but not in the
    /// fingerprint: a record then names what an up touched of them, and
    /// a rollback's check says where they differ, apart.
    pub fn digest_apart<'a>(
        &self,
        objects: impl IntoIterator<Item = &'a Object>,
        cosmetic: impl IntoIterator<Item = &'a Object>,
    ) -> (String, Digest) {
        let (fingerprint, mut digest) = self.digest(objects);
        for o in cosmetic.into_iter().filter(|o| self.keeps(o)) {
            digest.0.insert(o.key.clone(), short_hash(&o.definition));
        }
        (fingerprint, digest)
    }
}

/// Whether a picture's key names a cosmetic object: a table's column
/// order or a comment, which change no behaviour.
pub fn is_cosmetic(key: &str) -> bool {
    key.starts_with("column order ") || key.starts_with(crate::pg::comments::PREFIX)
}

/// The short hash of an object's definition as a key counts it.
pub fn keyed_hash(o: &Object) -> String {
    short_hash(&keyed_definition(o))
}

/// What a down that holds leaves written otherwise than `before` had it
/// (the same as read: its proof found no difference), each object's key
/// with the hash of what it left (`Touched::also`): a rollback's check,
/// which compares definitions by their hashes, takes that as put back.
pub fn written_otherwise(before: &Schema, now: &Schema) -> Vec<(String, String)> {
    // Both pictures' objects are sorted by key: a proof of every
    // migration asks this of the whole picture.
    let was = |key: &str| {
        let at = before.objects.binary_search_by(|o| o.key.as_str().cmp(key)).ok()?;
        before.objects.get(at)
    };
    now.objects
        .iter()
        .filter(|o| was(&o.key).is_some_and(|w| w.definition != o.definition))
        .map(|o| (o.key.clone(), keyed_hash(o)))
        .collect()
}

/// An object's definition as a key counts it: a view's with the dates it
/// froze when it was made masked (`now()` written into it), which a copy
/// made at another moment holds otherwise, and which the picture's
/// comparison calls cosmetic.
fn keyed_definition(o: &Object) -> std::borrow::Cow<'_, str> {
    let frozen = o.key.starts_with("view ")
        && (o.definition.contains("::timestamp") || o.definition.contains("::date"));
    match frozen.then(|| backstop_sql::compare::dates_masked(&o.definition)).flatten() {
        Some(masked) => std::borrow::Cow::Owned(masked),
        None => std::borrow::Cow::Borrowed(&o.definition),
    }
}

/// A short hash of an object's definition: what a record of an up keeps
/// of it, to tell whether it is the same afterwards.
pub fn short_hash(definition: &str) -> String {
    blake3::hash(definition.as_bytes()).to_hex()[..16].to_string()
}

/// A picture's objects as the two ends of an up compare them: each
/// object's key with a short hash of its definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest(BTreeMap<String, String>);

impl Digest {
    /// The short hash of the object `key`, where it is in the picture.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The keys of the objects that differ between `other` and this one.
    pub fn changed_from(&self, other: &Digest) -> Vec<String> {
        self.touched_since(other).into_iter().map(|t| t.key).collect()
    }

    /// What differs between `before` and this one: each object that is
    /// new, gone or changed, with what it was in `before`.
    pub fn touched_since(&self, before: &Digest) -> Vec<Touched> {
        let mut out: Vec<Touched> = before
            .0
            .iter()
            .filter(|(k, h)| self.0.get(*k) != Some(*h))
            .map(|(k, h)| Touched { key: k.clone(), before: Some(h.clone()), also: None })
            .collect();
        out.extend(self.0.keys().filter(|k| !before.0.contains_key(*k)).map(|k| Touched {
            key: k.clone(),
            before: None,
            also: None,
        }));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// One object an up touched: its key, and the short hash of its
/// definition before the up, `None` where it did not exist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Touched {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The short hash of the definition the migration's proved down left
    /// instead, where that differs from `before` only as written (a
    /// function made again with other spacing or parentheses): a
    /// rollback's check takes it as put back, and says so apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, definition: &str) -> Object {
        Object { key: key.into(), definition: definition.into() }
    }

    #[test]
    fn what_an_up_touched_is_what_is_new_gone_or_changed() {
        let history =
            ToolHistory { prefixes: vec!["public.schema_migrations".into()], left_out: Vec::new() };
        let before = [
            object("column public.t.a", "integer"),
            object("column public.t.b", "text"),
            object("relation public.schema_migrations", "r"),
        ];
        let after = [
            object("column public.t.a", "bigint"),
            object("column public.t.c", "text"),
            object("relation public.schema_migrations", "r changed"),
        ];
        let (fp0, d0) = history.digest(&before);
        let (fp1, d1) = history.digest(&after);
        assert_eq!(fp0, history.fingerprint(&before));
        assert_ne!(fp0, fp1);
        let touched = d1.touched_since(&d0);
        let keys: Vec<(&str, bool)> =
            touched.iter().map(|t| (t.key.as_str(), t.before.is_some())).collect();
        assert_eq!(
            keys,
            [
                ("column public.t.a", true),
                ("column public.t.b", true),
                ("column public.t.c", false)
            ]
        );
        assert_eq!(touched[0].before.as_deref(), Some(short_hash("integer").as_str()));
    }

    #[test]
    fn the_tools_history_is_no_part_of_the_fingerprint() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("supabase/migrations")).unwrap();
        std::fs::write(tmp.path().join("supabase/migrations/20240101000000_a.sql"), "SELECT 1;")
            .unwrap();
        let ms =
            crate::source::load(&tmp.path().join("supabase/migrations"), None).unwrap().migrations;
        let object = |key: &str| Object { key: key.into(), definition: "d".into() };
        let base = vec![object("relation public.users"), object("column public.users.id")];
        let mut with_history = base.clone();
        for key in [
            "schema supabase_migrations",
            "relation supabase_migrations.schema_migrations",
            "column supabase_migrations.schema_migrations.version",
            "index supabase_migrations.schema_migrations_pkey",
        ] {
            with_history.push(object(key));
        }
        let fingerprint = |objects: &[Object]| ToolHistory::of(&ms).fingerprint(objects);
        assert_eq!(fingerprint(&base), fingerprint(&with_history));
        let mut other = base;
        other.push(object("relation public.supabase_migrations_copy"));
        assert_ne!(
            fingerprint(&other),
            fingerprint(&other[..2]),
            "a table of the project's is part of it"
        );
    }

    /// A table the role may neither read nor change is in the target and
    /// not in a copy `pg_dump` made: it is no part of the key, with its
    /// columns, constraints, triggers and indexes; a table named like it
    /// is.
    #[test]
    fn a_table_the_role_may_neither_read_nor_change_is_no_part_of_the_fingerprint() {
        let object =
            |key: &str, definition: &str| Object { key: key.into(), definition: definition.into() };
        let project =
            vec![object("relation public.users", "r"), object("column public.users.id", "int")];
        let mut target = project.clone();
        target.extend([
            object("relation plat.hooks", "r"),
            object("column plat.hooks.id", "bigint"),
            object("constraint plat.hooks.hooks_pkey", "PRIMARY KEY (id)"),
            object("trigger plat.hooks.audit", "AFTER INSERT"),
            object(
                "index plat.hooks_pkey",
                "CREATE UNIQUE INDEX hooks_pkey ON plat.hooks USING btree (id)",
            ),
        ]);
        let history = ToolHistory {
            prefixes: Vec::new(),
            left_out: vec![("plat.hooks".into(), " ON plat.hooks ".into())],
        };
        assert_eq!(history.fingerprint(&target), history.fingerprint(&project));
        for named_like in [
            object("relation plat.hooks_log", "r"),
            object(
                "index plat.hooks_log_at",
                "CREATE INDEX hooks_log_at ON plat.hooks_log USING btree (at)",
            ),
        ] {
            let mut with = project.clone();
            with.push(named_like);
            assert_ne!(history.fingerprint(&with), history.fingerprint(&project), "{with:?}");
        }
    }
}
