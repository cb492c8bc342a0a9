//! Places in a text: the line and column of a byte offset, for messages
//! that point at `file:line:column`.

use std::path::PathBuf;

/// A problem at a place in a file, said as `path:line:column: message`.
/// Each config section's parser reports its problems with it; the config
/// file as a whole turns it into its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The 1-based line and column (in characters) of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, column)
}

/// The 1-based line of the first line whose trimmed text satisfies `is`.
pub fn line_where(text: &str, is: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(|l| is(l.trim())).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_count_lines_and_characters() {
        assert_eq!(line_col("ab\ncé d", 6), (2, 3));
        assert_eq!(line_col("x", 99), (1, 2));
        assert_eq!(line_where("a\n [b]\n", |l| l == "[b]"), Some(2));
    }
}
