//! BS406: an identifier longer than PostgreSQL keeps.

use pg_query::protobuf::Token;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a name (of a table, column, index, constraint, any
/// object) longer than 63 bytes, quoted or not (squawk's
/// `identifier-too-long`). Two different long names of one file that
/// PostgreSQL cuts to the same 63 bytes are named together.
///
/// **Why it hurts:** PostgreSQL cuts the name to its first 63 bytes with
/// only a NOTICE: the object is made under another name than the one
/// written, so a tool or a later migration that looks it up by the full
/// name does not find it (an ORM's schema comparison sees a drop and a
/// create), and two names that differ only after byte 63 are one name:
/// the second `CREATE` fails with "already exists", or an `ALTER` or
/// `DROP` reaches the other object.
///
/// **Instead:** a name of at most 63 bytes (ASCII letters are one byte
/// each; accented letters two or more).
pub const META: Meta = Meta {
    name: "identifier-too-long",
    family: Family::Robustness,
    probability: Probability::Medium,
    impact: Impact::Low,
    risk: "the name is cut to 63 bytes; two long names can become one",
    mitigation: "Keep names within 63 bytes",
    phase: Phase::Statements,
};

/// The most bytes of a name PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_BYTES: usize = 63;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    // Every long name of the file as PostgreSQL reads it, with what it keeps.
    let mut seen: Vec<(String, String)> = Vec::new();
    for stmt in &cx.stmts {
        for t in cx.tokens(stmt).filter(|t| t.token == Token::Ident as i32) {
            // A name is never longer than its token.
            let text = cx.token_text(t);
            if text.len() <= MAX_BYTES {
                continue;
            }
            let Some(name) = as_read(text) else { continue };
            if name.len() <= MAX_BYTES || seen.iter().any(|(n, _)| n == &name) {
                continue;
            }
            let kept = cut(&name).to_string();
            let other = seen.iter().find(|(n, k)| k == &kept && n != &name).map(|(n, _)| n.clone());
            let mut hit = Hit::new(
                Code::BS406,
                stmt,
                t.start as usize..t.end as usize,
                format!(
                    "{name} is {} bytes: PostgreSQL keeps only the first {MAX_BYTES}, {kept}",
                    name.len()
                ),
                format!("shorten it to {MAX_BYTES} bytes or fewer"),
            );
            if let Some(other) = other {
                hit.message.push_str(&format!(", the name {other} is also cut to: they are one name"));
                hit = hit.rated(Probability::High, Impact::High);
            }
            seen.push((name, kept));
            out.push(hit);
        }
    }
}

/// The name a token stands for: quotes removed and `""` unescaped, or
/// ASCII letters lowered as PostgreSQL folds an unquoted name.
fn as_read(token: &str) -> Option<String> {
    match token.strip_prefix('"') {
        Some(rest) => Some(rest.strip_suffix('"')?.replace("\"\"", "\"")),
        None => Some(token.to_ascii_lowercase()),
    }
}

/// The first 63 bytes of `name`, not splitting a character.
fn cut(name: &str) -> &str {
    let mut end = MAX_BYTES.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs406(sql: &str) -> Vec<(String, crate::Severity)> {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        report
            .findings
            .iter()
            .filter(|f| f.code == Code::BS406)
            .map(|f| (f.message.clone(), f.severity))
            .collect()
    }

    #[test]
    fn long_names_are_named_once_with_what_is_kept_and_collisions_together() {
        let long = "a".repeat(60);
        let sql = format!(
            "CREATE TABLE t (x int);\nCREATE INDEX {long}_by_created ON t (x);\nCREATE INDEX {long}_by_creator ON t (x);\nDROP INDEX {long}_by_created;"
        );
        let found = bs406(&sql);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].0.contains(&format!("keeps only the first 63, {long}_by")), "{found:?}");
        assert!(found[1].0.contains("they are one name") && found[1].1 > found[0].1, "{found:?}");
        // 63 bytes exactly is kept whole; a quoted name counts as written.
        assert!(bs406(&format!("CREATE TABLE {} (x int);", "b".repeat(63))).is_empty());
        let quoted = format!("CREATE TABLE \"{}é\" (x int);", "c".repeat(62));
        assert_eq!(bs406(&quoted).len(), 1);
    }
}
