//! The live part of the check: the target database's own catalog says how
//! many rows a drop loses, how big a locked table is, whether an extension
//! is available, a policy name taken, a type change binary-coercible, a
//! foreign key already indexed, a protected table present. Each fact
//! raises or lowers the finding it concerns and is recorded on it, or
//! clears it: a finding whose own facts clear it is not reported.
//! Read-only: nothing here changes the database.

use crate::pg::db;
use backstop_lint::{
    Code, Finding, Impact, Origin, Probability, RelationName, Report, Severity, Subject,
};
use postgres::GenericClient;

use super::{CheckError, Settings};
use crate::pg::quote_qualified;

/// Tables up to this many estimated rows are counted exactly; above it the
/// planner's estimate is reported (a count would scan the whole table).
const COUNT_EXACTLY_UP_TO: f64 = 1_000_000.0;
/// Below both, a lock is over before anyone notices.
const SMALL_BYTES: i64 = 10 * 1024 * 1024;
const SMALL_ROWS: i64 = 100_000;
/// At either, a lock or rewrite lasts minutes.
const LARGE_BYTES: i64 = 1024 * 1024 * 1024;
const LARGE_ROWS: i64 = 10_000_000;

fn name(t: &RelationName) -> String {
    backstop_lint::stmt::display_table(t)
}

fn regclass(t: &RelationName) -> String {
    quote_qualified(t.schema.as_deref(), &t.name)
}

/// What the catalog says about one table.
#[derive(Debug, Clone)]
struct TableFacts {
    /// Exact when `exact`, otherwise the planner's estimate (0 when the
    /// table was never analyzed, see `unknown`).
    rows: i64,
    exact: bool,
    unknown: bool,
    bytes: i64,
}

impl TableFacts {
    fn rows_text(&self) -> String {
        if self.exact {
            format!("{} row(s)", self.rows)
        } else if self.unknown {
            "rows not yet counted by ANALYZE".to_string()
        } else {
            format!("about {} rows (planner estimate)", self.rows)
        }
    }
}

/// Size and an estimate of rows: enough to rate a lock, and cheap.
fn table_size(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Option<TableFacts>, CheckError> {
    let row = client
        .query_opt(
            "select c.reltuples::float8, pg_total_relation_size(c.oid)::int8
               from pg_class c where c.oid = to_regclass($1) and c.relkind in ('r', 'p', 'm')",
            &[&regclass(table)],
        )
        .map_err(db("reading table sizes from pg_class"))?;
    Ok(row.map(|row| {
        let estimate: f64 = row.get(0);
        TableFacts {
            rows: estimate.max(0.0) as i64,
            exact: false,
            unknown: estimate < 0.0,
            bytes: row.get(1),
        }
    }))
}

/// Size and rows, counted exactly when the table is small enough to count.
fn table_facts(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Option<TableFacts>, CheckError> {
    let Some(estimated) = table_size(client, table)? else { return Ok(None) };
    // reltuples is -1 (unknown) for a table never vacuumed or analyzed.
    let small_enough = if estimated.unknown {
        estimated.bytes <= 256 * 1024 * 1024
    } else {
        estimated.rows as f64 <= COUNT_EXACTLY_UP_TO
    };
    if !small_enough {
        return Ok(Some(estimated));
    }
    let rows: i64 = client
        .query_one(&format!("select count(*) from only {}", regclass(table)), &[])
        .map_err(db("counting rows"))?
        .get(0);
    Ok(Some(TableFacts { rows, exact: true, unknown: false, bytes: estimated.bytes }))
}

fn human_bytes(bytes: i64) -> String {
    crate::kit::size::human(bytes.max(0) as u64)
}

fn is_data_loss(code: Code) -> bool {
    matches!(
        code,
        Code::BS100 | Code::BS101 | Code::BS102 | Code::BS104 | Code::BS105 | Code::BS106
    )
}

fn is_lock(code: Code) -> bool {
    matches!(
        code,
        Code::BS201
            | Code::BS203
            | Code::BS204
            | Code::BS205
            | Code::BS206
            | Code::BS207
            | Code::BS208
    )
}

/// Rates a lock or rewrite by the size of the table it holds.
fn scale_lock(f: &mut Finding, table: &RelationName, facts: &TableFacts) {
    let size = format!("{}, {}", facts.rows_text(), human_bytes(facts.bytes));
    if facts.bytes < SMALL_BYTES && facts.rows < SMALL_ROWS {
        f.rate(Probability::Low, Impact::Low);
        f.facts.push(format!("{} is small ({size}): the lock lasts moments", name(table)));
    } else if facts.bytes >= LARGE_BYTES || facts.rows >= LARGE_ROWS {
        f.rate(Probability::High, Impact::High);
        f.facts.push(format!(
            "{} is large ({size}): the lock lasts as long as the scan or rewrite, minutes",
            name(table)
        ));
    } else {
        f.facts.push(format!("{} holds {size}", name(table)));
    }
}

/// What to do with a finding after looking at the database.
enum Outcome {
    Keep,
    Drop,
}

fn kept(keep: bool) -> Result<Outcome, CheckError> {
    Ok(if keep { Outcome::Keep } else { Outcome::Drop })
}

/// Adds live facts to `report`: adjusts findings, promotes probes that the
/// database confirms, and adds findings about the configuration.
pub fn assess(
    client: &mut impl GenericClient,
    report: &mut Report,
    settings: &Settings,
) -> Result<(), CheckError> {
    let created = report.created_tables.clone();
    let mut kept = Vec::with_capacity(report.findings.len());
    for mut f in std::mem::take(&mut report.findings) {
        if let Outcome::Keep = adjust(client, &mut f, &created)? {
            kept.push(f);
        }
    }
    for mut probe in std::mem::take(&mut report.probes) {
        if confirm(client, &mut probe, settings)? {
            kept.push(probe);
        }
    }
    kept.extend(missing_protected_tables(client, settings, &created)?);
    for f in &mut kept {
        if f.suppressed.is_some() && f.severity == Severity::Critical {
            f.suppressed = None;
            f.facts.push(
                "a backstop:ignore comment cannot suppress a critical finding; `backstop migrate --accept-risk` can, audited".into(),
            );
        }
    }
    report.findings = kept;
    Ok(())
}

fn adjust(
    client: &mut impl GenericClient,
    f: &mut Finding,
    created: &[RelationName],
) -> Result<Outcome, CheckError> {
    let created_in_run =
        |t: &RelationName| created.iter().any(|c| backstop_lint::stmt::same_table(c, t));
    // What the batch did before this statement decides which question the
    // live database can answer.
    match (f.origin.clone(), f.subject.clone()) {
        (Some(Origin::Created { at }), Some(subject)) => {
            made_by_batch(f, &subject, &at);
            return Ok(Outcome::Keep);
        }
        (Some(Origin::Dropped { at }), Some(subject)) => {
            dropped_by_batch(f, &subject, &at);
            return Ok(Outcome::Keep);
        }
        (Some(Origin::Live { table: live, column }), Some(subject)) => {
            if let Some(renamed) = as_before_batch(&subject, &live, column.as_deref()) {
                f.facts.push(renamed);
                f.subject = Some(renamed_subject(&subject, live, column));
            }
        }
        _ => {}
    }
    match f.subject.clone() {
        Some(Subject::Table { table, missing_ok }) => {
            let counts = is_data_loss(f.code) || f.code == Code::BS404;
            let facts =
                if counts { table_facts(client, &table)? } else { table_size(client, &table)? };
            let Some(facts) = facts else {
                if missing_ok {
                    // Not there, and IF EXISTS: the statement does nothing
                    // (had the batch made it before, the origin said so).
                    return Ok(Outcome::Drop);
                }
                if created_in_run(&table) {
                    return Ok(Outcome::Keep);
                }
                f.rate(Probability::Certain, Impact::High);
                f.facts.push(format!(
                    "{} does not exist on the server: the statement fails",
                    name(&table)
                ));
                return Ok(Outcome::Keep);
            };
            if f.code == Code::BS404 {
                if facts.rows > 0 {
                    f.rate(Probability::Certain, Impact::High);
                    f.facts.push(format!(
                        "{} holds {}: a NOT NULL column with no value for them fails",
                        name(&table),
                        facts.rows_text()
                    ));
                } else {
                    f.rate(Probability::Low, Impact::Low);
                    f.facts.push(format!(
                        "{} is empty today; it fails once it has rows",
                        name(&table)
                    ));
                }
            } else if is_data_loss(f.code) {
                if facts.rows == 0 {
                    if f.code != Code::BS100 {
                        f.rate(Probability::Low, Impact::Low);
                    }
                    f.facts.push(format!(
                        "{} is empty today: rows written before the migration runs would be lost",
                        name(&table)
                    ));
                } else {
                    if f.code != Code::BS100 {
                        f.rate(Probability::High, Impact::High);
                    }
                    f.facts.push(format!("{} holds {}", name(&table), facts.rows_text()));
                    if matches!(f.code, Code::BS101 | Code::BS104) {
                        f.mitigation = format!(
                            "Export or archive the {} of {} first",
                            facts.rows_text(),
                            name(&table)
                        );
                    }
                }
            } else if is_lock(f.code) {
                scale_lock(f, &table, &facts);
            }
            Ok(Outcome::Keep)
        }
        Some(Subject::ColumnType { table, column, new_type }) => {
            column_type(client, f, &table, &column, &new_type)
        }
        Some(Subject::NotNull { table, column }) => not_null(client, f, &table, &column),
        Some(Subject::Extension { name: ext, if_not_exists }) => {
            extension(client, f, &ext, if_not_exists)
        }
        Some(Subject::ForeignKey { table, columns }) => foreign_key(client, f, &table, &columns),
        Some(Subject::Platform { kind, name }) => {
            if super::platform::present(client, kind, &name)? {
                Ok(Outcome::Drop)
            } else {
                super::platform::missing(f, kind, &name);
                Ok(Outcome::Keep)
            }
        }
        Some(Subject::RowSecurity { .. }) => rls_note(client, f),
        Some(Subject::Policy { table, name }) if f.code == Code::BS507 => {
            kept(super::rls::dropped(client, f, &table, &name)?)
        }
        Some(Subject::RowPolicies { table }) => kept(super::rls::finding(client, f, &table)?),
        Some(Subject::Functions { table, names }) => functions(client, f, &table, &names),
        Some(Subject::Policy { .. }) | Some(Subject::OwnerColumns { .. }) | None => {
            Ok(Outcome::Keep)
        }
    }
}

/// A column becoming NOT NULL: a validated CHECK that proves it spares the
/// scan; otherwise the lock lasts as long as the table is big.
fn not_null(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    column: &str,
) -> Result<Outcome, CheckError> {
    let defs: Vec<String> = client
        .query(
            "select pg_get_constraintdef(oid) from pg_constraint
                      where conrelid = to_regclass($1) and contype = 'c' and convalidated",
            &[&regclass(table)],
        )
        .map_err(db("reading check constraints"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if defs.iter().any(|d| backstop_lint::stmt::check_proves_not_null(d, column)) {
        // A validated CHECK (column IS NOT NULL) proves it: PostgreSQL
        // skips the scan, which is all the finding is about.
        return Ok(Outcome::Drop);
    } else if let Some(facts) = table_size(client, table)? {
        scale_lock(f, table, &facts);
    }
    Ok(Outcome::Keep)
}

/// A default calling functions no checked migration defines: `pg_proc`
/// says whether one is volatile (the table is rewritten), all are stable
/// or immutable (no finding), or one does not exist.
fn functions(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    names: &[String],
) -> Result<Outcome, CheckError> {
    let (mut volatile, mut missing) = (Vec::new(), Vec::new());
    for func in names {
        let (schema, base) = match func.rsplit_once('.') {
            Some((s, b)) => (Some(s.to_string()), b.to_string()),
            None => (None, func.clone()),
        };
        let row = client
            .query_one(
                "select count(*), coalesce(bool_or(p.provolatile = 'v'), false) from pg_proc p
                   join pg_namespace n on n.oid = p.pronamespace
                  where p.proname = $2 and ($1::text is null or n.nspname = $1)",
                &[&schema, &base],
            )
            .map_err(db("reading pg_proc"))?;
        let (count, is_volatile): (i64, bool) = (row.get(0), row.get(1));
        if is_volatile {
            volatile.push(func.clone());
        } else if count == 0 {
            missing.push(func.clone());
        }
    }
    if !volatile.is_empty() {
        let meta = f.code.meta();
        f.rate(meta.probability, meta.impact);
        f.facts.push(format!("{}() is volatile (pg_proc)", volatile.join("(), ")));
        if let Some(facts) = table_size(client, table)? {
            scale_lock(f, table, &facts);
        }
        return Ok(Outcome::Keep);
    }
    if missing.is_empty() {
        return Ok(Outcome::Drop);
    }
    f.facts.push(format!(
        "pg_proc has no function {}(): the statement fails unless something creates it first",
        missing.join("(), ")
    ));
    Ok(Outcome::Keep)
}

/// The note for a project that enables row level security nowhere:
/// dropped when the database shows that it does (the tables are then
/// reported one by one, see `confirm`).
fn rls_note(client: &mut impl GenericClient, f: &mut Finding) -> Result<Outcome, CheckError> {
    match tables_with_rls(client)? {
        Some(_) => Ok(Outcome::Drop),
        None => {
            f.facts.push("the database has row level security on no table either".into());
            Ok(Outcome::Keep)
        }
    }
}

fn column_type(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    column: &str,
    new_type: &backstop_lint::TypeSpec,
) -> Result<Outcome, CheckError> {
    let current = client
        .query_opt(
            "select a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
                    (select typname::text from pg_type where oid = a.atttypid)
               from pg_attribute a
              where a.attrelid = to_regclass($1) and a.attname = $2 and a.attnum > 0 and not a.attisdropped",
            &[&regclass(table), &column],
        )
        .map_err(db("reading the column's type"))?;
    let Some(current) = current else {
        if table_size(client, table)?.is_some() {
            f.rate(Probability::Certain, Impact::High);
            f.facts.push(format!(
                "{}.{column} does not exist on the server: the statement fails",
                name(table)
            ));
        }
        return Ok(Outcome::Keep);
    };
    let (old_oid, old_mod, shown): (u32, i32, String) =
        (current.get(0), current.get(1), current.get(2));
    f.facts.push(format!("{}.{column} is {shown} today", name(table)));
    let old_name: String = current.get(3);
    if f.code == Code::BS107 && new_type.widens(&old_name, &typmod_modifiers(&old_name, old_mod)) {
        // The new type holds every value of the old one: no value is cut.
        return Ok(Outcome::Drop);
    }
    let target =
        if new_type.array { format!("{}[]", new_type.name) } else { new_type.name.clone() };
    let new_oid: Option<u32> = client
        .query_one("select to_regtype($1)::oid", &[&target])
        .map_err(db("resolving the new type"))?
        .get(0);
    let Some(new_oid) = new_oid else { return Ok(Outcome::Keep) };
    // The typmod PostgreSQL stores for the new type, for the types whose
    // modifiers only widen or narrow (varchar, char, numeric).
    let new_mod: Option<i32> = match (new_type.base(), new_type.modifiers.as_slice()) {
        (_, []) => Some(-1),
        ("varchar" | "bpchar", [n]) => i32::try_from(*n).ok().map(|n| n + 4),
        ("numeric", [p]) => i32::try_from(*p).ok().map(|p| (p << 16) + 4),
        ("numeric", [p, s]) => {
            i32::try_from(*p).ok().zip(i32::try_from(*s).ok()).map(|(p, s)| ((p << 16) | s) + 4)
        }
        _ => None,
    };
    let widening = new_mod.is_some_and(|m| m == -1 || (old_mod != -1 && m >= old_mod));
    let coercible = old_oid == new_oid
        || client
            .query_one(
                "select exists (select 1 from pg_cast where castsource = $1 and casttarget = $2 and castmethod = 'b')",
                &[&old_oid, &new_oid],
            )
            .map_err(db("reading pg_cast"))?
            .get::<_, bool>(0);
    if new_type.using {
        return Ok(Outcome::Keep);
    }
    if old_oid == new_oid && widening {
        // Same type, wider or unconstrained: no rewrite, nothing cut.
        return Ok(Outcome::Drop);
    } else if coercible && f.code == Code::BS206 && (old_oid != new_oid || widening) {
        // Binary-coercible: PostgreSQL converts without a rewrite.
        return Ok(Outcome::Drop);
    } else if f.code == Code::BS206 {
        if let Some(facts) = table_size(client, table)? {
            scale_lock(f, table, &facts);
        }
    }
    Ok(Outcome::Keep)
}

/// The modifiers a stored typmod stands for, as written (`varchar(50)`:
/// `[50]`; `numeric(10,2)`: `[10, 2]`).
fn typmod_modifiers(type_name: &str, typmod: i32) -> Vec<i64> {
    if typmod < 0 {
        return Vec::new();
    }
    let m = i64::from(typmod) - 4;
    match type_name {
        "numeric" => vec![(m >> 16) & 0xffff, m & 0xffff],
        "varchar" | "bpchar" => vec![m],
        _ => Vec::new(),
    }
}

/// An extension installed (and created IF NOT EXISTS) or available to the
/// role clears the finding; one missing, untrusted for this role, or
/// installed and created again without IF NOT EXISTS makes it certain.
fn extension(
    client: &mut impl GenericClient,
    f: &mut Finding,
    ext: &str,
    if_not_exists: bool,
) -> Result<Outcome, CheckError> {
    let row = client
        .query_one(
            "select (select extversion from pg_extension where extname = $1),
                    (select default_version from pg_available_extensions where name = $1),
                    coalesce((select v.superuser and not v.trusted from pg_available_extension_versions v
                               join pg_available_extensions a on a.name = v.name and a.default_version = v.version
                              where v.name = $1), false),
                    (select rolsuper from pg_roles where rolname = current_user),
                    current_user::text",
            &[&ext],
        )
        .map_err(db("reading pg_available_extensions"))?;
    let installed: Option<String> = row.get(0);
    let available: Option<String> = row.get(1);
    let needs_superuser: bool = row.get(2);
    let is_superuser: bool = row.get::<_, Option<bool>>(3).unwrap_or(false);
    let role: String = row.get(4);
    if let Some(version) = installed {
        if if_not_exists {
            return Ok(Outcome::Drop);
        }
        f.rate(Probability::Certain, Impact::High);
        f.facts.push(format!(
            "{ext} {version} is already installed: CREATE EXTENSION without IF NOT EXISTS fails"
        ));
        f.help = format!("write CREATE EXTENSION IF NOT EXISTS {ext}");
    } else if available.is_none() {
        f.rate(Probability::Certain, Impact::High);
        f.facts.push(format!(
            "{ext} is not in pg_available_extensions on this server: CREATE EXTENSION fails"
        ));
        f.help = format!(
            "install the extension on the server (Debian: the postgresql-<major>-{} package) or enable it in your provider's dashboard; or ship the migration without it",
            if ext == "vector" { "pgvector" } else { ext }
        );
    } else if needs_superuser && !is_superuser {
        f.rate(Probability::Certain, Impact::High);
        f.facts.push(format!(
            "{ext} is untrusted and needs a superuser; {role} is not one: CREATE EXTENSION fails"
        ));
        f.help = "have a superuser create the extension before the migration, or run it with a role that may".into();
    } else {
        // Available, and this role may create it.
        return Ok(Outcome::Drop);
    }
    Ok(Outcome::Keep)
}

fn foreign_key(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    columns: &[String],
) -> Result<Outcome, CheckError> {
    let rows = client
        .query(
            "select array(select a.attname::text from unnest(i.indkey) with ordinality k(attnum, n)
                           join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                          order by k.n),
                    i.indpred is not null
               from pg_index i where i.indrelid = to_regclass($1)",
            &[&regclass(table)],
        )
        .map_err(db("reading the table's indexes"))?;
    let covered = rows.iter().any(|r| {
        let cols: Vec<String> = r.get(0);
        let partial: bool = r.get(1);
        !partial
            && cols.len() >= columns.len()
            && columns.iter().all(|c| cols[..columns.len()].contains(c))
    });
    if covered {
        return Ok(Outcome::Drop);
    }
    if !rows.is_empty() || table_size(client, table)?.is_some() {
        f.facts.push(format!(
            "no index on the server covers {}({}) either",
            name(table),
            columns.join(", ")
        ));
    }
    Ok(Outcome::Keep)
}

/// The subject's table (and column), as the statement names it.
fn subject_names(subject: &Subject) -> Option<(&RelationName, Option<&str>)> {
    match subject {
        Subject::Table { table, .. }
        | Subject::Policy { table, .. }
        | Subject::ForeignKey { table, .. }
        | Subject::Functions { table, .. }
        | Subject::RowPolicies { table }
        | Subject::OwnerColumns { table, .. } => Some((table, None)),
        Subject::ColumnType { table, column, .. } | Subject::NotNull { table, column } => {
            Some((table, Some(column)))
        }
        Subject::Extension { .. } | Subject::Platform { .. } | Subject::RowSecurity { .. } => None,
    }
}

/// How many tables of the database have row level security, and a few of
/// them by name; `None` when none has.
fn tables_with_rls(client: &mut impl GenericClient) -> Result<Option<String>, CheckError> {
    let row = client
        .query_one(
            "select count(*), coalesce(string_agg(name, ', ') filter (where n <= 3), '')
               from (select format('%I.%I', s.nspname, c.relname) as name,
                            row_number() over (order by s.nspname, c.relname) as n
                       from pg_class c join pg_namespace s on s.oid = c.relnamespace
                      where c.relrowsecurity and c.relkind in ('r', 'p')
                        and s.nspname not in ('pg_catalog', 'information_schema', 'backstop')) t",
            &[],
        )
        .map_err(db("reading which tables have row level security"))?;
    let count: i64 = row.get(0);
    let some: String = row.get(1);
    Ok((count > 0).then(|| {
        if count > 3 {
            format!("{count} table(s), e.g. {some}")
        } else {
            format!("{count} table(s): {some}")
        }
    }))
}

/// What the database calls the subject, when the batch renamed it before
/// this statement.
fn as_before_batch(subject: &Subject, live: &RelationName, column: Option<&str>) -> Option<String> {
    let (table, col) = subject_names(subject)?;
    let same_table = table == live;
    let same_column = col.is_none() || col == column;
    if same_table && same_column {
        return None;
    }
    let now = match col {
        Some(c) => format!("{}.{c}", name(table)),
        None => name(table),
    };
    let then = match (col, column) {
        (Some(_), Some(c)) => format!("{}.{c}", name(live)),
        _ => name(live),
    };
    Some(format!("{now} is {then} on the database (renamed earlier in this batch)"))
}

/// The subject under the names the live database knows.
fn renamed_subject(subject: &Subject, live: RelationName, column: Option<String>) -> Subject {
    let mut s = subject.clone();
    match &mut s {
        Subject::Table { table, .. }
        | Subject::Policy { table, .. }
        | Subject::ForeignKey { table, .. }
        | Subject::Functions { table, .. }
        | Subject::RowPolicies { table }
        | Subject::OwnerColumns { table, .. } => *table = live,
        Subject::ColumnType { table, column: c, .. } | Subject::NotNull { table, column: c } => {
            *table = live;
            if let Some(column) = column {
                *c = column;
            }
        }
        Subject::Extension { .. } | Subject::Platform { .. } | Subject::RowSecurity { .. } => {}
    }
    s
}

fn subject_name(subject: &Subject) -> String {
    match subject_names(subject) {
        Some((t, Some(c))) => format!("{}.{c}", name(t)),
        Some((t, None)) => name(t),
        None => String::new(),
    }
}

/// The subject was made by an earlier statement of the batch. The
/// analysis already leaves out what that clears (a lock on it, its rows,
/// running code that cannot know it, see `Cx::judged_by_batch`); what is
/// left is a rule the database cannot inform: it has nothing of it yet.
fn made_by_batch(f: &mut Finding, subject: &Subject, at: &str) {
    let what = subject_name(subject);
    if f.code == Code::BS100 {
        // A protected table is protected wherever it came from.
        f.facts.push(format!("{what} is made earlier in this batch, at {at}"));
        return;
    }
    if f.code == Code::BS404 {
        // Reported on a table the batch made only when the batch fills it:
        // whether that gives it a row is known when the migration runs.
        f.facts.push(format!(
            "{what} is made earlier in this batch, at {at}, and filled by it: the statement fails if that gives it any row"
        ));
        return;
    }
    f.rate(Probability::Low, Impact::Low);
    f.facts.push(format!(
        "{what} is made earlier in this batch, at {at}: the database has nothing of it yet"
    ));
}

/// The subject was dropped by an earlier statement of the batch: the
/// statement fails (with IF EXISTS it does nothing, and the analysis
/// leaves it out).
fn dropped_by_batch(f: &mut Finding, subject: &Subject, at: &str) {
    let what = subject_name(subject);
    f.rate(Probability::Certain, Impact::High);
    f.facts.push(format!("{what} is dropped earlier in this batch, at {at}: the statement fails"));
}

/// Probes become findings only when the database confirms them.
fn confirm(
    client: &mut impl GenericClient,
    f: &mut Finding,
    settings: &Settings,
) -> Result<bool, CheckError> {
    match &f.origin {
        // Nothing on the live database can collide with what the batch makes.
        Some(Origin::Created { .. } | Origin::Dropped { .. }) => return Ok(false),
        Some(Origin::Live { table, column }) => {
            if let Some(subject) = &f.subject {
                f.subject = Some(renamed_subject(subject, table.clone(), column.clone()));
            }
        }
        None => {}
    }
    match f.subject.clone() {
        Some(Subject::Policy { table, name: policy }) => {
            let taken: Option<String> = client
                .query_opt(
                    "select c.relname::text from pg_policy p join pg_class c on c.oid = p.polrelid
                      where p.polname = $2 and p.polrelid = to_regclass($1)",
                    &[&regclass(&table), &policy],
                )
                .map_err(db("reading pg_policy"))?
                .map(|r| r.get(0));
            if taken.is_some() {
                f.facts.push(format!("pg_policy already has {policy} on {}", name(&table)));
                return Ok(true);
            }
            Ok(false)
        }
        Some(Subject::RowPolicies { table }) => super::rls::not_forced(client, f, &table, settings),
        Some(Subject::OwnerColumns { table, columns }) => {
            super::rls::owner_columns(client, f, &table, &columns)
        }
        Some(Subject::RowSecurity { .. }) => {
            let Some(tables) = tables_with_rls(client)? else { return Ok(false) };
            f.facts.push(format!(
                "the database has row level security on {tables}: this project relies on it"
            ));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Protected tables from config that the server does not have (and the run
/// or another of the project's migrations does not create): `migrate`'s
/// pre-flight would refuse.
fn missing_protected_tables(
    client: &mut impl GenericClient,
    settings: &Settings,
    created: &[RelationName],
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    let config = settings.config_file.display().to_string();
    let line = std::fs::read_to_string(&settings.config_file)
        .ok()
        .and_then(|text| {
            text.lines().position(|l| l.trim_start().starts_with("protected_tables")).map(|i| i + 1)
        })
        .unwrap_or(1);
    for configured in &settings.lint.protected_tables {
        let (schema, table) = match configured.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.contains('.') => {
                (Some(s.to_string()), t.to_string())
            }
            _ => (None, configured.clone()),
        };
        let rel = RelationName { schema, name: table };
        let made = settings.protected_made.contains(configured);
        if made || created.iter().any(|c| backstop_lint::stmt::same_table(c, &rel)) {
            continue;
        }
        let exists: bool = client
            .query_one("select to_regclass($1) is not null", &[&regclass(&rel)])
            .map_err(db("looking up protected tables"))?
            .get(0);
        if !exists {
            let mut f = Finding::new(
                Code::BS100,
                config.clone(),
                line,
                format!("protected table {configured} does not exist on the server: backstop migrate's pre-flight refuses to run"),
                "fix [migrations] protected_tables in backstop.toml, or check that this is the right database",
            );
            f.facts.push(format!("to_regclass('{}') is NULL", regclass(&rel)));
            out.push(f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_sizes_are_in_the_powers_of_1000_that_config_and_backups_use() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8192), "8.2 kB");
        // One unit system with config and backups: powers of 1000.
        assert_eq!(human_bytes(3_400_000_000), "3.4 GB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.2 GB");
    }
}
