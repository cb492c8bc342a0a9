//! The state of a database as `backstop status` and the status page show
//! it: applied, pending and drifted migrations by the rules of
//! [`crate::migrate::status`], the files that cannot run, runs that were
//! interrupted, freezes, an unfinished restore, another tool's history not
//! taken over; and the one rule of what needs a person before the next
//! migrate.

use postgres::Client;
use serde::Serialize;

use crate::adopt::Unadopted;
use crate::backup::restore::Journal;
use crate::freeze::{FreezeState, FrozenRole};
use crate::migrate::{self, ApplyError, Status};
use crate::schema::events::{self, Interrupted};
use crate::source::{Migration, Part, Problem, Stray};

/// A file that cannot run, and whether its migration is still to apply.
#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    pub version: String,
    pub pending: bool,
    #[serde(flatten)]
    pub problem: Problem,
}

impl FileProblem {
    /// What the problem stops.
    pub fn blocks(&self) -> &'static str {
        match (self.problem.part, self.pending) {
            (Part::Down, _) => "blocks a rollback through it",
            (_, true) => "blocks migrate",
            (_, false) => "applied already",
        }
    }
}

/// The state of the database and its migrations.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Runs that started and recorded no outcome.
    pub interrupted: Vec<Interrupted>,
    /// One of the interrupted runs was of a pending no-transaction
    /// migration, which commits statement by statement.
    #[serde(skip)]
    pub interrupted_no_transaction: bool,
    #[serde(flatten)]
    pub status: Status,
    pub problems: Vec<FileProblem>,
    /// Files of the folder that look like migrations and that their tool
    /// would never run (a name it skips, a file its journal does not list).
    pub strays: Vec<Stray>,
    pub frozen: Option<FreezeState>,
    pub frozen_roles: Vec<FrozenRole>,
    pub unfinished_restore: Option<Journal>,
    /// Copies a killed rehearsal left on this server.
    pub rehearsal_copies: Vec<crate::copies::LeftCopy>,
    /// Other tools' histories holding versions Backstop has not recorded.
    pub unadopted: Vec<Unadopted>,
    /// An expand in progress: both shapes served until contract or rollback.
    pub expand: Option<crate::expand::Open>,
}

impl Overview {
    /// Reads the database's side; `unfinished_restore` comes from the
    /// backups folder, read before connecting (an interrupted restore may
    /// be why connecting fails).
    pub fn read(
        client: &mut Client,
        migrations: &[Migration],
        strays: &[Stray],
        unfinished_restore: Option<Journal>,
    ) -> Result<Overview, ApplyError> {
        let db = |context: &'static str| {
            move |source| ApplyError::Db(crate::pg::DbError::new(context, source))
        };
        let status = migrate::status(client, migrations)?;
        let frozen = crate::freeze::current(client).map_err(db("reading backstop.freeze"))?;
        let frozen_roles =
            crate::freeze::frozen_roles(client).map_err(db("reading backstop.role_freeze"))?;
        let interrupted = events::interrupted(client).map_err(db("reading backstop.events"))?;
        let interrupted_no_transaction = interrupted.iter().any(|run| {
            run.versions
                .iter()
                .any(|v| status.pending.iter().any(|p| &p.version == v && p.no_transaction))
        });
        let server =
            crate::pg::server_version_num(client).map_err(db("reading the server version"))?;
        let server = crate::pg::bins::major_of_num(server);
        let problems = migrations
            .iter()
            .flat_map(|m| {
                let pending = status.pending.iter().any(|e| e.version == m.version);
                // A down the server cannot run, named as the parser's own problems are.
                let newer = m.runnable(Part::Down).then(|| m.needs_newer_server(server)).flatten();
                m.problems.iter().cloned().chain(newer).map(move |problem| FileProblem {
                    version: m.version.clone(),
                    pending,
                    problem,
                })
            })
            .collect();
        let all: Vec<&Migration> = migrations.iter().collect();
        let unadopted = crate::adopt::unadopted(client, &all).map_err(ApplyError::Db)?;
        let rehearsal_copies = crate::copies::left_copies(client)
            .map_err(db("listing rehearsal copies"))?
            .into_iter()
            .filter(|c| !c.running)
            .collect();
        let expand = crate::expand::Open::read(client).map_err(ApplyError::Db)?;
        Ok(Overview {
            expand,
            rehearsal_copies,
            interrupted,
            interrupted_no_transaction,
            status,
            problems,
            strays: strays.to_vec(),
            frozen,
            frozen_roles,
            unfinished_restore,
            unadopted,
        })
    }

    /// Whether a person must look before the next migrate: drift, a
    /// pending file that cannot run, a freeze, an unfinished restore, a
    /// half-applied or interrupted no-transaction migration, a file that
    /// looks like a migration and would never run, a pending migration
    /// another tool already applied.
    pub fn needs_a_person(&self) -> bool {
        let blocked = self.problems.iter().any(|p| p.pending && p.problem.part != Part::Down);
        !self.status.drifted.is_empty()
            || blocked
            || !self.strays.is_empty()
            || self.frozen.is_some()
            || !self.frozen_roles.is_empty()
            || self.unfinished_restore.is_some()
            || !self.status.half_applied.is_empty()
            || self.interrupted_no_transaction
            || self.unadopted.iter().any(|u| !u.applied.is_empty())
    }
}
