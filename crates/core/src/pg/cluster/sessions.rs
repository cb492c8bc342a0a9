//! Sessions on a throwaway cluster, as the superuser Backstop logs in as,
//! and giving that superuser's name up to a copy that needs it.

use super::{Cluster, ClusterError};

/// The superuser's name once a copy needed `postgres`.
const STAND_IN: &str = "backstop_superuser";
/// The name the bootstrap superuser is given then.
const BOOTSTRAP: &str = "backstop_bootstrap";

impl Cluster {
    /// A connection URL for `database` as the superuser, password included:
    /// pass it to code, show it only through [`crate::pg::conn::redact`].
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{database}",
            self.superuser, self.password, self.port
        )
    }

    /// A connection URL for `database` as the superuser over the cluster's
    /// Unix socket (no password: the socket is private and trusted), for a
    /// cluster that takes no TCP connection ([`Cluster::start_restored`]).
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "postgres://{}@/{database}?host={}&port={}",
            self.superuser,
            self.dir.display(),
            self.port
        )
    }

    /// A superuser session on `database`, over the Unix socket when TCP
    /// takes TLS only.
    pub fn connect(&self, database: &str) -> Result<postgres::Client, ClusterError> {
        if self.tls_only {
            return postgres::Config::new()
                .host_path(&self.dir)
                .port(self.port)
                .user(&self.superuser)
                .dbname(database)
                .connect(postgres::NoTls)
                .map_err(ClusterError::Connect);
        }
        postgres::Client::connect(&self.url(database), postgres::NoTls)
            .map_err(ClusterError::Connect)
    }

    /// Creates an empty database (from `template0`, or another template).
    pub fn create_database(&self, name: &str, template: Option<&str>) -> Result<(), ClusterError> {
        let mut client = self.connect("postgres")?;
        let template = template.unwrap_or("template0");
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                crate::pg::quote_ident(name),
                crate::pg::quote_ident(template)
            ))
            .map_err(ClusterError::Connect)
    }

    /// The roles Backstop made for itself: none, unless a copy needed the
    /// superuser's name.
    pub fn own_roles(&self) -> Vec<String> {
        if self.superuser == STAND_IN {
            vec![STAND_IN.to_string(), BOOTSTRAP.to_string()]
        } else {
            Vec::new()
        }
    }

    /// Frees the role name `name` where it is the superuser's, for a copy
    /// of a source on which a role of that name is no superuser (a
    /// platform's `postgres`): Backstop logs in as a superuser of another
    /// name from then on, and the bootstrap superuser is renamed, so that
    /// the source's role can be made with its own attributes. Whether the
    /// name was the superuser's.
    pub fn free_role_name(&mut self, name: &str) -> Result<bool, ClusterError> {
        if name != self.superuser {
            return Ok(false);
        }
        let mut client = self.connect("postgres")?;
        // The password is letters and digits only: no quoting to get wrong.
        client
            .batch_execute(&format!(
                "CREATE ROLE {STAND_IN} SUPERUSER LOGIN PASSWORD '{}'",
                self.password
            ))
            .map_err(ClusterError::Connect)?;
        drop(client);
        let old = std::mem::replace(&mut self.superuser, STAND_IN.to_string());
        let mut client = self.connect("postgres")?;
        client
            .batch_execute(&format!(
                "ALTER ROLE {} RENAME TO {BOOTSTRAP}",
                crate::pg::quote_ident(&old)
            ))
            .map_err(ClusterError::Connect)?;
        Ok(true)
    }
}
