//! A down Backstop computed and proved when `migrate` applied a
//! migration of a layout without downs, kept with its record in
//! `backstop.applied`: read back as the migration's down for `rollback`.

use std::path::PathBuf;

use super::{Migration, Part, Problem, ProblemKind, SqlFile, NO_TRANSACTION_MARKER};

impl Migration {
    /// This migration with `sql` as its down: the down Backstop computed,
    /// proved and kept with its record when it was applied.
    pub fn with_kept_down(&self, sql: &str) -> Migration {
        let no_transaction = sql.lines().next().is_some_and(|l| l.trim() == NO_TRANSACTION_MARKER);
        let (statements, problems) = match backstop_sql::split(sql) {
            Ok(s) => (s, Vec::new()),
            Err(e) => (Vec::new(), vec![e]),
        };
        let path = PathBuf::from(format!("backstop.applied ({}: kept down)", self.version));
        let mut m = self.clone();
        m.problems.extend(problems.into_iter().map(|e| Problem {
            part: Part::Down,
            kind: ProblemKind::Syntax,
            path: path.clone(),
            line: e.position.line,
            column: e.position.column,
            message: e.message,
        }));
        m.down = Some(SqlFile {
            path,
            text: sql.into(),
            statements,
            no_transaction,
            boundaries: Vec::new(),
        });
        m
    }
}
