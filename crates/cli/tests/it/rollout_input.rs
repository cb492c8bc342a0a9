//! `backstop rollout` on bad input: each mistake refused with its place
//! and its fix (exit 2) before anything is written; a database that cannot
//! be reached is a failure of that database, not of the rollout; a target
//! marked as a Citus coordinator that is none is refused with the fix
//! (what of the Citus kind can run without Citus); no password is shown.

use crate::common::{DbExt, Project, Run, CLUSTER};
use crate::rollout::{at, Fleet, BASE, WAVES};

/// The password of the cluster's URLs, which no output may show.
fn password() -> String {
    let url = CLUSTER.url("x");
    let after = url.split("://").nth(1).unwrap();
    after.split('@').next().unwrap().split(':').nth(1).unwrap().to_string()
}

fn config(query: &str, waves: &str) -> String {
    format!(
        "[rollout]\ncontrol = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n\n\
         [backup]\nrequired = false\n\n[[targets]]\nname = \"tenant-{{name}}\"\nquery = \"{query}\"\n{waves}"
    )
}

const QUERY: &str = "select name, url from tenants order by name";
const ALL: &str =
    "\n[[waves]]\nname = \"all\"\ntargets = [\"tenant-*\"]\nparallel = 2\nhalt_after = 2\n";

#[track_caller]
fn refused(p: &Project, needles: &[&str]) -> Run {
    let run = p.run(&["rollout"]);
    run.expect_code(2);
    for n in needles {
        run.expect_output(n);
    }
    assert!(!run.all().contains(&password()), "a password was shown:\n{}", run.all());
    assert!(!p.client().exists("backstop.rollouts"), "something was written:\n{}", run.all());
    run
}

#[test]
fn bad_rollout_input_is_refused_before_anything_is_written_and_names_its_fix() {
    let fleet = Fleet::new("rollout_input", 2, "[backup]\nrequired = false\n", WAVES);
    let p = &fleet.p;
    // Two tenants: the canary takes both, and the next wave nothing.
    refused(p, &["backstop.toml:", "wave \"early\" takes no database", "earlier wave"]);
    p.config(&config("select nme, url from tenants", ALL));
    refused(p, &["the query failed on the control database", "nme", "fix the query"]);
    p.config(&config("select 1, url from tenants", ALL));
    refused(p, &["not text", "cast it"]);
    p.client()
        .batch_execute("insert into tenants select name, url from tenants where name = '001'")
        .unwrap();
    p.config(&config(QUERY, ALL));
    refused(p, &["two targets are named \"tenant-001\"", "unique"]);
    p.client()
        .batch_execute("delete from tenants where ctid = (select max(ctid) from tenants)")
        .unwrap();
    let wave =
        |extra: &str| format!("\n[[waves]]\nname = \"all\"\ntargets = [\"tenant-*\"]\n{extra}");
    p.config(&config(QUERY, &wave("count = 1\nshare = 50\n")));
    refused(p, &["backstop.toml:18:", "both count and share"]);
    p.config(&config(QUERY, "\n[[waves]]\nname = \"all\"\ntargets = [\"tenat-*\"]\n"));
    refused(p, &["backstop.toml:16:", "\"tenat-*\" matches no target", "tenant-{name}"]);
    // A control database that cannot be reached is the environment's (3).
    let unreachable = config(QUERY, ALL).replace(
        "control = \"${DATABASE_URL}\"",
        &format!("control = \"postgres://backstop:{}@127.0.0.1:1/control\"", password()),
    );
    p.config(&unreachable);
    let run = p.run(&["rollout"]);
    run.expect_code(3).expect_output("cannot reach the control database");
    assert!(!run.all().contains(&password()), "{}", run.all());
    // And the dry run shows the plan with the passwords masked.
    p.config(&config(QUERY, ALL));
    let run = p.run(&["rollout", "--dry-run"]);
    run.expect_code(0).expect_output("wave all: 2 database(s)").expect_output("****");
    assert!(!run.all().contains(&password()), "{}", run.all());
    assert!(!p.client().exists("backstop.rollouts"));
}

#[test]
fn a_database_that_cannot_be_reached_fails_alone_until_halt_after() {
    let fleet = Fleet::new("rollout_unreachable", 2, "[backup]\nrequired = false\n", WAVES);
    let p = &fleet.p;
    let gone = format!("postgres://backstop:{}@127.0.0.1:1/nowhere", password());
    p.client().execute("insert into tenants values ('003', $1)", &[&gone]).unwrap();
    p.config(&config(QUERY, ALL));
    let run = p.run_long(&["rollout"]);
    run.expect_code(1).expect_output("tenant-003").expect_output("cannot reach it");
    let status = p.run(&["rollout", "status"]);
    status.expect_code(0).expect_output("1 failed").expect_output("--resume");
    let json = p.run(&["rollout", "status", "--format", "json"]);
    json.expect_code(0);
    for out in [&run, &status, &json] {
        assert!(!out.all().contains(&password()), "a password was shown:\n{}", out.all());
    }
    let json = json.json();
    assert_eq!(json["state"], "done", "a failure under halt_after does not halt: {json}");
    let done = fleet.states().values().filter(|s| *s == "done").count();
    assert_eq!(done, 2);
    assert_eq!(fleet.tenant("001").applied().len(), 3);
    assert_ne!(fleet.tenant("001").applied(), at(&[BASE]));
}

#[test]
fn a_target_marked_citus_coordinator_is_refused_on_plain_postgresql_with_the_fix() {
    let p = Project::new("rollout_citus");
    let coordinator = format!("{}_coord", p.db);
    CLUSTER.create_database(&coordinator, None).unwrap();
    p.migration("20260101000000_t", "create table t (id int);\n", Some("drop table t;\n"));
    p.config(
        "[rollout]\ncontrol = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n\n\
         [backup]\nrequired = false\n\n\
         [[targets]]\nname = \"plain\"\nurl = \"${DATABASE_URL}\"\n\n\
         [[targets]]\nname = \"coord\"\nurl = \"${COORD_URL}\"\nkind = \"citus-coordinator\"\n\n\
         [[waves]]\nname = \"all\"\ntargets = [\"*\"]\nparallel = 2\nhalt_after = 2\n",
    );
    let run = |args: &[&str]| {
        Run::from_output(
            p.cmd().env("COORD_URL", CLUSTER.url(&coordinator)).args(args).output().unwrap(),
        )
    };
    run(&["rollout", "--dry-run"]).expect_code(0).expect_output("(citus-coordinator)");
    run(&["rollout"])
        .expect_code(1)
        .expect_output("citus extension is not installed")
        .expect_output("drop the kind");
    assert!(p.client().exists("t"), "the plain target was migrated");
    let mut coord = CLUSTER.connect(&coordinator).unwrap();
    assert!(!coord.exists("t") && !coord.history_schema_exists(), "the coordinator was touched");
    // Unset, its URL is a config error naming the line and the variable.
    p.run(&["rollout", "--resume"]).expect_code(2).expect_output("COORD_URL");
}
