//! Who a database is: its name, its cluster's system identifier and its
//! server version, read once and recorded with every backup, so a backup
//! is reused or restored only for the database it was taken of.

use postgres::Client;

use super::BackupError;

/// Who the connected database is.
#[derive(Debug, Clone)]
pub struct Source {
    pub database: String,
    pub system_identifier: Option<String>,
    pub server_version: String,
    pub server_version_num: i32,
    pub encoding: String,
}

/// Reads the identity of the connected database and server.
pub fn source_of(client: &mut Client) -> Result<Source, BackupError> {
    let row = client
        .query_one(
            "select current_database()::text, current_setting('server_version'),
                    current_setting('server_version_num')::int,
                    pg_encoding_to_char(encoding)::text
               from pg_database where datname = current_database()",
            &[],
        )
        .map_err(BackupError::db("reading the server version"))?;
    // Managed services may hide pg_control_system(); the name then has to do.
    let system_identifier = client
        .query_one("select system_identifier::text from pg_control_system()", &[])
        .ok()
        .map(|r| r.get::<_, String>(0));
    let version: String = row.get(1);
    Ok(Source {
        database: row.get(0),
        system_identifier,
        // "15.8 (Debian 15.8-0+deb12u1)" -> "15.8"
        server_version: version.split_whitespace().next().unwrap_or_default().to_string(),
        server_version_num: row.get(2),
        encoding: row.get(3),
    })
}
