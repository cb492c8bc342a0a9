//! Every rule's fixtures are its documentation and its test: `bad.sql`
//! triggers the rule, `good.sql` does not.

use backstop_lint::{check, Code, Input, Options};

/// The options the fixtures are written for: `users` is protected, the
/// server is PostgreSQL 15, the opt-in rules are turned on.
fn options() -> Options {
    Options {
        protected_tables: vec!["users".into()],
        server_major: Some(15),
        enable: Code::ALL.to_vec(),
        ..Options::default()
    }
}

fn codes_in(code: Code, sql: &str, has_down: bool) -> Vec<Code> {
    let path = format!("fixtures/{code}.sql");
    let mut input = Input::file(&path, sql);
    input.has_down = Some(has_down);
    let report = check(&[input], &options());
    // Only BS003's bad example may fail to parse.
    let unparsable = report.findings.iter().any(|f| f.code == Code::BS003);
    assert!(!unparsable || code == Code::BS003, "fixture of {code} does not parse");
    report.findings.iter().filter(|f| f.suppressed.is_none()).map(|f| f.code).collect()
}

/// Rules only the database can confirm: their bad example is a probe.
const LIVE_ONLY: &[Code] = &[Code::BS509];

#[test]
fn every_bad_fixture_triggers_its_rule() {
    for &code in Code::ALL {
        let found = codes_in(code, code.bad_example(), code != Code::BS403);
        if LIVE_ONLY.contains(&code) {
            let input = Input::file("fixtures/bad.sql", code.bad_example());
            let report = check(&[input], &options());
            assert!(!found.contains(&code), "{code} is reported without the database");
            assert!(report.probes.iter().any(|p| p.code == code), "{code} bad.sql makes no probe");
            continue;
        }
        assert!(found.contains(&code), "{code} bad.sql does not trigger {code}; found {found:?}");
    }
}

#[test]
fn no_good_fixture_triggers_its_rule() {
    for &code in Code::ALL {
        let found = codes_in(code, code.good_example(), true);
        assert!(!found.contains(&code), "{code} good.sql triggers {code}");
    }
}

#[test]
fn every_rule_has_both_fixture_files_on_disk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for &code in Code::ALL {
        for file in ["bad.sql", "good.sql"] {
            assert!(dir.join(code.as_str()).join(file).is_file(), "{code}/{file} missing");
        }
    }
    // And no fixture folder for a rule that is not in the registry.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(Code::lookup(&name).is_some(), "fixtures/{name} names no rule");
    }
}
