//! The one classification of errors into exit codes, for every command:
//! 0 ok, 1 the check found problems, 2 usage or configuration, 3
//! environment (database unreachable, a PostgreSQL binary missing). Each
//! domain error says its own code; this list is the one place that knows
//! them all, so a binary asks it once per cause of an error chain.

use std::error::Error;

use crate::compare::CompareError;
use crate::pg::ConnectError;

/// The exit code `err` means, if it is one of core's errors.
pub fn code(err: &(dyn Error + 'static)) -> Option<u8> {
    macro_rules! own_code {
        ($($t:ty),* $(,)?) => {
            $(
                if let Some(e) = err.downcast_ref::<$t>() {
                    return Some(e.exit_code());
                }
            )*
        };
    }
    own_code!(
        crate::migrator::MigratorError,
        crate::migrate::ApplyError,
        crate::expand::ExpandError,
        crate::flags::FlagsError,
        crate::flags::ramp::RampError,
        crate::incident::IncidentError,
        crate::incident::NotifyError,
        crate::respond::RespondError,
        crate::rollout::RolloutError,
        crate::watch::WatchError,
        crate::adopt::AdoptError,
        crate::backup::BackupError,
        crate::sync::SyncError,
        crate::clear::ClearError,
        crate::freeze::FreezeError,
        crate::rehearse::RehearseError,
        crate::downs::DownsError,
        crate::downs::write::WriteError,
        crate::check::CheckError,
        crate::verify::VerifyError,
        crate::drill::DrillError,
        crate::pg::pooler::Pooled,
        ConnectError,
    );
    if let Some(e) = err.downcast_ref::<CompareError>() {
        return Some(match e {
            CompareError::Connect(c) => c.exit_code(),
            CompareError::Db(_) => 3,
        });
    }
    if err.is::<crate::config::ConfigError>() || err.is::<crate::source::SourceError>() {
        return Some(2);
    }
    if err.is::<crate::pg::cluster::ClusterError>() || err.is::<postgres::Error>() {
        return Some(3);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_apply_error_keeps_its_code() {
        // Regression: migrate's errors came wrapped in the migrator's, whose
        // `transparent` display hid the apply error from the chain; a
        // folder error exited 1 instead of 2.
        let apply = crate::migrate::ApplyError::UnknownVersion("9".into());
        let e = crate::migrator::MigratorError::Apply(apply);
        assert_eq!(
            code(&e),
            crate::migrate::ApplyError::UnknownVersion("9".into()).exit_code().into()
        );
        assert_eq!(code(&crate::migrator::MigratorError::NoBackupReason), Some(2));
        let e = ConnectError::BadUrl { url: "x".into(), reason: "y".into() };
        assert_eq!(code(&e), Some(2));
        assert_eq!(code(&std::io::Error::other("z")), None);
    }
}
