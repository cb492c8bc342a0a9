//! Secrets masked in SQL that is shown: a statement in a failure report or
//! a progress line must not print the password it sets.

use pg_query::protobuf::Token;

use crate::parse::is_comment;

/// The SQL with secrets masked, for showing it: string literals after
/// `PASSWORD` (roles, user mappings) become `'****'`, and `password=` in a
/// `CONNECTION '...'` string (subscriptions) is masked. Unscannable text is
/// returned unchanged; it cannot have run either.
pub fn redact_secrets(sql: &str) -> String {
    let Ok(tokens) = crate::parse::scan(sql) else {
        return sql.to_string();
    };
    let tokens: Vec<_> = tokens.iter().filter(|t| !is_comment(t.token)).collect();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for pair in tokens.windows(2) {
        let (keyword, value) = (pair[0], pair[1]);
        if value.token != Token::Sconst as i32 {
            continue;
        }
        let (start, end) = (value.start as usize, value.end as usize);
        let replacement = if keyword.token == Token::Password as i32 {
            "'****'".to_string()
        } else if keyword.token == Token::Connection as i32 {
            mask_conninfo(&sql[start..end])
        } else {
            continue;
        };
        out.push_str(&sql[copied..start]);
        out.push_str(&replacement);
        copied = end;
    }
    out.push_str(&sql[copied..]);
    out
}

fn mask_conninfo(literal: &str) -> String {
    literal
        .split(' ')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.trim_start_matches('\'').eq_ignore_ascii_case("password") => {
                let quote = if part.ends_with('\'') && !part.starts_with('\'') { "'" } else { "" };
                format!("{key}=****{quote}")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_for_display() {
        assert_eq!(
            redact_secrets("ALTER ROLE app WITH LOGIN PASSWORD 's3cret' VALID UNTIL 'infinity'"),
            "ALTER ROLE app WITH LOGIN PASSWORD '****' VALID UNTIL 'infinity'"
        );
        assert_eq!(
            redact_secrets(
                "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'a', password 'pw')"
            ),
            "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'a', password '****')"
        );
        assert_eq!(
            redact_secrets(
                "CREATE SUBSCRIPTION s CONNECTION 'host=h password=pw dbname=d' PUBLICATION p"
            ),
            "CREATE SUBSCRIPTION s CONNECTION 'host=h password=**** dbname=d' PUBLICATION p"
        );
        assert_eq!(redact_secrets("SELECT 'password'"), "SELECT 'password'");
    }
}
