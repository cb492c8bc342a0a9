//! A connection string read the way libpq reads it where a host or port
//! is given twice. libpq keeps one value per key: a `host` or `port` in a
//! URL's query replaces the one before the path, and a key written twice
//! keeps its last value. The driver instead adds every value to its lists
//! of hosts and ports, so `postgres://app@localhost:5432/db?host=/run/pg`
//! (the form a Cloud SQL proxy socket is given in) tried TCP on localhost
//! first, where `psql` given the same URL goes to the socket only: two
//! programs on one URL could reach two servers. Each string is rewritten
//! to the one value libpq would use before the driver reads it.

use std::borrow::Cow;

/// The keys libpq holds one value of (a comma-separated list at most).
const ONE_VALUE: [&str; 3] = ["host", "hostaddr", "port"];

/// `conn` with each of `host`, `hostaddr` and `port` given once, as libpq
/// would read it; unchanged where nothing is given twice.
pub(super) fn as_libpq_reads(conn: &str) -> Cow<'_, str> {
    if conn.contains("://") {
        url(conn)
    } else {
        keywords(conn)
    }
}

/// The index of the last item whose key is `key`.
fn last_of<'a>(items: &[&'a str], key: &str, key_of: impl Fn(&'a str) -> &'a str) -> Option<usize> {
    items.iter().rposition(|item| key_of(item) == key)
}

/// The items, less any earlier item of a key [`ONE_VALUE`] names.
fn last_ones<'a>(items: &[&'a str], key_of: impl Fn(&'a str) -> &'a str + Copy) -> Vec<&'a str> {
    let kept = |(i, item): &(usize, &&'a str)| {
        let key = key_of(item);
        !ONE_VALUE.contains(&key) || last_of(items, key, key_of) == Some(*i)
    };
    items.iter().enumerate().filter(kept).map(|(_, item)| *item).collect()
}

fn url(conn: &str) -> Cow<'_, str> {
    let Some((base, query)) = conn.split_once('?') else {
        return Cow::Borrowed(conn);
    };
    let pairs: Vec<&str> = query.split('&').collect();
    let mut kept: Vec<String> =
        last_ones(&pairs, query_key).into_iter().map(String::from).collect();
    let host = last_of(&pairs, "host", query_key).is_some();
    let port = last_of(&pairs, "port", query_key).is_some();
    if !host && !port && kept.len() == pairs.len() {
        return Cow::Borrowed(conn);
    }
    let Some((scheme, rest)) = base.split_once("://") else {
        return Cow::Borrowed(conn);
    };
    let (netloc, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, hosts) = match netloc.rfind('@') {
        Some(at) => netloc.split_at(at + 1),
        None => ("", netloc),
    };
    // The driver gives a host named without a port the default one, so
    // both lists move into the query, where the one given there replaces
    // what it repeats, as libpq keeps the other.
    let entries: Vec<(&str, Option<&str>)> =
        if hosts.is_empty() { Vec::new() } else { hosts.split(',').map(host_and_port).collect() };
    if !host && !entries.is_empty() {
        let names: Vec<&str> =
            entries.iter().map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).collect();
        kept.push(format!("host={}", names.join(",")));
    }
    let ports: Vec<&str> = entries.iter().map(|(_, p)| p.unwrap_or("")).collect();
    if !port && ports.iter().any(|p| !p.is_empty()) {
        kept.push(format!("port={}", ports.join(",")));
    }
    // The driver reads a query's host list as one name: one pair each.
    let one_each = |pair: &String| match pair.strip_prefix("host=") {
        Some(list) => list.split(',').map(|h| format!("host={h}")).collect(),
        None => vec![pair.clone()],
    };
    let kept: Vec<String> = kept.iter().flat_map(one_each).collect();
    Cow::Owned(format!("{scheme}://{userinfo}{path}?{}", kept.join("&")))
}

/// The key of a URL query's `key=value` pair.
fn query_key(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

/// The key of a keyword string's `key=value` (or `key = value`) as written.
fn keyword_of(text: &str) -> &str {
    &text[..text.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(text.len())]
}

/// A host of a URL's host list and its port, if it names one
/// (`[::1]:5433`, `db:5433`, `db`).
fn host_and_port(entry: &str) -> (&str, Option<&str>) {
    let split = match entry.strip_prefix('[') {
        Some(inner) => inner.find(']').map(|end| end + 2),
        None => entry.rfind(':'),
    };
    match split {
        Some(at) if entry[at..].starts_with(':') => (&entry[..at], Some(&entry[at + 1..])),
        _ => (entry, None),
    }
}

fn keywords(conn: &str) -> Cow<'_, str> {
    // A malformed string goes to the driver as it is, to say why.
    let Some(pairs) = super::conninfo_pairs(conn) else {
        return Cow::Borrowed(conn);
    };
    let texts: Vec<&str> = pairs.iter().map(|(_, text, _)| *text).collect();
    let kept = last_ones(&texts, keyword_of);
    if kept.len() == texts.len() {
        return Cow::Borrowed(conn);
    }
    Cow::Owned(kept.join(" "))
}
