//! No input makes the analysis panic: arbitrary bytes, and real migration
//! SQL cut off at any point or spliced together, either check or come back
//! with a located syntax-error finding.

use backstop_lint::{check, Code, Input, Options};
use proptest::prelude::*;

fn options() -> Options {
    Options { protected_tables: vec!["users".into(), "app.users".into()], ..Options::default() }
}

/// Real SQL to cut up: every fixture, good and bad.
fn corpus() -> Vec<&'static str> {
    Code::ALL.iter().flat_map(|c| [c.bad_example(), c.good_example()]).collect()
}

fn run(text: &str) {
    let mut input = Input::file("fuzz.sql", text);
    input.has_down = Some(false);
    let report = check(&[input], &options());
    for f in report.findings.iter().chain(&report.probes) {
        assert!(f.line >= 1 && f.column >= 1, "{f:?}");
        assert!(f.span.start <= f.span.end && f.span.end <= text.len(), "{f:?}");
        assert!(text.is_char_boundary(f.span.start), "{f:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        run(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn truncated_sql_does_not_panic(i in 0usize..64, cut in 0.0f64..1.0) {
        let all = corpus();
        let text = all[i % all.len()];
        let mut at = (text.len() as f64 * cut) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        run(&text[..at]);
    }

    #[test]
    fn spliced_sql_does_not_panic(parts in proptest::collection::vec((0usize..64, 0.0f64..1.0, 0.0f64..1.0), 1..5)) {
        let all = corpus();
        let mut text = String::new();
        for (i, a, b) in parts {
            let src = all[i % all.len()];
            let (mut from, mut to) = ((src.len() as f64 * a.min(b)) as usize, (src.len() as f64 * a.max(b)) as usize);
            while !src.is_char_boundary(from) { from -= 1; }
            while !src.is_char_boundary(to) { to -= 1; }
            text.push_str(&src[from..to]);
        }
        run(&text);
    }

    #[test]
    fn sql_shaped_noise_does_not_panic(words in proptest::collection::vec(prop_oneof![
        Just("CREATE"), Just("TABLE"), Just("INDEX"), Just("ALTER"), Just("DROP"), Just("users"),
        Just("("), Just(")"), Just(","), Just(";"), Just("$$"), Just("'"), Just("--"), Just("\n"),
        Just("ADD COLUMN"), Just("CONSTRAINT"), Just("NOT VALID"), Just("REFERENCES"), Just("é"),
        Just("/*"), Just("*/"), Just("backstop:ignore"), Just("BS101"), Just("CONCURRENTLY"),
    ], 0..60)) {
        run(&words.join(" "));
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let deep = format!("SELECT {}1{};", "(".repeat(5000), ")".repeat(5000));
    run(&deep);
}
