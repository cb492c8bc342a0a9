//! What an up changes of what the whole server shares, which a schema dump
//! does not hold: roles (their attributes), memberships and the roles'
//! settings (for every database, and for this one), and `ALTER SYSTEM`.
//! A replay runs in a throwaway cluster, so these are the replay's own and
//! can be read and put back: a role the up created is dropped by the down,
//! a setting the up changed is set back. `ALTER SYSTEM` runs outside a
//! transaction: its part of a down is proved for real and the up's
//! settings made again after.

use std::collections::BTreeMap;

use postgres::GenericClient;

use backstop_sql::rewrite::{ident, literal};

/// A role's attributes, as `CREATE ROLE` writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Role {
    attributes: Vec<&'static str>,
}

/// The server-wide state a replay can change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Globals {
    roles: BTreeMap<String, Role>,
    /// `(role, member)` → with admin option.
    members: BTreeMap<(String, String), bool>,
    /// `(role, this database?, setting name)` → value.
    settings: BTreeMap<(String, bool, String), String>,
    /// This database's own settings (`ALTER DATABASE … SET`): name → value.
    database: BTreeMap<String, String>,
    /// `ALTER SYSTEM` settings: name → value.
    system: BTreeMap<String, String>,
}

const ATTRIBUTES: [(&str, &str, &str); 7] = [
    ("rolsuper", "SUPERUSER", "NOSUPERUSER"),
    ("rolinherit", "INHERIT", "NOINHERIT"),
    ("rolcreaterole", "CREATEROLE", "NOCREATEROLE"),
    ("rolcreatedb", "CREATEDB", "NOCREATEDB"),
    ("rolcanlogin", "LOGIN", "NOLOGIN"),
    ("rolreplication", "REPLICATION", "NOREPLICATION"),
    ("rolbypassrls", "BYPASSRLS", "NOBYPASSRLS"),
];

impl Globals {
    /// Reads them on the replay's server.
    pub fn read(client: &mut impl GenericClient) -> Result<Globals, postgres::Error> {
        let mut g = Globals::default();
        let columns: Vec<&str> = ATTRIBUTES.iter().map(|(c, _, _)| *c).collect();
        let sql = format!(
            "select rolname::text, {} from pg_roles where rolname !~ '^pg_'",
            columns.join(", ")
        );
        for r in client.query(&sql, &[])? {
            let attributes = ATTRIBUTES
                .iter()
                .enumerate()
                .map(|(i, (_, yes, no))| if r.get::<_, bool>(i + 1) { *yes } else { *no })
                .collect();
            g.roles.insert(r.get(0), Role { attributes });
        }
        for r in client.query(
            "select r.rolname::text, m.rolname::text, a.admin_option
               from pg_auth_members a
               join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member",
            &[],
        )? {
            g.members.insert((r.get(0), r.get(1)), r.get(2));
        }
        for r in client.query(
            "select r.rolname::text, s.setdatabase <> 0, split_part(c, '=', 1),
                    substr(c, length(split_part(c, '=', 1)) + 2)
               from pg_db_role_setting s
               join pg_roles r on r.oid = s.setrole
              cross join unnest(s.setconfig) c
              where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))",
            &[],
        )? {
            g.settings.insert((r.get(0), r.get(1), r.get(2)), r.get(3));
        }
        for r in client.query(
            "select split_part(c, '=', 1), substr(c, length(split_part(c, '=', 1)) + 2)
               from pg_db_role_setting s cross join unnest(s.setconfig) c
              where s.setrole = 0
                and s.setdatabase = (select oid from pg_database where datname = current_database())",
            &[],
        )? {
            g.database.insert(r.get(0), r.get(1));
        }
        // Only a superuser (or a role given it) may read the settings
        // files; a replay worked on as a platform's owner may not, and
        // that role cannot `ALTER SYSTEM` either, on the copy or on the
        // target: there is nothing of its own to find there.
        if Globals::files_readable(client)? {
            for r in client.query(
                "select name, setting from pg_file_settings
                  where sourcefile like '%postgresql.auto.conf' and error is null",
                &[],
            )? {
                g.system.insert(r.get(0), r.get(1));
            }
        }
        Ok(g)
    }

    /// Whether the session may read the settings files, as
    /// [`Globals::read`] asks before reading `ALTER SYSTEM`'s.
    pub fn files_readable(client: &mut impl GenericClient) -> Result<bool, postgres::Error> {
        let sql = "select has_table_privilege('pg_catalog.pg_file_settings', 'SELECT')";
        Ok(client.query_one(sql, &[])?.get(0))
    }

    /// One answer that changes whenever anything [`Globals::read`] reads
    /// changes (with `files`, the settings files' too): a cheap test,
    /// one round trip on a statement `prepared` keeps, before reading
    /// them whole.
    pub fn stamp(
        client: &mut impl GenericClient,
        prepared: &mut crate::pg::Prepared,
        files: bool,
    ) -> Result<String, postgres::Error> {
        let columns: Vec<&str> = ATTRIBUTES.iter().map(|(c, _, _)| *c).collect();
        let files = if files {
            "(select string_agg(name || '=' || setting, ',' order by name, setting)
                from pg_file_settings
               where sourcefile like '%postgresql.auto.conf' and error is null)"
        } else {
            "''"
        };
        let sql = format!(
            "select md5(concat_ws('|',
                (select string_agg(r::text, ',' order by r::text)
                   from (select rolname, {} from pg_roles where rolname !~ '^pg_') r),
                (select string_agg(roleid || ' ' || member || ' ' || admin_option, ','
                                   order by roleid, member) from pg_auth_members),
                (select string_agg(s::text, ',' order by s::text) from pg_db_role_setting s),
                {files}))",
            columns.join(", ")
        );
        let statement = prepared.get(client, &sql)?;
        Ok(client.query_one(&statement, &[])?.get(0))
    }

    /// Whether the `ALTER SYSTEM` settings are the same.
    pub fn same_system(&self, now: &Globals) -> bool {
        self.system == now.system
    }

    /// What differs from `before`, one line each, for a proof in a
    /// transaction (which `ALTER SYSTEM` cannot run in: its settings are
    /// compared apart, by [`Globals::same_system`]).
    pub fn differences(&self, now: &Globals) -> Vec<String> {
        let mut out = Vec::new();
        for (name, role) in &now.roles {
            match self.roles.get(name) {
                None => out.push(format!("role {name} is there, and was not before the up")),
                Some(r) if r != role => out.push(format!("role {name} has other attributes")),
                _ => {}
            }
        }
        for name in self.roles.keys().filter(|n| !now.roles.contains_key(*n)) {
            out.push(format!("role {name} is gone"));
        }
        if self.members != now.members {
            out.push("role memberships differ".into());
        }
        if self.settings != now.settings {
            out.push("role settings differ".into());
        }
        let names: std::collections::BTreeSet<&String> =
            self.database.keys().chain(now.database.keys()).collect();
        for name in names {
            match (self.database.get(name), now.database.get(name)) {
                (a, b) if a == b => {}
                (Some(a), b) => out.push(format!(
                    "the database's setting {name} is {}, and was {a} before the up",
                    b.map_or("not set".to_string(), |b| b.to_string())
                )),
                (None, Some(b)) => out.push(format!(
                    "the database's setting {name} is {b}, and was not set before the up"
                )),
                (None, None) => {}
            }
        }
        out
    }
}

/// What puts the server-wide state back.
#[derive(Debug, Default)]
pub struct GlobalsDown {
    /// Before the rest of the down: roles made again, attributes,
    /// memberships and settings put back.
    pub first: Vec<String>,
    /// After it: the roles the up created, dropped once the down has
    /// dropped what they own or may use.
    pub last: Vec<String>,
    /// `ALTER SYSTEM` back to the settings before the up: run outside a
    /// transaction, so the down runs statement by statement.
    pub system: Vec<String>,
    /// What the down cannot do by itself.
    pub notes: Vec<String>,
}

/// The statements that put `before` back from `after`.
pub fn plan(before: &Globals, after: &Globals) -> GlobalsDown {
    let (mut first, mut last, mut system, notes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((role, member), _) in
        after.members.iter().filter(|(k, _)| !before.members.contains_key(*k))
    {
        if before.roles.contains_key(role) && before.roles.contains_key(member) {
            first.push(format!("REVOKE {} FROM {}", ident(role), ident(member)));
        }
    }
    for ((role, member), admin) in
        before.members.iter().filter(|(k, _)| !after.members.contains_key(*k))
    {
        let admin = if *admin { " WITH ADMIN OPTION" } else { "" };
        first.push(format!("GRANT {} TO {}{admin}", ident(role), ident(member)));
    }
    for (key, old) in &before.settings {
        if after.settings.get(key) != Some(old) && after.roles.contains_key(&key.0) {
            first.push(role_setting(key, Some(old)));
        }
    }
    for key in after.settings.keys().filter(|k| !before.settings.contains_key(*k)) {
        if before.roles.contains_key(&key.0) {
            first.push(role_setting(key, None));
        }
    }
    let names: std::collections::BTreeSet<&String> =
        before.database.keys().chain(after.database.keys()).collect();
    for name in names.into_iter().filter(|n| before.database.get(*n) != after.database.get(*n)) {
        first.push(database_setting(name, before.database.get(name)));
    }
    for (name, role) in &before.roles {
        match after.roles.get(name) {
            None => first
                .insert(0, format!("CREATE ROLE {} {}", ident(name), role.attributes.join(" "))),
            Some(now) if now != role => {
                first.push(format!("ALTER ROLE {} {}", ident(name), role.attributes.join(" ")))
            }
            _ => {}
        }
    }
    for name in after.roles.keys().filter(|n| !before.roles.contains_key(*n)) {
        last.push(format!("DROP ROLE IF EXISTS {}", ident(name)));
    }
    let keys: std::collections::BTreeSet<&String> =
        before.system.keys().chain(after.system.keys()).collect();
    for key in keys {
        if before.system.get(key) != after.system.get(key) {
            system.push(match before.system.get(key) {
                Some(v) => format!("ALTER SYSTEM SET {} = {}", ident(key), literal(v)),
                None => format!("ALTER SYSTEM RESET {}", ident(key)),
            });
        }
    }
    if !system.is_empty() {
        system.push("SELECT pg_reload_conf()".into());
    }
    GlobalsDown { first, last, system, notes }
}

/// `ALTER DATABASE … SET` back to `old`, or `RESET` when there was none;
/// the database is named at run time, since the down runs on the target,
/// not on the replay.
fn database_setting(name: &str, old: Option<&String>) -> String {
    let what = match old.and_then(|v| super::globals::assignment(&format!("{name}={v}"))) {
        Some(assignment) => format!("SET {assignment}"),
        None => format!("RESET {}", ident(name)),
    };
    format!(
        "DO $backstop$ BEGIN EXECUTE format('ALTER DATABASE %I {}', current_database()); END $backstop$",
        what.replace('\'', "''").replace('%', "%%")
    )
}

/// `ALTER ROLE … SET` back to `old`, or `RESET` when there was none; for
/// this database's setting the database is named at run time, since the
/// down runs on the target, not on the replay.
fn role_setting((role, here, name): &(String, bool, String), old: Option<&String>) -> String {
    let what = match old.and_then(|v| super::globals::assignment(&format!("{name}={v}"))) {
        Some(assignment) => format!("SET {assignment}"),
        None => format!("RESET {}", ident(name)),
    };
    if *here {
        format!(
            "DO $backstop$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I {}', {}, current_database()); END $backstop$",
            what.replace('\'', "''").replace('%', "%%"),
            literal(role)
        )
    } else {
        format!("ALTER ROLE {} {what}", ident(role))
    }
}
