//! Gates run under the migration lock before the first migration: a refusal
//! stops the run and is audited; a pass stamps its ids on the applied rows.

use backstop_core::migrate::{
    self, ApplyError, Gate, GatePass, GateRefusal, MigrateOptions, Quiet, Settings,
};
use backstop_core::pg::cluster::Cluster;
use backstop_core::source::{self, Migration};

struct Fixed {
    refuse: bool,
    seen: Vec<String>,
}

impl Gate for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    fn check(
        &mut self,
        client: &mut postgres::Client,
        pending: &[&Migration],
        _dry_run: bool,
    ) -> Result<GatePass, GateRefusal> {
        self.seen = pending.iter().map(|m| m.version.clone()).collect();
        // The gate runs while this session holds the migration lock.
        let held: bool = client
            .query_one("select exists (select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())", &[])
            .unwrap()
            .get(0);
        assert!(held, "gates run under the migration lock");
        if self.refuse {
            return Err(GateRefusal {
                gate: "fixed".into(),
                reason: "no backup".into(),
                exit_code: 3,
            });
        }
        Ok(GatePass {
            detail: serde_json::json!({ "ok": true }),
            backup_id: Some("b-1".into()),
            ..Default::default()
        })
    }
}

fn settings() -> Settings {
    Settings {
        protected_tables: vec![],
        lock_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(60),
        lock_wait: std::time::Duration::from_secs(5),
        lock_retries: 0,
        keep: None,
        tool_history: backstop_core::migrate::InStep::Auto,
        reason: None,
        protected_made: Vec::new(),
        extensions_as_superuser: None,
    }
}

#[test]
fn a_refusing_gate_stops_the_run_and_a_passing_one_stamps_the_history() {
    let cluster = Cluster::start().unwrap();
    cluster.create_database("gates", None).unwrap();
    let mut client = cluster.connect("gates").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("1_t")).unwrap();
    std::fs::write(dir.path().join("1_t/up.sql"), "CREATE TABLE t (id int);").unwrap();
    let ms = source::load(dir.path(), None).unwrap().migrations;
    let opts = MigrateOptions::default();

    let mut refusing = Fixed { refuse: true, seen: vec![] };
    let err =
        migrate::migrate(&mut client, &ms, &settings(), &opts, &mut [&mut refusing], &mut Quiet)
            .unwrap_err();
    assert!(matches!(err, ApplyError::Gate(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert_eq!(refusing.seen, ["1"]);
    let t: bool = client.query_one("select to_regclass('t') is null", &[]).unwrap().get(0);
    assert!(t, "nothing ran after the refusal");
    let outcome: String = client
        .query_one("select outcome from backstop.events order by id desc limit 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(outcome, "refused");

    let mut passing = Fixed { refuse: false, seen: vec![] };
    let report =
        migrate::migrate(&mut client, &ms, &settings(), &opts, &mut [&mut passing], &mut Quiet)
            .unwrap();
    assert_eq!(report.done.len(), 1);
    let row = client
        .query_one("select backup_id from backstop.applied where version = '1'", &[])
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("b-1"));
    let gates: serde_json::Value = client
        .query_one("select details->'gates' from backstop.events where outcome = 'ok'", &[])
        .unwrap()
        .get(0);
    assert_eq!(gates, serde_json::json!({ "fixed": { "ok": true } }));

    // Nothing pending: gates are not consulted.
    let mut untouched = Fixed { refuse: true, seen: vec!["none".into()] };
    migrate::migrate(&mut client, &ms, &settings(), &opts, &mut [&mut untouched], &mut Quiet)
        .unwrap();
    assert_eq!(untouched.seen, ["none"]);
}
