//! `[backup] engine = "pgbackrest"`: the gate against pgBackRest's real
//! binary, a throwaway cluster archiving its WAL into a local repository:
//! a healthy stanza gives an archived restore point recorded with the
//! migration; a backup too old, broken archiving and a stanza that does not
//! exist refuse before anything runs, each saying why and what to do.

use std::path::Path;

use backstop_core::pg::cluster::Cluster;

use crate::common::{program, run_program, Project};

#[path = "../../benches/common/archived.rs"]
pub(crate) mod archived;
use archived::Archived;

fn engine_config(config: &Path, stanza: &str, max_age: &str) -> String {
    format!(
        "[migrations]\ndir = \"migrations\"\n\n[backup]\nengine = \"pgbackrest\"\nstanza = \"{stanza}\"\n\
         config = \"{}\"\nmax_age = \"{max_age}\"\narchive_wait = \"20s\"\n",
        config.display()
    )
}

fn applied(p: &Project, cluster: &Cluster) -> Vec<(String, Option<String>)> {
    let mut c = cluster.connect(&p.db).unwrap();
    let exists: bool =
        c.query_one("select to_regclass('backstop.applied') is not null", &[]).unwrap().get(0);
    if !exists {
        return Vec::new();
    }
    c.query("select version, backup_id from backstop.applied order by version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn the_gate_archives_a_restore_point_and_refuses_when_the_net_does_not_hold() {
    if program("pgbackrest", ".ci/tools/pgbackrest.sh").is_none() {
        return;
    }
    let archived = Archived::start(|_| Ok(())).expect("a cluster archiving into pgBackRest");
    let cluster = &archived.cluster;
    let p = Project::on(cluster, "pgbackrest");
    p.config(&engine_config(&archived.config(), "main", "1h"));
    p.migration("001_items", "CREATE TABLE items (id int PRIMARY KEY);", Some("DROP TABLE items;"));

    // A healthy stanza: the restore point is archived and recorded.
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let rows = applied(&p, cluster);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0].1.clone().expect("the migration names what guards it");
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let entry = &list.as_array().unwrap()[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["engine"], "pgbackrest");
    assert_eq!(entry["kind"], "restore_point");
    assert_eq!(entry["guards"], serde_json::json!(["001"]));
    let point = &entry["restore_point"];
    assert!(point["name"].as_str().unwrap().starts_with("backstop-"), "{point}");
    assert_eq!(point["stanza"], "main");
    // The segment holding the point is in the repository.
    let info: serde_json::Value =
        serde_json::from_str(&run_program(&mut archived.pgbackrest(&["--output=json", "info"])))
            .unwrap();
    let max = info[0]["archive"][0]["max"].as_str().unwrap().to_string();
    let wal = point["wal_file"].as_str().unwrap();
    assert!(max.as_str() >= wal, "archived up to {max}, the point is in {wal}");
    assert_eq!(point["backup_label"], info[0]["backup"][0]["label"]);
    // Text output says what it is, and status names what guards 001.
    p.run(&["backup", "list"]).expect_code(0).expect_output("pgBackRest restore point backstop-");
    p.run(&["status"])
        .expect_output(&format!("restore point {} (pgBackRest", point["name"].as_str().unwrap()));
    // A point-in-time recovery to it in a throwaway cluster has the schema
    // recorded at the point (before 001 ran: no table items).
    p.run(&["backup", "verify", &id, "--restore"])
        .expect_code(0)
        .expect_output(&format!("recovered to {}", point["name"].as_str().unwrap()));
    // A rehearsal on a recovery of the point, never on the production
    // server: 001 is pending there and round-trips.
    let rehearsal =
        p.run(&["rehearse", "--from-backup", &id, "--format", "json"]).expect_code(0).json();
    assert_eq!(rehearsal["round_trip"]["migrations"][0]["version"], "001", "{rehearsal}");
    assert_eq!(rehearsal["copy"]["backup_id"], id.as_str(), "{rehearsal}");

    // The latest backup is older than max_age: refused, nothing applied.
    p.migration("002_more", "CREATE TABLE more (id int);", Some("DROP TABLE more;"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.config(&engine_config(&archived.config(), "main", "1s"));
    p.run(&["migrate"])
        .expect_code(3)
        .expect_output("longer ago than [backup] max_age")
        .expect_output("pgbackrest --stanza=main backup");
    assert_eq!(applied(&p, cluster).len(), 1);

    // A stanza that does not exist.
    p.config(&engine_config(&archived.config(), "nope", "1h"));
    p.run(&["migrate"])
        .expect_code(3)
        .expect_output("stanza nope is not usable")
        .expect_output("stanza-create");
    assert_eq!(applied(&p, cluster).len(), 1);

    // Archiving broken: the gate refuses before anything runs.
    let mut admin = cluster.connect("postgres").unwrap();
    admin.batch_execute("ALTER SYSTEM SET archive_command = 'false'").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    p.config(&engine_config(&archived.config(), "main", "1h"));
    p.run(&["migrate"]).expect_code(3).expect_output("WAL archiving does not work");
    assert_eq!(applied(&p, cluster).len(), 1);
    admin.batch_execute("ALTER SYSTEM RESET archive_command").unwrap();
    admin.execute("SELECT pg_reload_conf()", &[]).unwrap();

    // No stanza in the config: a configuration error, with its line.
    p.config("[migrations]\ndir = \"migrations\"\n\n[backup]\nengine = \"pgbackrest\"\n");
    p.run(&["migrate"]).expect_code(2).expect_output("backstop.toml:5").expect_output("stanza");
    assert_eq!(applied(&p, cluster).len(), 1);
}
