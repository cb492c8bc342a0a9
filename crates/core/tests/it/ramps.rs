//! Release ramps against a real cluster: one process carries a ramp on at
//! a time (the next may take it over only when the first's session is
//! gone), a step moves only from the step recorded, so a stale carrier
//! never serves a step twice, and a restore carries the ramps over as
//! they are, ids and all.

use std::time::Duration;

use backstop_core::flags::ramp::{self, Advanced, Begun, Plan, RampState};
use backstop_core::flags::{self, FlagDecl};
use backstop_core::pg::cluster::Cluster;

fn decl(key: &str, release: &str) -> FlagDecl {
    FlagDecl {
        key: key.into(),
        release: release.into(),
        description: String::new(),
        owner: None,
        default: None,
        variants: None,
        default_variant: None,
    }
}

fn shares(client: &mut postgres::Client) -> Vec<Option<i64>> {
    client
        .query(
            "select (details ->> 'percent')::bigint from backstop.events
              where kind = 'flag' and details ->> 'to' = 'ENABLED' order by id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn one_carrier_at_a_time_no_step_twice_and_a_restore_keeps_the_ramps() {
    let cluster = Cluster::start().unwrap();
    cluster.create_database("ramps", None).unwrap();
    let url = cluster.url("ramps");
    let mut a = backstop_core::pg::connect(&url, "carrier a").unwrap();
    let mut b = backstop_core::pg::connect(&url, "carrier b").unwrap();
    let wait = Duration::from_secs(5);
    flags::sync(&mut a, &[decl("cards", "v2"), decl("memory", "v2"), decl("x", "v3")], "t", wait)
        .unwrap();

    let plan = Plan::parse("1,5,25", "1s").unwrap();
    let begun = ramp::begin(&mut a, "v2", Some(&plan), "a", "canary").unwrap();
    let Begun::Started(r) = begun else { panic!("{begun:?}") };
    assert_eq!((r.share(), r.state), (1, RampState::Running));
    // B may not carry it on while A does, nor start another.
    let err = ramp::begin(&mut b, "v2", Some(&plan), "b", "again").unwrap_err();
    // The refusal names the live session holding the ramp's lock, with its pid.
    let a_pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let said = err.to_string();
    assert!(
        said.contains(&format!("is carried on by the session pid {a_pid} (carrier a")),
        "{said}"
    );
    let other = Plan::parse("10,100", "1s").unwrap();
    let err = ramp::begin(&mut b, "v2", Some(&other), "b", "again").unwrap_err();
    assert!(err.to_string().contains("already ramping"), "{err}");

    // A moves it on; a carrier that still sees the first step does not move it again.
    let Advanced::Stepped { ramp: at5, changes } = ramp::advance(&mut a, &r, "a").unwrap() else {
        panic!("not stepped")
    };
    assert_eq!((at5.share(), changes.len()), (5, 2));
    let Advanced::Moved(now) = ramp::advance(&mut b, &r, "b").unwrap() else {
        panic!("a stale carrier moved the ramp")
    };
    assert_eq!(now.step, 1);
    assert_eq!(shares(&mut a), [Some(1), Some(1), Some(5), Some(5)]);

    // A's session ends: B takes it over where it stands.
    drop(a);
    let mut taken = None;
    for _ in 0..100 {
        match ramp::begin(&mut b, "v2", None, "b", "") {
            Ok(Begun::Resumed(r)) => {
                taken = Some(r);
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let r = taken.expect("B takes the ramp over once A is gone");
    assert_eq!((r.share(), r.driven_by.as_deref()), (5, Some("b")));

    // A restore brings the ramps over as they are; new ones get new ids.
    cluster.create_database("copy", None).unwrap();
    let mut copy = cluster.connect("copy").unwrap();
    assert_eq!(backstop_core::schema::ramps::carry_over(&mut b, &mut copy).unwrap(), 1);
    let status = ramp::status(&mut copy, "v2").unwrap().unwrap();
    assert_eq!((status.ramp.id, status.share), (r.id, 5));
    flags::sync(&mut copy, &[decl("x", "v3")], "t", wait).unwrap();
    let Begun::Started(fresh) = ramp::begin(&mut copy, "v3", Some(&other), "c", "x").unwrap()
    else {
        panic!("not started")
    };
    assert!(fresh.id > r.id, "ids go on after the carried ones");
}
