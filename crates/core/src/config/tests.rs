//! The configuration as users write it: accepted, defaulted, or refused with its place.

use super::*;
use crate::backup::VerifyLevel;
use std::time::Duration;

const ISSUE_EXAMPLE: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
protected_tables = ["users", "ai_usage_tracking", "usage_alerts"]
lock_timeout = "5s"
statement_timeout = "15min"
"#;

#[test]
fn accepts_the_documented_example() {
    let cfg = Config::parse(ISSUE_EXAMPLE, Path::new("conf/backstop.toml")).unwrap();
    assert_eq!(cfg.migrations.dir, PathBuf::from("conf/migrations"));
    assert_eq!(cfg.migrations.protected_tables.len(), 3);
    assert_eq!(cfg.migrations.lock_timeout, Duration::from_secs(5));
    assert_eq!(cfg.migrations.statement_timeout, Duration::from_secs(900));
    assert_eq!(cfg.database_url(Some("postgres://x/y")).unwrap(), "postgres://x/y");
}

#[test]
fn every_file_backstop_writes_by_default_is_under_the_local_dir() {
    // Regression: rehearsal reports went to ./rehearsals/, beside the
    // project's own files and outside the folder init keeps out of git.
    let cfg = Config::parse("", Path::new("backstop.toml")).unwrap();
    for (key, dir) in [
        ("[rehearse] report_dir", &cfg.rehearse.report_dir),
        ("[rehearse] proofs", &cfg.rehearse.proofs),
        ("[backup] dir", &cfg.backup.dir),
        ("[rollback] dir", &cfg.rollback.dir),
    ] {
        assert!(dir.starts_with(LOCAL_DIR), "{key} defaults to {}", dir.display());
    }
    assert_eq!(cfg.rehearse.report_dir, PathBuf::from(".backstop/rehearsals"));
}

/// The `[backup]` block of issue 3, exactly as scripts write it.
const BACKUP_CONTRACT: &str = r#"[backup]
dir = ".backstop/backups"
max_age = "1h"
retention = "30d"
"#;

#[test]
fn accepts_the_backup_contract_and_fills_in_defaults() {
    let cfg = Config::parse(BACKUP_CONTRACT, Path::new("conf/backstop.toml")).unwrap();
    assert_eq!(cfg.backup.dir, PathBuf::from("conf/.backstop/backups"));
    assert_eq!(cfg.backup.max_age, Duration::from_secs(3600));
    assert_eq!(cfg.backup.retention, Duration::from_secs(30 * 86400));
    assert_eq!(cfg.backup.keep_min, 3);
    assert_eq!(cfg.backup.verified, VerifyLevel::Checksums);
    assert!(cfg.backup.required);
    assert!(cfg.freeze.terminate_sessions);
    let cfg = Config::parse(
        "[backup]\nmin_size = \"1MB\"\nverified = \"restore\"\nrequired = false\njobs = 4\n",
        Path::new("b.toml"),
    )
    .unwrap();
    assert_eq!(cfg.backup.min_size, 1_000_000);
    assert_eq!(cfg.backup.verified, VerifyLevel::Restore);
    assert!(!cfg.backup.required);
    assert_eq!(cfg.backup.jobs, Some(4));
}

#[test]
fn bad_backup_values_are_located() {
    let err = Config::parse("[backup]\nverified = \"eyeballed\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("eyeballed"), "{err}");
    let err = Config::parse("[backup]\nmin_size = \"1 parsec\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("invalid size"), "{err}");
    let err = Config::parse("[backup]\nretension = \"30d\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("retension"), "{err}");
}

#[test]
fn zero_timeouts_are_refused_unless_written_off() {
    for key in ["lock_timeout", "statement_timeout"] {
        let text = format!("[migrations]\n{key} = \"0s\"\n");
        let err = Config::parse(&text, Path::new("b.toml")).unwrap_err().to_string();
        assert!(err.starts_with("b.toml:2:") && err.contains("\"off\""), "{err}");
        let cfg = Config::parse(&format!("[migrations]\n{key} = \"off\"\n"), Path::new("b.toml"))
            .unwrap();
        let warnings = cfg.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(key), "{warnings:?}");
    }
    assert!(Config::parse("", Path::new("b.toml")).unwrap().warnings().is_empty());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "[migrations]\ndir = \"m\"\nlock_timout = \"5s\"\n";
    let err = Config::parse(text, Path::new("backstop.toml")).unwrap_err().to_string();
    assert!(err.starts_with("backstop.toml:3:1:"), "{err}");
    assert!(err.contains("lock_timout"), "{err}");
}

#[test]
fn wrong_type_and_bad_duration_are_located() {
    let err = Config::parse("[migrations]\nprotected_tables = \"users\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:"), "{err}");
    let err = Config::parse("[migrations]\nlock_timeout = \"5 parsecs\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("invalid duration"), "{err}");
}

#[test]
fn malformed_toml_is_located() {
    let err = Config::parse("[database\nurl = 1\n", Path::new("b.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { line: 1, .. }), "{err}");
}

#[test]
fn missing_env_names_the_line() {
    let cfg = Config::parse(
        "[database]\nurl = \"${BACKSTOP_TEST_SURELY_UNSET}\"\n",
        Path::new("backstop.toml"),
    )
    .unwrap();
    let err = cfg.database_url(None).unwrap_err().to_string();
    assert!(err.starts_with("backstop.toml:2:"), "{err}");
    assert!(err.contains("BACKSTOP_TEST_SURELY_UNSET"), "{err}");
}

#[test]
fn values_postgres_or_the_server_would_misread_are_refused_with_their_line() {
    // Regression: lock_timeout = "900us" went to PostgreSQL as '0ms',
    // which is no limit; jobs = 0 and a zero rate were accepted.
    let err = Config::parse("[migrations]\nlock_timeout = \"900us\"\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("1ms"), "{err}");
    let err = Config::parse("[backup]\ndir = \"b\"\njobs = 0\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:3:") && err.contains("jobs = 0"), "{err}");
    let err = Config::parse("[serve]\nmax_evaluations_per_second = 0\n", Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:2:") && err.contains("every evaluation"), "{err}");
    assert!(Config::parse("[backup]\njobs = 2\n", Path::new("b.toml")).is_ok());
}

#[test]
fn a_trigger_json_path_is_checked_when_the_config_loads() {
    let trigger = |path: &str| {
        format!(
            "[serve]\nlisten = \"127.0.0.1:1\"\n\n[[triggers]]\nname = \"errors\"\nsource = \"http\"\nurl = \"http://127.0.0.1:9/x\"\njson_path = \"{path}\"\nabove = 0.05\nmethod = \"A\"\n"
        )
    };
    let cfg = Config::parse(&trigger("$.data.series[0].rate"), Path::new("b.toml")).unwrap();
    assert_eq!(cfg.triggers.len(), 1);
    let err = Config::parse(&trigger("$.data..rate"), Path::new("b.toml")).unwrap_err().to_string();
    assert!(err.starts_with("b.toml:5:") && err.contains("write it like"), "{err}");
}

#[test]
fn a_traffic_guard_must_name_another_trigger() {
    let trigger = |extra: &str| {
        format!(
            "[[triggers]]\nname = \"error rate\"\nsource = \"sql\"\nsql = \"select 1\"\nabove = 0.05\nmethod = \"A\"\n{extra}"
        )
    };
    let err =
        Config::parse(&trigger("traffic = \"requests\"\nmin_traffic = 10\n"), Path::new("b.toml"))
            .unwrap_err()
            .to_string();
    assert!(err.contains("b.toml:2") && err.contains("names no trigger"), "{err}");
    let err = Config::parse(&trigger("traffic = \"requests\"\n"), Path::new("b.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("min_traffic = N together"), "{err}");
}
