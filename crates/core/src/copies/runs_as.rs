//! A throwaway cluster's copies worked on as the role the source's own
//! sessions are, where that role is no superuser (a platform's project
//! owner: `postgres` on Supabase). Backstop is the cluster's superuser;
//! had the history and its downs run as that, a down that drops a
//! trigger on a platform table the owner may only add triggers to
//! (`auth.users`) would be proved, and then fail on the target with
//! "must be owner of relation users" when `rollback` runs it. So each
//! session on a copy sets its role to the source's, which the copy's
//! roles hold (they are the source's), and a copy belongs to the role the
//! source database belongs to (which decides who may `CREATE SCHEMA`,
//! and who `pg_database_owner` is). What is Backstop's own there is made
//! by the superuser beforehand: its tables, given to that role, and the
//! journal's event triggers, which only a superuser may make (their
//! functions run as their owner, whoever's statements fire them). What
//! a platform lets its owner do through hooks a copy lacks (make an
//! untrusted extension) runs there as the superuser: see
//! `migrate::Settings::extensions_as_superuser`.

use postgres::Client;

use super::dump::db_err;
use super::CopyError;
use crate::pg::cluster::Cluster;
use crate::pg::quote_ident;

/// The role the source's sessions are, and the role its database belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsAs {
    pub role: String,
    /// Where the copy's cluster holds that role.
    pub owner: Option<String>,
}

impl RunsAs {
    /// Of the session `source`: `None` where it is a superuser (a copy's
    /// superuser then is what the source's sessions are already).
    pub fn of(source: &mut Client) -> Result<Option<RunsAs>, CopyError> {
        let row = source
            .query_one(
                "select current_user::text, r.rolsuper,
                        (select pg_get_userbyid(d.datdba)::text from pg_database d
                          where d.datname = current_database())
                   from pg_roles r where r.rolname = current_user",
                &[],
            )
            .map_err(db_err("reading the role the source's sessions are"))?;
        let (role, superuser, owner): (String, bool, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        Ok((!superuser).then_some(RunsAs { role, owner }))
    }

    /// Readies database `base` of a throwaway cluster, through `admin` (a
    /// superuser's session on it), to be copied and worked on as the role:
    /// it belongs to the source database's owner, Backstop's tables are
    /// there and the role may write them, the journal's triggers are made.
    pub fn ready(&mut self, admin: &mut Client, base: &str) -> Result<(), CopyError> {
        let held: bool = admin
            .query_one("select exists (select 1 from pg_roles where rolname = $1)", &[&self.owner])
            .map_err(db_err("reading the copy's roles"))?
            .get(0);
        if !held {
            self.owner = None;
        }
        if let Some(owner) = &self.owner {
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} OWNER TO {}",
                    quote_ident(base),
                    quote_ident(owner)
                ))
                .map_err(db_err("giving the copy to the source database's owner"))?;
        }
        crate::schema::ensure(admin).map_err(db_err("creating Backstop's tables on the copy"))?;
        crate::pg::tracked::install_journal(admin)
            .map_err(db_err("making the journal's triggers on the copy"))?;
        crate::schema::grant_to(admin, &self.role)
            .map_err(db_err("letting the source's role write Backstop's tables on the copy"))
    }

    /// Frees the name of the role in `cluster` (before the source's roles
    /// are made there) where its superuser has it: a platform's `postgres`.
    pub fn free_name(&self, cluster: &mut Cluster) -> Result<(), CopyError> {
        cluster.free_role_name(&self.role).map(|_| ()).map_err(CopyError::Cluster)
    }

    /// The owner a copy made from a readied base is given, as a clause of
    /// `CREATE DATABASE`.
    pub fn owner_clause(&self) -> String {
        self.owner.as_ref().map(|o| format!(" OWNER {}", quote_ident(o))).unwrap_or_default()
    }
}
