//! Where the batch cannot run as one transaction, and why: read from the
//! transaction groups `migrate` plans, each split is named by the
//! statement that forces it. A split the project cannot avoid (an index
//! built concurrently, a new enum value used later in the batch) is a
//! notice for scenario A; one it can avoid (a migration marked to run
//! outside a transaction that needs no such thing) is a finding with its
//! fix.

use super::outcome::Split;
use crate::migrate::{self, Group, Plan};
use crate::source::Migration;

/// The splits of the batch `migrate` planned, in run order.
pub(super) fn of(plan: &Plan<'_>) -> Vec<Split> {
    let groups = &plan.groups;
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let authors = plan
            .splits
            .get(i)
            .and_then(Option::as_ref)
            .filter(|s| matches!(s, migrate::Split::AuthorsCommit { .. }));
        if let (Some(split), false) = (authors, g.transactional) {
            out.push(Split {
                at: g.migrations[0].version.clone(),
                why: split.to_string(),
                fix: None,
            });
        } else if !g.transactional {
            out.push(alone(g.migrations[0]));
        } else if let Some(next) = groups.get(i + 1).filter(|n| n.transactional) {
            let why = plan.splits.get(i + 1).and_then(Option::as_ref);
            out.push(committed_between(g, next, why));
        }
    }
    out
}

/// A migration that runs alone, outside a transaction.
fn alone(m: &Migration) -> Split {
    let file = m.up.path.file_name().map(|f| f.to_string_lossy().into_owned());
    let at = |line: usize| match &file {
        Some(f) => format!("{f}:{line}"),
        None => format!("line {line}"),
    };
    let before = m.version.clone();
    if let Some(s) = m.up.statements.iter().find(|s| s.facts.outside_transaction_only.is_some()) {
        let what = s.facts.outside_transaction_only.unwrap_or_default();
        return Split {
            at: before,
            why: format!(
                "{} runs alone outside a transaction: {what} ({}) cannot run inside one",
                m.label(),
                at(s.position.line)
            ),
            fix: None,
        };
    }
    if let Some(s) = m.up.statements.iter().find(|s| s.facts.transaction_control) {
        return Split {
            at: before,
            why: format!(
                "{} runs alone outside Backstop's transaction: its own transaction statements \
                 ({}) run as written",
                m.label(),
                at(s.position.line)
            ),
            fix: None,
        };
    }
    let statements = &m.up.statements;
    let used_here = statements.iter().enumerate().find_map(|(i, s)| {
        let value = s.facts.adds_enum_value.as_ref().map(|v| v.label.as_str())?;
        statements[i + 1..]
            .iter()
            .any(|later| later.string_literals().iter().any(|l| l == value))
            .then(|| (value.to_string(), s.position.line))
    });
    if let Some((value, line)) = used_here {
        return Split {
            at: before,
            why: format!(
                "{} runs alone outside a transaction: the enum value '{value}' it adds ({}) is used \
                 by a later statement of it, which PostgreSQL allows only after a COMMIT",
                m.label(),
                at(line)
            ),
            fix: None,
        };
    }
    Split {
        at: before,
        why: format!(
            "{} is marked to run outside a transaction, but none of its statements needs to",
            m.label()
        ),
        fix: Some(format!(
            "remove the mark ({}) so that it runs in the batch's transaction, and a failure \
             anywhere rolls it back with the rest",
            m.layout.no_transaction_hint()
        )),
    }
}

/// Two transactions in a row: the first commits an enum value the second
/// uses, as the plan found it (`why`).
fn committed_between(first: &Group<'_>, next: &Group<'_>, why: Option<&migrate::Split>) -> Split {
    let at = next.migrations[0].version.clone();
    let why = match why {
        Some(migrate::Split::EnumValueUsed { label, added_in, used_in, .. }) => format!(
            "the batch commits after {added_in}: the enum value '{label}' it adds is used by \
             {used_in}, which PostgreSQL allows only after the value's transaction commits"
        ),
        Some(
            split @ (migrate::Split::AuthorsCommit { .. }
            | migrate::Split::AfterAuthorsCommit { .. }),
        ) => format!("the batch commits: {split}"),
        _ => {
            let last = first.migrations.last().expect("a planned group is never empty");
            format!("the batch commits after {}", last.label())
        }
    };
    Split { at, why, fix: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> Vec<Migration> {
        let tmp = tempfile::tempdir().unwrap();
        for (path, sql) in files {
            let p = tmp.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, sql).unwrap();
        }
        crate::source::load(tmp.path(), None).unwrap().migrations
    }

    #[test]
    fn each_split_names_the_statement_that_forces_it_and_only_needless_ones_have_a_fix() {
        let ms = folder(&[
            ("1_a/up.sql", "CREATE TABLE t (id int, s text);"),
            (
                "2_idx/up.sql",
                "-- backstop:no-transaction\nSELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (id);",
            ),
            ("3_b/up.sql", "CREATE TYPE mood AS ENUM ('ok');"),
            ("4_value/up.sql", "ALTER TYPE mood ADD VALUE 'meh';"),
            ("5_use/up.sql", "SELECT 'meh'::mood;"),
            ("6_needless/up.sql", "-- backstop:no-transaction\nCREATE INDEX j ON t (s);"),
            ("7_c/up.sql", "SELECT 1;"),
        ]);
        fn plan(ms: &[Migration]) -> Plan<'_> {
            migrate::plan_up(&ms.iter().collect::<Vec<_>>(), false)
        }
        let splits = of(&plan(&ms));
        let got: Vec<(&str, &str, bool)> =
            splits.iter().map(|s| (s.at.as_str(), s.why.as_str(), s.fix.is_some())).collect();
        assert_eq!(
            got,
            [
                (
                    "2",
                    "2_idx runs alone outside a transaction: CREATE INDEX CONCURRENTLY (up.sql:3) cannot run inside one",
                    false
                ),
                (
                    "5",
                    "the batch commits after 4_value: the enum value 'meh' it adds is used by 5_use, which PostgreSQL allows only after the value's transaction commits",
                    false
                ),
                (
                    "6",
                    "6_needless is marked to run outside a transaction, but none of its statements needs to",
                    true
                ),
            ]
        );
        assert!(splits[2].fix.as_deref().unwrap().contains("-- backstop:no-transaction"));
        assert!(of(&plan(&ms[..1])).is_empty(), "one migration, one transaction");
    }
}
