//! The transaction groups of a run. Every pending migration runs in one
//! transaction except where PostgreSQL forbids it: a no-transaction
//! migration runs alone, statement by statement, and a transaction is
//! committed before the first migration that uses an enum value an
//! earlier migration of that transaction added (what "uses" means is
//! settled in [`backstop_sql::enum_use`]). An added value nothing later
//! in its transaction uses stays in it: PostgreSQL 12 and later run
//! `ALTER TYPE ... ADD VALUE` inside a transaction block. The plan says
//! each group, why it is apart from the one before, and the rule each
//! added enum value fell under.

use std::ops::Range;

use backstop_sql::enum_use::{Added, Transaction, Use};
use backstop_sql::Statement;
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
    /// The author's `COMMIT` in the file (in layouts whose tool runs the
    /// file as written): the run commits there, and what follows runs in a
    /// new transaction, or outside one where the tool runs it so.
    AuthorsCommit { version: String, at: String, why: String },
    /// The group comes after a migration its author's `COMMIT` split.
    AfterAuthorsCommit { version: String },
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
            Split::AuthorsCommit { version, at, why } => {
                write!(f, "{version} commits at its author's COMMIT ({at}), which {why}")
            }
            Split::AfterAuthorsCommit { version } => {
                write!(f, "it follows {version}, which its author's COMMIT splits")
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
            if !matches!(split, Split::AfterNoTransaction { .. } | Split::AfterAuthorsCommit { .. })
            {
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
                statements: g.statements().count(),
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
        part: &Part,
    ) -> Option<Foreign> {
        let m = pending[mi];
        let autocommit = !part.transactional;
        for si in part.statements.clone() {
            let s = &m.up.statements[si];
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
                let rule = if autocommit { EnumRule::NoTransaction } else { EnumRule::Unused };
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
            if autocommit {
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

/// A run of one migration's statements in one transaction, or outside
/// one: the whole up, or a part of it its author's `COMMIT` marks.
struct Part {
    statements: Range<usize>,
    transactional: bool,
    /// Whether the migration's last statement is in it.
    finishes: bool,
    /// Why the run commits before it: the author's statement, for every
    /// part but the first.
    split: Option<Split>,
}

/// The parts of `m`'s up, in run order.
fn parts_of(m: &Migration) -> Vec<Part> {
    let segments = m.up.segments();
    let n = segments.len();
    segments
        .into_iter()
        .enumerate()
        .map(|(i, seg)| Part {
            statements: seg.statements,
            transactional: seg.transactional,
            finishes: i + 1 == n,
            split: seg.boundary.map(|b| Split::AuthorsCommit {
                version: m.label(),
                at: format!("{}:{}", m.up.path.display(), b.line),
                why: b.why.clone(),
            }),
        })
        .collect()
}

/// Splits pending migrations into transaction groups: one transaction for
/// all, except that a no-transaction migration runs alone, a transaction
/// commits before a migration that uses an enum value it added, and a
/// migration whose author's `COMMIT` splits it commits there (what follows
/// runs in a group of its own, or outside a transaction where its tool
/// runs it so); with `each`, one transaction per migration.
pub fn plan_up<'m>(pending: &[&'m Migration], each: bool) -> Plan<'m> {
    let mut plan = Plan::default();
    let mut tx: Transaction<'m, At> = Transaction::default();
    // Why the next migration may not join the last group (`None`: it may).
    let mut closed: Option<Split> = None;
    for (mi, m) in pending.iter().enumerate() {
        let parts = parts_of(m);
        for part in &parts {
            let group = |transactional| Group {
                direction: Direction::Up,
                transactional,
                migrations: vec![*m],
                first_from: part.statements.start,
                last_until: (!part.finishes).then_some(part.statements.end),
            };
            if !part.transactional {
                tx.commit();
                plan.feed(&mut tx, pending, mi, part);
                let split =
                    part.split.clone().unwrap_or_else(|| no_transaction_split(&m.label(), &m.up));
                plan.push(group(false), Some(split));
                closed = Some(Split::AfterNoTransaction { version: m.label() });
                continue;
            }
            let split = match (&part.split, &closed) {
                (Some(split), _) => Some(split.clone()),
                (None, Some(_)) if plan.groups.is_empty() => None,
                (None, Some(why)) => Some(why.clone()),
                (None, None) if plan.groups.is_empty() => None,
                (None, None) if each => Some(Split::Each),
                (None, None) => {
                    let mut trial = tx.clone();
                    let mark = plan.enum_values.len();
                    match plan.feed(&mut trial, pending, mi, part) {
                        None => {
                            tx = trial;
                            let last = plan.groups.last_mut().expect("an open group");
                            last.migrations.push(m);
                            last.last_until = (!part.finishes).then_some(part.statements.end);
                            closed = close_after(m, part);
                            continue;
                        }
                        Some(found) => {
                            plan.enum_values.truncate(mark);
                            Some(plan.committed_before(pending, mi, found))
                        }
                    }
                }
            };
            tx.commit();
            plan.feed(&mut tx, pending, mi, part);
            plan.push(group(true), split);
            closed = close_after(m, part);
        }
    }
    plan
}

/// Why no migration may join the group `part` of `m` ran in: it ends
/// where the author's `COMMIT` splits `m`, or it holds the last part of a
/// split migration (whose failure must not take other migrations with
/// it); `None` when it stays open.
fn close_after(m: &Migration, part: &Part) -> Option<Split> {
    let split_here = part.split.is_some() || !part.finishes;
    split_here.then(|| Split::AfterAuthorsCommit { version: m.label() })
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
                let group = Group::whole(Direction::Down, !down.no_transaction, vec![m]);
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

    /// Regression (issue 43): a value added inside a DO block's IF was not
    /// seen, the migration that used it joined the same group and the
    /// group failed with 55P04.
    #[test]
    fn a_value_added_in_a_do_block_commits_before_its_user_too() {
        let add = "DO $$ BEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_enum WHERE enumlabel = 'meh') THEN\n    ALTER TYPE mood ADD VALUE 'meh';\n  END IF;\nEND $$;";
        let (_tmp, ms) = load(&[
            ("1_add_value/up.sql", add),
            ("2_use_value/up.sql", "UPDATE people SET mood = 'meh';"),
        ]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        assert_eq!(shape(&plan), vec![(true, v(&["1"])), (true, v(&["2"]))]);
        assert_eq!(plan.enum_values[0].label, "meh");
    }

    #[test]
    fn the_authors_commit_after_add_value_splits_its_migration_and_closes_the_group() {
        let (_tmp, ms) = load(&[
            ("migration_lock.toml", "provider = \"postgresql\"\n"),
            ("20240101000000_a/migration.sql", "CREATE TABLE a (id int);"),
            (
                "20240102000000_b/migration.sql",
                "BEGIN;\nALTER TYPE kind ADD VALUE 'b';\nCOMMIT;\nUPDATE t SET k = 'b';\n",
            ),
            ("20240103000000_c/migration.sql", "CREATE TABLE c (id int);"),
        ]);
        let pending: Vec<&Migration> = ms.iter().collect();
        let plan = plan_up(&pending, false);
        let v3 = ["20240101000000", "20240102000000", "20240103000000"];
        assert_eq!(
            shape(&plan),
            vec![(true, v(&v3[..2])), (true, v(&v3[1..2])), (true, v(&v3[2..]))]
        );
        let groups = &plan.groups;
        assert_eq!((groups[0].range(1), groups[0].finishes(1)), (0..1, false));
        assert_eq!((groups[1].range(0), groups[1].finishes(0)), (1..2, true));
        assert!(groups[1].continues() && !groups[2].continues());
        let Some(Split::AuthorsCommit { at, why, .. }) = &plan.splits[1] else {
            panic!("{:?}", plan.splits)
        };
        assert!(at.ends_with("20240102000000_b/migration.sql:3"), "{at}");
        assert!(why.contains("ADD VALUE of 'b' to kind"), "{why}");
        assert!(matches!(&plan.splits[2], Some(Split::AfterAuthorsCommit { .. })));
        let counts: Vec<usize> = plan.planned().iter().map(|g| g.statements).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(plan.reasons().len(), 1, "{:?}", plan.reasons());
        assert_eq!(plan.enum_values[0].rule, EnumRule::Unused);
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
