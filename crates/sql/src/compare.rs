//! Whether two SQL texts that differ as text differ as PostgreSQL reads
//! them: the same tokens (whitespace, comments and keyword case aside, the
//! bodies of dollar-quoted functions included), the same view but for a
//! date frozen into it when it was created, or the same select list in
//! another order. Used to keep cosmetic differences of a schema apart
//! from the ones that change behaviour.

use pg_query::protobuf::{KeywordKind, Token};

/// The text's tokens, comments left out, keywords and unquoted names
/// folded to lower case; a dollar-quoted literal (a function body) is
/// read as tokens too, since whitespace in it does not matter either.
pub fn tokens(text: &str) -> Option<Vec<String>> {
    let scanned = crate::parse::scan(text).ok()?;
    let mut out = Vec::with_capacity(scanned.len());
    for t in &scanned {
        if t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32 {
            continue;
        }
        let raw = text.get(t.start as usize..t.end as usize)?;
        if t.token == Token::Sconst as i32 && raw.starts_with('$') {
            // $tag$ body $tag$: compare the body by its own tokens.
            let tag_end = raw[1..].find('$').map(|i| i + 2)?;
            let body = &raw[tag_end..raw.len().saturating_sub(tag_end)];
            out.push("$$".to_string());
            out.extend(tokens(body)?);
            out.push("$$".to_string());
            continue;
        }
        let folds = t.keyword_kind != KeywordKind::NoKeyword as i32
            || (t.token == Token::Ident as i32 && !raw.starts_with('"'));
        out.push(if folds { raw.to_lowercase() } else { raw.to_string() });
    }
    Some(out)
}

/// Whether `a` and `b` are the same SQL but for whitespace, comments and
/// the case of keywords, function bodies included.
pub fn same_tokens(a: &str, b: &str) -> bool {
    matches!((tokens(a), tokens(b)), (Some(x), Some(y)) if x == y)
}

/// A string constant that holds a date or a time, as PostgreSQL stores
/// `'now'::timestamp` or `CURRENT_DATE` folded into a view when it was
/// created.
fn is_date_literal(token: &str) -> bool {
    let inner = token.trim_matches('\'');
    inner.len() >= 8
        && inner.starts_with(|c: char| c.is_ascii_digit())
        && inner.chars().all(|c| c.is_ascii_digit() || "-:. +T".contains(c))
        && inner.matches('-').count() >= 2
}

/// Whether `a` and `b` differ only in date or time constants, the way a
/// view that froze `now()` when it was created differs from the same view
/// created another day.
pub fn frozen_dates_only(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (tokens(a), tokens(b)) else { return false };
    if x.len() != y.len() || x == y {
        return false;
    }
    x.iter().zip(&y).all(|(p, q)| p == q || (is_date_literal(p) && is_date_literal(q)))
}

/// `text` with each date or time constant in it (as a view that froze
/// `now()` holds one) replaced by one mark, as the text a fingerprint
/// hashes: two such views from two days are one. `None` where it holds
/// none, or does not scan.
pub fn dates_masked(text: &str) -> Option<String> {
    let toks = tokens(text)?;
    if !toks.iter().any(|t| is_date_literal(t)) {
        return None;
    }
    let masked: Vec<&str> =
        toks.iter().map(|t| if is_date_literal(t) { "'<date>'" } else { t.as_str() }).collect();
    Some(masked.join(" "))
}

/// The items of the first select list in `text` (split at commas outside
/// parentheses), and the tokens around it.
fn select_list(text: &str) -> Option<(Vec<Vec<String>>, Vec<String>)> {
    let toks = tokens(text)?;
    let start = toks.iter().position(|t| t == "select")? + 1;
    let mut depth = 0i32;
    let mut items = vec![Vec::new()];
    let mut end = toks.len();
    for (i, t) in toks.iter().enumerate().skip(start) {
        match t.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth -= 1,
            "," if depth == 0 => {
                items.push(Vec::new());
                continue;
            }
            "from" | "where" | "group" | "having" | "window" | "order" | "limit" | "union"
            | "intersect" | "except" | ";"
                if depth == 0 =>
            {
                end = i;
                break;
            }
            _ => {}
        }
        items.last_mut()?.push(t.clone());
    }
    let mut rest = toks[..start].to_vec();
    rest.extend_from_slice(&toks[end..]);
    Some((items, rest))
}

/// Whether `a` and `b` are one view whose select list only comes in
/// another order, as a view over `SELECT *` does when its table's columns
/// were reordered.
pub fn select_list_reordered(a: &str, b: &str) -> bool {
    let (Some((mut x, rx)), Some((mut y, ry))) = (select_list(a), select_list(b)) else {
        return false;
    };
    if rx != ry || x == y {
        return false;
    }
    x.sort();
    y.sort();
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_bodies_compare_by_their_tokens() {
        let a = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $function$\nBEGIN\n  RETURN 1; -- one\nEND\n$function$";
        let b = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $function$ begin return 1; end $function$";
        assert!(same_tokens(a, b));
        let c = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $function$ begin return 2; end $function$";
        assert!(!same_tokens(a, c));
        let d = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql SET search_path = public AS $function$ begin return 1; end $function$";
        assert!(!same_tokens(b, d), "SET search_path changes behaviour");
        // A string's content is not whitespace to ignore.
        assert!(!same_tokens("SELECT 'a  b'", "SELECT 'a b'"));
    }

    #[test]
    fn a_date_frozen_into_a_view_is_the_only_difference_allowed() {
        let a =
            " SELECT t.id FROM t WHERE t.at > '2026-01-05 10:00:00'::timestamp without time zone;";
        let b = " SELECT t.id FROM t WHERE t.at > '2026-11-23 04:12:09.123'::timestamp without time zone;";
        assert!(frozen_dates_only(a, b));
        assert!(!frozen_dates_only(a, a));
        let c = " SELECT t.id FROM t WHERE t.at > '2026-11-23'::date AND t.kind = 'x';";
        let d = " SELECT t.id FROM t WHERE t.at > '2026-11-24'::date AND t.kind = 'y';";
        assert!(!frozen_dates_only(c, d), "'x' and 'y' are not dates");
    }

    #[test]
    fn a_select_list_in_another_order_is_recognised() {
        let a = " SELECT t.id,\n    t.email,\n    lower(t.name) AS name\n   FROM t;";
        let b = " SELECT t.email,\n    lower(t.name) AS name,\n    t.id\n   FROM t;";
        assert!(select_list_reordered(a, b));
        let c = " SELECT t.email,\n    t.id\n   FROM t;";
        assert!(!select_list_reordered(a, c), "a column gone is not an order");
        let d = " SELECT t.email,\n    lower(t.name) AS name,\n    t.id\n   FROM t WHERE t.id > 1;";
        assert!(!select_list_reordered(a, d));
        let e = " SELECT f(t.id, t.email) AS x, t.id\n   FROM t;";
        let f = " SELECT t.id, f(t.id, t.email) AS x\n   FROM t;";
        assert!(select_list_reordered(e, f), "commas inside calls are not item breaks");
    }
}
