//! What a Citus coordinator changes for a rollout's guards. On Citus a
//! migration goes once through the coordinator, which carries the DDL to
//! the shards on the workers; Backstop routes nothing to shards itself.
//! So a target marked `kind = "citus-coordinator"` must be one, a plain
//! target must not be a Citus node, and the gates that copy or dump the
//! database know that the rows of its distributed tables live on the
//! workers. Citus is not needed to
//! decide any of this: the facts are read from the catalogs and judged
//! by [`judge`], tested without Citus.

use super::Kind;

/// What the database says about Citus.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The citus extension's version, when it is installed.
    pub citus: Option<String>,
    /// Whether this node is the coordinator (`None`: not a Citus node,
    /// or not known).
    pub coordinator: Option<bool>,
}

/// Reads the [`Facts`] of the database `client` is connected to.
pub fn facts(client: &mut postgres::Client) -> Result<Facts, postgres::Error> {
    let citus: Option<String> = client
        .query_opt("select extversion from pg_extension where extname = 'citus'", &[])?
        .map(|r| r.get(0));
    let coordinator = match citus {
        None => None,
        // The coordinator is group 0 in every Citus version that has
        // pg_dist_local_group; a worker has its own group id.
        Some(_) => client
            .query_opt("select groupid = 0 from pg_catalog.pg_dist_local_group", &[])
            .ok()
            .flatten()
            .map(|r| r.get(0)),
    };
    Ok(Facts { citus, coordinator })
}

/// Whether a target of `kind` may be migrated as it is; why not, with
/// the fix.
pub fn judge(kind: Kind, facts: &Facts) -> Result<(), String> {
    match (kind, &facts.citus, facts.coordinator) {
        (Kind::CitusCoordinator, None, _) => Err(
            "it is marked kind = \"citus-coordinator\" but the citus extension is not installed in \
             this database; point its url at the coordinator's database, or drop the kind"
                .into(),
        ),
        (Kind::CitusCoordinator, Some(_), Some(false)) | (Kind::Postgres, Some(_), Some(false)) => {
            Err("it is a Citus worker, not the coordinator: a migration goes once through the \
                 coordinator, which carries the DDL to the workers' shards; point its url at the \
                 coordinator and mark it kind = \"citus-coordinator\""
                .into())
        }
        (Kind::Postgres, Some(version), _) => Err(format!(
            "it has the citus extension ({version}); mark the target kind = \"citus-coordinator\" \
             so its guards know that its distributed tables' rows live on the workers"
        )),
        _ => Ok(()),
    }
}

/// Why the backup gate's `pg_dump` is not the backup of a coordinator.
pub const DUMP_IS_NOT_A_BACKUP: &str =
    "Backstop does not count a pg_dump of a Citus coordinator as the cluster's backup: restoring \
     it would mean recreating the distribution and placing the shards on the workers again, which \
     its restore does not do; back up every node (a cluster-wide restore point, \
     citus_create_restore_point, with each node's WAL archived), then set [backup] required = \
     false for this rollout, or migrate the coordinator alone with `backstop migrate --backup ID`";

/// Why downs are not computed for a coordinator.
pub const NO_COMPUTED_DOWNS: &str =
    "downs are not computed for a Citus coordinator (proving them needs Citus in a throwaway \
     cluster); write down files for its migrations, or a rollback of them needs a restore";

/// Why a rehearsal's copy of a Citus database is never a template copy,
/// when `facts` says it is one.
pub fn template_copy_refusal(facts: &Facts) -> Option<String> {
    facts.citus.as_ref().map(|version| {
        format!(
            "the source has the citus extension ({version}): a template copy would copy the \
             coordinator's metadata and point at the same shards on the workers; it is dumped into \
             a throwaway cluster instead, which needs Citus installed there"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citus(coordinator: Option<bool>) -> Facts {
        Facts { citus: Some("12.1-1".into()), coordinator }
    }

    #[test]
    fn the_kind_must_be_what_the_database_is() {
        assert!(judge(Kind::Postgres, &Facts::default()).is_ok());
        assert!(judge(Kind::CitusCoordinator, &citus(Some(true))).is_ok());
        let e = judge(Kind::CitusCoordinator, &Facts::default()).unwrap_err();
        assert!(e.contains("not installed") && e.contains("drop the kind"), "{e}");
        for kind in [Kind::Postgres, Kind::CitusCoordinator] {
            let e = judge(kind, &citus(Some(false))).unwrap_err();
            assert!(e.contains("a Citus worker") && e.contains("through the coordinator"), "{e}");
        }
        let e = judge(Kind::Postgres, &citus(Some(true))).unwrap_err();
        assert!(e.contains("12.1-1") && e.contains("citus-coordinator"), "{e}");
    }

    #[test]
    fn a_citus_database_is_never_copied_by_template() {
        assert_eq!(template_copy_refusal(&Facts::default()), None);
        let why = template_copy_refusal(&citus(Some(true))).unwrap();
        assert!(why.contains("same shards") && why.contains("throwaway cluster"), "{why}");
    }
}
