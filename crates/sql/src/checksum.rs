//! Checksums of migration SQL over PostgreSQL's own token stream: a
//! comment or whitespace edit is no drift, a changed statement is.

use pg_query::protobuf::{KeywordKind, Token};

use crate::parse::{is_comment, locate_error, scan_in_pieces, Statement, SyntaxError};

/// A checksum of the SQL that ignores comments, whitespace and the case of
/// keywords and unquoted identifiers (PostgreSQL folds those), but keeps
/// every literal byte for byte: a changed default value is drift.
pub fn checksum(text: &str) -> Result<String, SyntaxError> {
    checksum_split(text, &[])
}

/// [`checksum`], with the text scanned in pieces cut at the ends of its
/// `statements` (as [`split`] gives them; the checksum is the same), so that
/// a large file is never scanned whole.
pub fn checksum_split(text: &str, statements: &[Statement]) -> Result<String, SyntaxError> {
    let ends: Vec<usize> = statements.iter().map(|s| s.offset + s.sql.len()).collect();
    let mut hasher = blake3::Hasher::new();
    scan_in_pieces(text, &ends, |token| {
        if is_comment(token.token) {
            return;
        }
        let Some(raw) = text.get(token.start as usize..token.end as usize) else {
            return;
        };
        let folds = token.keyword_kind != KeywordKind::NoKeyword as i32
            || (token.token == Token::Ident as i32 && !raw.starts_with('"'));
        if folds {
            hasher.update(raw.to_lowercase().as_bytes());
        } else {
            hasher.update(raw.as_bytes());
        }
        // A separator that cannot occur inside a token keeps `ab c` and `a bc` apart.
        hasher.update(&[0]);
    })
    .map_err(|e| locate_error(text, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}
