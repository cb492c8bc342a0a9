//! The history rows of the tools that keep one row per migration in a
//! table of their own, written and taken out as each tool does: sqlx's
//! `_sqlx_migrations` (the up file's SHA-384, the run time in
//! nanoseconds), diesel's `__diesel_schema_migrations`, dbmate's and
//! golang-migrate's `schema_migrations` (golang-migrate keeps one row: the
//! current version, not dirty), goose's `goose_db_version` (its row 0
//! first), Flyway's `flyway_schema_history` (the next rank, the script's
//! CRC-32 as Flyway computes it). Each tool then sees the database as
//! its own runs would have left it, and does not run again what Backstop
//! applied.

use postgres::GenericClient;

use crate::source::{Layout, Migration};

/// The up file's bytes as the tool reads them (the text Backstop read,
/// where the file is gone).
fn bytes(m: &Migration) -> Vec<u8> {
    std::fs::read(&m.up.path).unwrap_or_else(|_| m.up.text.as_bytes().to_vec())
}

/// The row `m`'s tool writes once it applied `m`.
pub(super) fn applied(
    client: &mut impl GenericClient,
    m: &Migration,
    t: &str,
    duration_ms: i64,
) -> Result<(), postgres::Error> {
    use sha2::Digest as _;
    let version = m.tool_version.as_str();
    let number = || version.parse::<i64>().unwrap_or(0);
    match m.layout {
        Layout::Sqlx => {
            let checksum = sha2::Sha384::digest(bytes(m)).to_vec();
            client.execute(&format!("delete from {t} where version = $1"), &[&number()])?;
            client.execute(
                &format!(
                    "insert into {t} (version, description, success, checksum, execution_time)
                     values ($1, $2, true, $3, $4)"
                ),
                &[&number(), &m.name.replace('_', " "), &checksum, &(duration_ms * 1_000_000)],
            )?;
        }
        Layout::Diesel | Layout::Dbmate => {
            client.execute(&format!("delete from {t} where version = $1"), &[&version])?;
            client.execute(&format!("insert into {t} (version) values ($1)"), &[&version])?;
        }
        Layout::GolangMigrate => {
            client.execute(&format!("delete from {t}"), &[])?;
            client.execute(
                &format!("insert into {t} (version, dirty) values ($1, false)"),
                &[&number()],
            )?;
        }
        Layout::Goose => {
            client.execute(
                &format!("insert into {t} (version_id, is_applied) values ($1, true)"),
                &[&number()],
            )?;
        }
        Layout::Flyway => flyway_applied(client, m, t, duration_ms)?,
        _ => {}
    }
    Ok(())
}

/// Flyway's row: the next rank, the version (none for a repeatable
/// script), the description with spaces, the script's name and CRC-32.
fn flyway_applied(
    client: &mut impl GenericClient,
    m: &Migration,
    t: &str,
    duration_ms: i64,
) -> Result<(), postgres::Error> {
    let version = (!m.repeatable).then(|| m.tool_version.clone());
    let script =
        m.up.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let checksum = super::flyway_crc32(&bytes(m));
    let ms = i32::try_from(duration_ms).unwrap_or(i32::MAX);
    client.execute(
        &format!(
            "insert into {t} (installed_rank, version, description, type, script, checksum,
                              installed_by, execution_time, success)
             select coalesce(max(installed_rank), 0) + 1, $1, $2, 'SQL', $3, $4, current_user, $5, true
               from {t}"
        ),
        &[&version, &m.name.replace('_', " "), &script, &checksum, &ms],
    )?;
    Ok(())
}

/// Takes `m` out as the tool's own undo does: its row deleted (sqlx's
/// `migrate revert`, diesel's `migration revert`, dbmate's `rollback`,
/// goose's `down`, Flyway's history without it, so its next `migrate`
/// runs it again); golang-migrate's one row set back to the version
/// before `m` among `applied` (none left: no row).
pub(super) fn reverted(
    client: &mut impl GenericClient,
    m: &Migration,
    t: &str,
    applied: &[String],
) -> Result<(), postgres::Error> {
    let version = m.tool_version.as_str();
    let number = version.parse::<i64>().unwrap_or(0);
    match m.layout {
        Layout::Sqlx => {
            client.execute(&format!("delete from {t} where version = $1"), &[&number])?;
        }
        Layout::Diesel | Layout::Dbmate => {
            client.execute(&format!("delete from {t} where version = $1"), &[&version])?;
        }
        Layout::Goose => {
            client.execute(&format!("delete from {t} where version_id = $1"), &[&number])?;
        }
        Layout::Flyway => {
            client.execute(&format!("delete from {t} where version = $1"), &[&version])?;
        }
        Layout::GolangMigrate => {
            let before =
                applied.iter().filter_map(|v| v.parse::<i64>().ok()).filter(|v| *v < number).max();
            client.execute(&format!("delete from {t}"), &[])?;
            if let Some(before) = before {
                client.execute(
                    &format!("insert into {t} (version, dirty) values ($1, false)"),
                    &[&before],
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}
