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

use super::table::{kept, name, regclass, scale_lock, table_facts, table_size, Outcome};
use super::{CheckError, Settings};

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
        |t: &RelationName| created.iter().any(|c| backstop_sql::stmt::same_table(c, t));
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
            super::columns::column_type(client, f, &table, &column, &new_type)
        }
        Some(Subject::NotNull { table, column }) => {
            super::columns::not_null(client, f, &table, &column)
        }
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
        Some(Subject::Functions { table, names }) => {
            super::columns::functions(client, f, &table, &names)
        }
        Some(Subject::Policy { .. } | Subject::OwnerColumns { .. } | Subject::KeyIndex { .. })
        | None => Ok(Outcome::Keep),
    }
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
        | Subject::KeyIndex { table, .. }
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
        | Subject::KeyIndex { table, .. }
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
        Some(Subject::KeyIndex { table, index, columns }) => {
            super::columns::key_index(client, f, &table, &index, &columns)
        }
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
        if made || created.iter().any(|c| backstop_sql::stmt::same_table(c, &rel)) {
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
