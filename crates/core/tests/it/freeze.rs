//! The write freeze against a real cluster: new sessions are read-only,
//! open ones are ended, Backstop's own are exempt, a second freeze keeps
//! the first one's record, and lifting it (or dropping its guard) puts the
//! database's own setting back.

use backstop_core::freeze::FreezeSection;
use backstop_core::freeze::{self, FreezeGuard};
use backstop_core::pg::cluster::Cluster;

fn read_only(client: &mut postgres::Client) -> String {
    client.query_one("show default_transaction_read_only", &[]).unwrap().get(0)
}

#[test]
fn freeze_blocks_new_writes_spares_our_session_and_lifts_to_the_previous_setting() {
    let cluster = Cluster::start().unwrap();
    cluster.create_database("frozen", None).unwrap();
    let url = cluster.url("frozen");
    let mut admin = cluster.connect("postgres").unwrap();
    // The database's own setting, which unfreeze must put back.
    admin.batch_execute("ALTER DATABASE frozen SET default_transaction_read_only = off").unwrap();
    let mut app = cluster.connect("frozen").unwrap();
    app.batch_execute("SET application_name = 'the_app'; CREATE TABLE t (id int)").unwrap();

    let mut ours = backstop_core::pg::connect(&url, "backstop").unwrap();
    let options = FreezeSection::default();
    let frozen = freeze::freeze(&mut ours, "test", &options).unwrap();
    assert!(frozen.state.read_only_set);
    assert_eq!(frozen.terminated, 1, "the app's open session is ended");
    assert!(app.batch_execute("SELECT 1").is_err(), "the app's session survived the freeze");
    assert_eq!(frozen.state.previous_setting.as_deref(), Some("off"));

    let mut late = cluster.connect("frozen").unwrap();
    assert_eq!(read_only(&mut late), "on");
    assert!(late.batch_execute("INSERT INTO t VALUES (1)").is_err(), "a new session could write");
    ours.batch_execute("INSERT INTO t VALUES (1)").unwrap();

    // Freezing again (a resumed restore) keeps the first record.
    let again = freeze::freeze(&mut ours, "second", &options).unwrap();
    assert_eq!(again.state.reason, "test");
    assert_eq!(again.state.previous_setting.as_deref(), Some("off"));

    let lifted = freeze::unfreeze(&mut ours).unwrap().expect("a freeze to lift");
    assert_eq!(lifted.reason, "test");
    assert!(freeze::unfreeze(&mut ours).unwrap().is_none());
    let mut after = cluster.connect("frozen").unwrap();
    assert_eq!(read_only(&mut after), "off");
    after.batch_execute("INSERT INTO t VALUES (2)").unwrap();
    let setting: Vec<String> = admin
        .query_one(
            "select setconfig from pg_db_role_setting
              where setdatabase = (select oid from pg_database where datname = 'frozen') and setrole = 0",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(setting, ["default_transaction_read_only=off"]);
    let kinds: Vec<String> = after
        .query("select kind from backstop.events order by id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["freeze", "freeze", "unfreeze"]);

    // A guard lifts the freeze when dropped, as on an early `?`.
    freeze::freeze(&mut ours, "guarded", &options).unwrap();
    drop(FreezeGuard::new(&url));
    assert!(freeze::current(&mut ours).unwrap().is_none());
    let mut last = cluster.connect("frozen").unwrap();
    last.batch_execute("INSERT INTO t VALUES (3)").unwrap();
}
