//! The transaction groups of a run. Every pending migration runs in one
//! transaction except where PostgreSQL forbids it: a no-transaction
//! migration runs alone, statement by statement, and a transaction is
//! committed before the first migration that uses an enum value an
//! earlier migration of that transaction added (what "uses" means is
//! settled in [`backstop_lint::enum_use`]). An added value nothing later
//! in its transaction uses stays in it: PostgreSQL 12 and later run
//! `ALTER TYPE ... ADD VALUE` inside a transaction block. The plan says
//! each group, why it is apart from the one before, and the rule each
//! added enum value fell under.

use backstop_lint::enum_use::{Added, Transaction, Use};
use backstop_lint::Statement;
use serde::Serialize;

use super::run::{Direction, Group};
use crate::source::{Migration, SqlFile};

/// Why a group is not part of the transaction before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Split {
    /// `migrate --each`: one transaction per migration.
    Each,
    /// The group is a no-transaction migration: its statements commit one
    /// by one. `construct` is the statement that cannot run inside a
    /// transaction (none when only the marker or the layout asks for it).
    NoTransaction { version: String, construct: Option<String>, at: String },
    /// The group comes after a no-transaction migration.
    AfterNoTransaction { version: String },
    /// The group's first migration uses an enum value that the group before
    /// added, which PostgreSQL allows only once that group has committed.
    EnumValueUsed {
        type_name: String,
        label: String,
        added_in: String,
        added_at: String,
        used_in: String,
        used_at: String,
        how: String,
    },
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Each => f.write_str("--each: one transaction per migration"),
            Split::NoTransaction { version, construct: Some(c), at } => {
                write!(f, "{version} runs outside a transaction: {c} at {at} cannot run inside one")
            }
            Split::NoTransaction { version, construct: None, at } => {
                write!(f, "{version} is marked to run outside a transaction ({at})")
            }
            Split::AfterNoTransaction { version } => {
                write!(f, "it follows the no-transaction migration {version}")
            }
            Split::EnumValueUsed { type_name, label, added_at, used_in, used_at, how, .. } => {
                write!(
                    f,
                    "{used_in} uses the enum value '{label}' ({how} at {used_at}), which \
                     {added_at} adds to {type_name}: PostgreSQL lets a new value be used only \
                     after the transaction that added it commits"
                )
            }
        }
    }
}

/// What became of a value an `ALTER TYPE ... ADD VALUE` adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum EnumRule {
    /// Nothing later in its transaction uses it: it stays in the transaction.
    Unused,
    /// In a no-transaction migration: committed at once.
    NoTransaction,
    /// Used by a later migration: the transaction commits before that one.
    CommittedBeforeUse { used_in: String, used_at: String, how: String },
    /// Used later in the same migration, which PostgreSQL refuses (55P04)
    /// and no commit between migrations can help.
    UsedInSameMigration { used_at: String, how: String },
}

/// One added enum value and the rule it fell under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnumValueRule {
    pub version: String,
    pub type_name: String,
    pub label: String,
    /// Where it is added: `file:line`.
    pub at: String,
    #[serde(flatten)]
    pub rule: EnumRule,
    /// (migration, statement) in the pending list, to find it again.
    #[serde(skip)]
    key: (usize, usize),
}

impl std::fmt::Display for EnumValueRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let EnumValueRule { type_name, label, at, .. } = self;
        write!(f, "'{label}' added to {type_name} at {at}: ")?;
        match &self.rule {
            EnumRule::Unused => f.write_str(
                "no later statement of its transaction uses it, so ADD VALUE stays in the \
                 transaction (PostgreSQL 12 and later allow that)",
            ),
            EnumRule::NoTransaction => f.write_str("a no-transaction migration commits it at once"),
            EnumRule::CommittedBeforeUse { used_in, used_at, how } => write!(
                f,
                "{used_in} uses it ({how} at {used_at}), so the transaction commits before {used_in}"
            ),
            EnumRule::UsedInSameMigration { used_at, how } => write!(
                f,
                "the same migration uses it ({how} at {used_at}); PostgreSQL refuses that \
                 (\"unsafe use of new value\", 55P04): move the use into a later migration"
            ),
        }
    }
}

/// The groups of a run, why each is apart, and the enum values' rules.
#[derive(Debug, Default)]
pub struct Plan<'m> {
    pub groups: Vec<Group<'m>>,
    /// For each group, why it is not part of the one before (`None` for
    /// the first transactional group).
    pub splits: Vec<Option<Split>>,
    pub enum_values: Vec<EnumValueRule>,
}

/// One planned group, for `--dry-run` and reports.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedGroup {
    pub transactional: bool,
    pub versions: Vec<String>,
    pub statements: usize,
    /// Why this group is a transaction (or a no-transaction run) of its own.
    pub split: Option<Split>,
}

/// A statement and the migration it belongs to, by their places in the
/// pending list.
type At = (usize, usize);

/// `file:line` of byte `offset` in statement `stmt` of `file`.
fn place(file: &SqlFile, stmt: &Statement, offset: usize) -> String {
    let before = &stmt.sql.as_bytes()[..offset.min(stmt.sql.len())];
    let line = stmt.position.line + before.iter().filter(|&&b| b == b'\n').count();
    format!("{}:{line}", file.path.display())
}

/// The reason a no-transaction file runs alone.
fn no_transaction_split(version: &str, file: &SqlFile) -> Split {
    let construct = file
        .statements
        .iter()
        .find_map(|s| s.facts.outside_transaction_only.map(|c| (c.to_string(), place(file, s, 0))));
    match construct {
        Some((c, at)) => Split::NoTransaction { version: version.into(), construct: Some(c), at },
        None => Split::NoTransaction {
            version: version.into(),
            construct: None,
            at: format!("{}:1", file.path.display()),
        },
    }
}

/// A use of a value that an earlier migration of the open transaction added.
struct Foreign {
    added: Added<At>,
    stmt: usize,
    found: Use,
}

impl<'m> Plan<'m> {
    /// Whether the run is one group: one transaction, or a no-transaction
    /// migration on its own (the one unit its file asks for). A run of
    /// one group commits all of it or, on a failure, nothing the run could
    /// have kept out.
    pub fn is_one_group(&self) -> bool {
        self.groups.len() <= 1
    }

    /// Why the run is not one transaction, each reason once.
    pub fn reasons(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for split in self.splits.iter().flatten() {
            if !matches!(split, Split::AfterNoTransaction { .. }) {
                out.push(split.to_string());
            }
        }
        out
    }

    /// The groups as the report shows them.
    pub fn planned(&self) -> Vec<PlannedGroup> {
        self.groups
            .iter()
            .zip(&self.splits)
            .map(|(g, split)| PlannedGroup {
                transactional: g.transactional,
                versions: g.versions(),
                statements: g.migrations.iter().map(|m| g.file(m).statements.len()).sum(),
                split: split.clone(),
            })
            .collect()
    }

    fn push(&mut self, group: Group<'m>, split: Option<Split>) {
        self.groups.push(group);
        self.splits.push(split);
    }

    /// The rule of the value added at `key`.
    fn rule_at(&mut self, key: At) -> Option<&mut EnumValueRule> {
        self.enum_values.iter_mut().find(|r| r.key == key)
    }

    /// Runs migration `mi`'s statements through `tx`, noting the values it
    /// adds; stops at the first use of a value an earlier migration of the
    /// transaction added (the caller then commits before `mi`).
    fn feed(
        &mut self,
        tx: &mut Transaction<'m, At>,
        pending: &[&'m Migration],
        mi: usize,
    ) -> Option<Foreign> {
        let m = pending[mi];
        for (si, s) in m.up.statements.iter().enumerate() {
            if let Some((added, found)) = tx.uses(s) {
                if added.at.0 != mi {
                    return Some(Foreign { added: added.clone(), stmt: si, found });
                }
                let used_at = place(&m.up, s, found.offset);
                if let Some(rule) = self.rule_at(added.at) {
                    if rule.rule == EnumRule::Unused {
                        rule.rule = EnumRule::UsedInSameMigration { used_at, how: found.how };
                    }
                }
            }
            if let Some(v) = &s.facts.adds_enum_value {
                let rule =
                    if m.no_transaction { EnumRule::NoTransaction } else { EnumRule::Unused };
                self.enum_values.push(EnumValueRule {
                    version: m.version.clone(),
                    type_name: v.type_name.clone(),
                    label: v.label.clone(),
                    at: place(&m.up, s, 0),
                    rule,
                    key: (mi, si),
                });
            }
            tx.record(s, (mi, si));
            if m.no_transaction {
                tx.commit();
            }
        }
        None
    }

    /// Notes that the transaction commits before `pending[mi]` because of
    /// `use_`, and says so as the next group's split.
    fn committed_before(&mut self, pending: &[&'m Migration], mi: usize, use_: Foreign) -> Split {
        let (m, added) = (pending[mi], &use_.added);
        let adder = pending[added.at.0];
        let added_at = place(&adder.up, &adder.up.statements[added.at.1], 0);
        let used_at = place(&m.up, &m.up.statements[use_.stmt], use_.found.offset);
        if let Some(rule) = self.rule_at(added.at) {
            rule.rule = EnumRule::CommittedBeforeUse {
                used_in: m.label(),
                used_at: used_at.clone(),
                how: use_.found.how.clone(),
            };
        }
        Split::EnumValueUsed {
            type_name: added.value.type_name.clone(),
            label: added.value.label.clone(),
            added_in: adder.label(),
            added_at,
            used_in: m.label(),
            used_at,
            how: use_.found.how,
        }
    }
}

/// Splits pending migrations into transaction groups: one transaction for
/// all, except that a no-transaction migration runs alone and a
/// transaction commits before a migration that uses an enum value it added;
/// with `each`, one transaction per migration.
pub fn plan_up<'m>(pending: &[&'m Migration], each: bool) -> Plan<'m> {
    let mut plan = Plan::default();
    let mut tx: Transaction<'m, At> = Transaction::default();
    // Whether the last group is a transaction the next migration may join.
    let mut open = false;
    for (mi, m) in pending.iter().enumerate() {
        let group =
            |transactional| Group { direction: Direction::Up, transactional, migrations: vec![*m] };
        if m.no_transaction {
            tx.commit();
            plan.feed(&mut tx, pending, mi);
            plan.push(group(false), Some(no_transaction_split(&m.label(), &m.up)));
            open = false;
            continue;
        }
        let split = if open && !each {
            let mut trial = tx.clone();
            let mark = plan.enum_values.len();
            match plan.feed(&mut trial, pending, mi) {
                None => {
                    tx = trial;
                    plan.groups.last_mut().expect("an open group").migrations.push(m);
                    continue;
                }
                Some(found) => {
                    plan.enum_values.truncate(mark);
                    Some(plan.committed_before(pending, mi, found))
                }
            }
        } else {
            match plan.groups.last() {
                None => None,
                Some(last) if !last.transactional => {
                    Some(Split::AfterNoTransaction { version: last.migrations[0].label() })
                }
                Some(_) => Some(Split::Each),
            }
        };
        tx.commit();
        plan.feed(&mut tx, pending, mi);
        plan.push(group(true), split);
        open = true;
    }
    plan
}

/// The groups of a rollback: the downs newest first in one transaction,
/// except that a no-transaction down runs alone.
pub fn plan_down<'m>(targets: &[&'m Migration]) -> Plan<'m> {
    let mut plan = Plan::default();
    for m in targets {
        let Some(down) = m.down.as_ref() else { continue };
        match plan.groups.last_mut() {
            Some(g) if g.transactional && !down.no_transaction => g.migrations.push(m),
            last => {
                let split = if down.no_transaction {
                    Some(no_transaction_split(&m.label(), down))
                } else {
                    last.map(|g| Split::AfterNoTransaction { version: g.migrations[0].label() })
                };
                let group = Group {
                    direction: Direction::Down,
                    transactional: !down.no_transaction,
                    migrations: vec![m],
                };
                plan.push(group, split);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Migration>) {
        let tmp = tempfile::tempdir().unwrap();
        for (path, sql) in files {
            let path = tmp.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, sql).unwrap();
        }
        let ms = crate::source::load(tmp.path(), None).unwrap().migrations;
        (tmp, ms)
    }

    fn shape(plan: &Plan<'_>) -> Vec<(bool, Vec<String>)> {
        plan.groups.iter().map(|g| (g.transactional, g.versions())).collect()
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_new_enum_value_used_later_commits_before_the_user() {
        let (_tmp, ms) = load(&[
            ("1_other/up.sql", "CREATE TABLE t (id int);"),
            ("2_add_value/up.sql", "ALTER TYPE mood ADD VALUE 'meh';"),
            ("3_more/up.sql", "CREATE TABLE u (id int);"),
            ("4_use_value/up.sql", "CREATE TABLE w (id int);\nUPDATE people SET mood = 'meh';"),
            ("5_after/up.sql", "CREATE TABLE x (id int);"),
        ]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        assert_eq!(shape(&plan), vec![(true, v(&["1", "2", "3"])), (true, v(&["4", "5"]))]);
        let Some(Split::EnumValueUsed { label, added_at, used_at, .. }) = &plan.splits[1] else {
            panic!("{:?}", plan.splits)
        };
        assert_eq!(label, "meh");
        assert!(added_at.ends_with("2_add_value/up.sql:1"), "{added_at}");
        assert!(used_at.ends_with("4_use_value/up.sql:2"), "{used_at}");
        assert!(matches!(plan.enum_values[0].rule, EnumRule::CommittedBeforeUse { .. }));
    }

    #[test]
    fn an_enum_value_no_one_uses_keeps_one_transaction() {
        let (_tmp, ms) = load(&[
            ("1_add_value/up.sql", "ALTER TYPE mood ADD VALUE 'meh';"),
            ("2_b/up.sql", "CREATE TABLE t (note text DEFAULT 'fine');"),
        ]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        assert_eq!(shape(&plan), vec![(true, v(&["1", "2"]))]);
        assert!(plan.is_one_group());
        assert_eq!(plan.enum_values[0].rule, EnumRule::Unused);
    }

    #[test]
    fn a_use_in_the_same_migration_is_named_and_splits_nothing() {
        let (_tmp, ms) = load(&[(
            "1_both/up.sql",
            "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE people SET mood = 'meh';",
        )]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        assert_eq!(plan.groups.len(), 1);
        assert!(matches!(plan.enum_values[0].rule, EnumRule::UsedInSameMigration { .. }));
    }

    #[test]
    fn no_transaction_migrations_run_alone_and_each_splits_every_migration() {
        let (_tmp, ms) = load(&[
            ("1_a/up.sql", "ALTER TYPE mood ADD VALUE 'meh';"),
            ("2_b/up.sql", "CREATE TABLE t (id int);"),
            ("3_c/up.sql", "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (id);"),
            ("4_d/up.sql", "CREATE TABLE u (id int);"),
        ]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        assert_eq!(
            shape(&plan),
            vec![(true, v(&["1", "2"])), (false, v(&["3"])), (true, v(&["4"]))]
        );
        let Some(Split::NoTransaction { construct, at, .. }) = &plan.splits[1] else {
            panic!("{:?}", plan.splits)
        };
        assert_eq!(construct.as_deref(), Some("CREATE INDEX CONCURRENTLY"));
        assert!(at.ends_with("3_c/up.sql:2"), "{at}");
        assert!(matches!(plan.splits[2], Some(Split::AfterNoTransaction { .. })));
        assert!(!plan.is_one_group());
        let each = plan_up(&pending, true);
        assert_eq!(each.groups.len(), 4);
        assert_eq!(each.splits[1], Some(Split::Each));
    }
}
