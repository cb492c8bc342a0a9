//! No password reaches output, reports, backups or the audit log: for
//! random passwords drawn from every printable character, written in a URL
//! (percent-encoded) and in a `key=value` string (quoted), every command's
//! stdout and stderr, the rehearsal report, the backup manifest and
//! `backstop.events` are searched for the password. Wrong passwords too:
//! the failed login must not echo what was typed.

use crate::common::{Project, Run, CLUSTER};
use rand::{Rng, SeedableRng};

/// Every printable ASCII character, space included.
fn password(rng: &mut impl Rng) -> String {
    let len = rng.gen_range(12..24);
    (0..len).map(|_| rng.gen_range(0x20u8..0x7f) as char).collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

fn quote_conninfo(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A login role owning the project's database, with `password`.
fn role_with(p: &Project, password: &str) -> String {
    let role = format!("r{}", p.db.len() + rand::random::<u16>() as usize);
    let mut db = p.client();
    let literal = password.replace('\'', "''");
    db.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{literal}'; ALTER DATABASE \"{}\" OWNER TO {role}; \
         GRANT ALL ON SCHEMA public TO {role}",
        p.db
    ))
    .unwrap();
    role
}

#[track_caller]
fn assert_hidden(what: &str, text: &str, password: &str) {
    assert!(!text.contains(password), "{what} shows the password {password:?}:\n{text}");
}

fn all_files(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push_str(&all_files(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push_str(&text);
        }
    }
    out
}

#[test]
fn random_passwords_never_reach_output_reports_or_events() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5ec7e7);
    let port = CLUSTER.port();
    for round in 0..6 {
        let pw = password(&mut rng);
        let p = Project::new(&format!("secrets_{round}"));
        let role = role_with(&p, &pw);
        p.migration("1_t", "CREATE TABLE t (id int PRIMARY KEY);\n", Some("DROP TABLE t;\n"));
        p.config(
            "[database]\nurl = \"${DATABASE_URL}\"\n\n[backup]\nrequired = false\n\n\
             [[verify.checks]]\nname = \"t exists\"\nkind = \"tables\"\ntables = [\"t\"]\n",
        );
        let url = format!("postgres://{role}:{}@127.0.0.1:{port}/{}", percent_encode(&pw), p.db);
        let kv = format!(
            "host=127.0.0.1 port={port} user={role} dbname={} password = {}",
            p.db,
            quote_conninfo(&pw)
        );
        let wrong = format!("{pw}x");
        let wrong_url =
            format!("postgres://{role}:{}@127.0.0.1:{port}/{}", percent_encode(&wrong), p.db);
        // Before migrate, so the rehearsal has a migration to rehearse.
        if round < 2 {
            let run = p.run_with_url(&url, &["rehearse"]);
            assert_eq!(run.code, Some(0), "{}", run.all());
            assert!(run.all().contains("rehearsal passed: 1 migration(s)"), "{}", run.all());
            assert_hidden("rehearse", &run.all(), &pw);
            let reports = all_files(&p.path().join(".backstop/rehearsals"));
            assert!(!reports.is_empty(), "no rehearsal report in .backstop/rehearsals");
            assert_hidden("the rehearsal report", &reports, &pw);
            let run = p.run_with_url(&url, &["backup", "create"]);
            assert_hidden("backup create", &run.all(), &pw);
            assert_hidden("the backup's files", &all_files(&p.path().join(".backstop")), &pw);
        }
        let runs: Vec<(String, Run)> = vec![
            ("status (url)".into(), p.run_with_url(&url, &["status"])),
            ("check (key=value)".into(), p.run_with_url(&kv, &["check"])),
            ("migrate --dry-run".into(), p.run_with_url(&url, &["migrate", "--dry-run"])),
            ("migrate".into(), p.run_with_url(&kv, &["migrate", "--format", "json"])),
            ("verify".into(), p.run_with_url(&url, &["verify", "--format", "json"])),
            ("status --database-url".into(), p.run(&["status", "--database-url", &url])),
            ("status, wrong password".into(), p.run_with_url(&wrong_url, &["status"])),
            ("check, wrong password".into(), p.run_with_url(&wrong_url, &["check"])),
            (
                "status, unparsable".into(),
                p.run_with_url(&format!("postgres:{pw}@127.0.0.1:{port}/x"), &["status"]),
            ),
        ];
        for (what, run) in &runs {
            assert_hidden(what, &run.all(), &pw);
            assert_hidden(what, &run.all(), &wrong);
        }
        assert_eq!(runs[3].1.code, Some(0), "migrate as the role: {}", runs[3].1.all());
        let events: Vec<String> = p
            .client()
            .query("select details::text || actor || kind from backstop.events", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!events.is_empty());
        assert_hidden("backstop.events", &events.join("\n"), &pw);
    }
}
