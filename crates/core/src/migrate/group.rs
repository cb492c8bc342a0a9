//! What runs together: a group of migrations (or of their parts) that
//! commits as one transaction, or one migration's statements run outside
//! a transaction, one by one.

use std::ops::Range;

use backstop_sql::Statement;

use crate::source::{Migration, SqlFile};

/// Which way a migration is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// Migrations run together: in one transaction, or (a no-transaction
/// migration, or the part of one its author put outside a transaction)
/// alone, statement by statement. A migration whose author's `COMMIT`
/// splits it ([`crate::source::Boundary`]) is in several groups: its first
/// part ends the group it starts in, its last part starts the group it
/// ends in, and only that one records it applied.
#[derive(Debug, Clone)]
pub struct Group<'m> {
    pub direction: Direction,
    pub transactional: bool,
    pub migrations: Vec<&'m Migration>,
    /// The first statement of `migrations[0]` that runs here (0 but for
    /// the later part of a split migration).
    pub first_from: usize,
    /// Where the statements of the last migration stop when only a part
    /// of it runs here; `None`: to its end.
    pub last_until: Option<usize>,
}

impl<'m> Group<'m> {
    /// Whole migrations run together.
    pub fn whole(
        direction: Direction,
        transactional: bool,
        migrations: Vec<&'m Migration>,
    ) -> Self {
        Group { direction, transactional, migrations, first_from: 0, last_until: None }
    }

    pub(crate) fn file<'a>(&self, m: &'a Migration) -> &'a SqlFile {
        match self.direction {
            Direction::Up => &m.up,
            Direction::Down => m.down.as_ref().expect("planned downs exist"),
        }
    }

    /// The statements of `migrations[i]` that run in this group, by their
    /// indexes in its file.
    pub fn range(&self, i: usize) -> Range<usize> {
        let len = self.file(self.migrations[i]).statements.len();
        let start = if i == 0 { self.first_from } else { 0 };
        let end = match self.last_until {
            Some(end) if i + 1 == self.migrations.len() => end,
            _ => len,
        };
        start.min(end)..end
    }

    /// Whether `migrations[i]` is finished here: its last statement runs in
    /// this group, which records it.
    pub fn finishes(&self, i: usize) -> bool {
        i + 1 < self.migrations.len() || self.last_until.is_none()
    }

    /// Whether `migrations[0]` began in an earlier group.
    pub fn continues(&self) -> bool {
        self.first_from > 0
    }

    /// The statements that run in this group, in run order.
    pub fn statements(&self) -> impl Iterator<Item = &'m Statement> + Clone + '_ {
        (0..self.migrations.len()).flat_map(move |i| {
            let m: &'m Migration = self.migrations[i];
            let file: &'m SqlFile = match self.direction {
                Direction::Up => &m.up,
                Direction::Down => m.down.as_ref().expect("planned downs exist"),
            };
            file.statements[self.range(i)].iter()
        })
    }

    /// The versions in this group, in run order.
    pub fn versions(&self) -> Vec<String> {
        self.migrations.iter().map(|m| m.version.clone()).collect()
    }
}
