//! What an up changed of something that was there, set back from the
//! schema picture before it, where the picture holds that part whole:
//! a relation's row security and privileges, a schema's or a routine's
//! privileges, and the tables a publication names. Anything else that
//! changed is not read here (`None`), and the down is worked out the full
//! way. The statements are checked like every quick down: by the picture
//! after them, which must be the one before.

use backstop_sql::rewrite::{ident, qualified};

/// The statements that give `key` its definition `was` back, where the up
/// left it as `now` (`None`: the up took it away). `publications` are the
/// names of the publications of either picture, to read a key that names
/// one.
pub(super) fn statements(
    key: &str,
    was: &str,
    now: Option<&str>,
    publications: &[&str],
) -> Option<Vec<String>> {
    if let Some(rest) = key.strip_prefix("publication table ") {
        // A table the up took out of a publication that named it whole.
        let (publication, table) = member(rest, publications)?;
        let whole = was.is_empty() || was == "columns=all";
        return (now.is_none() && whole)
            .then(|| vec![format!("ALTER PUBLICATION {} ADD TABLE {table}", ident(&publication))]);
    }
    let now = now?;
    let (kind, rest) = key.split_once(' ')?;
    let (was_head, was_acl) = split_acl(was)?;
    let (now_head, now_acl) = split_acl(now)?;
    let mut out = Vec::new();
    let object = match kind {
        "relation" => {
            let [schema, name] = <[String; 2]>::try_from(names(rest)?).ok()?;
            let table = qualified(&schema, &name);
            out.extend(row_security(&table, was_head, now_head)?);
            let grantable = if was_head.starts_with('S') { "SEQUENCE" } else { "TABLE" };
            format!("{grantable} {table}")
        }
        "schema" if was_head == now_head => format!("SCHEMA {}", ident(rest)),
        "function" if was_head == now_head => {
            let (name, args) = rest.split_once('(')?;
            let [schema, name] = <[String; 2]>::try_from(names(name)?).ok()?;
            format!("ROUTINE {}({args}", qualified(&schema, &name))
        }
        _ => return None,
    };
    out.extend(privileges(&object, was_acl, now_acl)?);
    Some(out)
}

/// The publication and the table (as SQL) a `publication table` key's
/// rest names: the publication is the longest of `publications` it
/// starts with, so a name with a space is still read whole (a wrong
/// reading makes a statement the proof then refuses).
pub(super) fn member(rest: &str, publications: &[&str]) -> Option<(String, String)> {
    let found = publications.iter().filter_map(|p| {
        let table = rest.strip_prefix(p)?.strip_prefix(' ')?;
        let [schema, name] = <[String; 2]>::try_from(names(table)?).ok()?;
        Some((p.to_string(), qualified(&schema, &name)))
    });
    found.max_by_key(|(p, _)| p.len())
}

/// `schema.name` cut at its dot: `None` where a name holds a dot.
fn names(rest: &str) -> Option<Vec<String>> {
    let p: Vec<String> = rest.split('.').map(str::to_string).collect();
    (p.len() == 2).then_some(p)
}

/// A definition cut before its ` acl={…}` part (always its last).
fn split_acl(definition: &str) -> Option<(&str, &str)> {
    let at = definition.rfind(" acl=")?;
    let (head, acl) = definition.split_at(at);
    Some((head, acl.trim_start_matches(" acl=")))
}

/// The statements that set a relation's row security back, when that is
/// all that changed in its definition (its ACL apart).
fn row_security(table: &str, was: &str, now: &str) -> Option<Vec<String>> {
    let word = |definition: &str, name: &str| -> Option<String> {
        let token = definition.split(' ').find_map(|t| t.strip_prefix(name))?;
        Some(token.to_string())
    };
    let without = |definition: &str| -> String {
        let kept =
            definition.split(' ').filter(|t| !t.starts_with("rls=") && !t.starts_with("force="));
        kept.collect::<Vec<_>>().join(" ")
    };
    if without(was) != without(now) {
        return None;
    }
    let mut out = Vec::new();
    if word(was, "rls=")? != word(now, "rls=")? {
        let on = if word(was, "rls=")? == "true" { "ENABLE" } else { "DISABLE" };
        out.push(format!("ALTER TABLE {table} {on} ROW LEVEL SECURITY"));
    }
    if word(was, "force=")? != word(now, "force=")? {
        let on = if word(was, "force=")? == "true" { "FORCE" } else { "NO FORCE" };
        out.push(format!("ALTER TABLE {table} {on} ROW LEVEL SECURITY"));
    }
    Some(out)
}

/// One item of an ACL: who holds what, granted by whom.
#[derive(Debug, PartialEq, Eq)]
struct Item {
    /// Empty for PUBLIC.
    grantee: String,
    privileges: String,
    grantor: String,
}

/// The items of an ACL as PostgreSQL prints it (`{a=r/b,"x y"=arw/b}`),
/// split and their names read as the picture's own reader does.
fn items(acl: &str) -> Option<Vec<Item>> {
    use crate::pg::fingerprint::{acl_items, grantee};
    let inner = acl.strip_prefix('{')?.strip_suffix('}')?;
    acl_items(inner)
        .iter()
        .map(|item| {
            let (held, grantor) = item.rsplit_once('/')?;
            let (_, privileges) = held.rsplit_once('=')?;
            Some(Item {
                grantee: grantee(item),
                privileges: privileges.to_string(),
                grantor: grantee(grantor),
            })
        })
        .collect()
}

/// The privilege a letter of an ACL stands for.
fn privilege(letter: char) -> Option<&'static str> {
    Some(match letter {
        'r' => "SELECT",
        'a' => "INSERT",
        'w' => "UPDATE",
        'd' => "DELETE",
        'D' => "TRUNCATE",
        'x' => "REFERENCES",
        't' => "TRIGGER",
        'm' => "MAINTAIN",
        'X' => "EXECUTE",
        'U' => "USAGE",
        'C' => "CREATE",
        'c' => "CONNECT",
        'T' => "TEMPORARY",
        _ => return None,
    })
}

/// The `REVOKE`s and `GRANT`s that give `object` the ACL `was` back from
/// `now`, role by role: a role whose items changed loses what it holds
/// and is granted what it held. A role that held privileges from several
/// grantors is not read (`None`): one statement cannot give them back.
fn privileges(object: &str, was: &str, now: &str) -> Option<Vec<String>> {
    if was == now {
        return Some(Vec::new());
    }
    let (was, now) = (items(was)?, items(now)?);
    let of = |list: &[Item], who: &str| -> Vec<(String, String)> {
        let mine = list.iter().filter(|i| i.grantee == who);
        let mut v: Vec<(String, String)> =
            mine.map(|i| (i.privileges.clone(), i.grantor.clone())).collect();
        v.sort();
        v
    };
    let mut roles: Vec<&str> = was.iter().chain(&now).map(|i| i.grantee.as_str()).collect();
    roles.sort();
    roles.dedup();
    let mut out = Vec::new();
    for who in roles {
        let (had, has) = (of(&was, who), of(&now, who));
        if had == has {
            continue;
        }
        let role = if who.is_empty() { "PUBLIC".to_string() } else { ident(who) };
        if !has.is_empty() {
            out.push(format!("REVOKE ALL ON {object} FROM {role}"));
        }
        let [(letters, _)] = had.as_slice() else {
            if had.is_empty() {
                continue;
            }
            return None;
        };
        let (mut plain, mut granting) = (Vec::new(), Vec::new());
        let mut chars = letters.chars().peekable();
        while let Some(c) = chars.next() {
            let p = privilege(c)?;
            if chars.peek() == Some(&'*') {
                chars.next();
                granting.push(p);
            } else {
                plain.push(p);
            }
        }
        if !plain.is_empty() {
            out.push(format!("GRANT {} ON {object} TO {role}", plain.join(", ")));
        }
        if !granting.is_empty() {
            out.push(format!(
                "GRANT {} ON {object} TO {role} WITH GRANT OPTION",
                granting.join(", ")
            ));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_granted_by_the_up_are_taken_back_role_by_role() {
        let was = "r rls=false force=false persistence=p acl={owner=arwdDxtm/owner}";
        let now = "r rls=true force=false persistence=p \
                   acl={owner=arwdDxtm/owner,authenticated=arw/owner,\"odd \"\"one\"\"\"=r*/owner}";
        assert_eq!(
            statements("relation public.items", was, Some(now), &[]).unwrap(),
            [
                "ALTER TABLE public.items DISABLE ROW LEVEL SECURITY",
                "REVOKE ALL ON TABLE public.items FROM authenticated",
                "REVOKE ALL ON TABLE public.items FROM \"odd \"\"one\"\"\"",
            ]
        );
        // And back the other way: what a REVOKE took is granted again.
        assert_eq!(
            statements("relation public.items", now, Some(was), &[]).unwrap(),
            [
                "ALTER TABLE public.items ENABLE ROW LEVEL SECURITY",
                "GRANT INSERT, SELECT, UPDATE ON TABLE public.items TO authenticated",
                "GRANT SELECT ON TABLE public.items TO \"odd \"\"one\"\"\" WITH GRANT OPTION",
            ]
        );
        let public = statements(
            "function public.f(a integer)",
            "CREATE FUNCTION … acl={o=X/o,=X/o}",
            Some("CREATE FUNCTION … acl={o=X/o}"),
            &[],
        );
        assert_eq!(public.unwrap(), ["GRANT EXECUTE ON ROUTINE public.f(a integer) TO PUBLIC"]);
    }

    #[test]
    fn anything_else_that_changed_is_not_read_here() {
        let was = "r rls=false force=false persistence=p acl={o=arwdDxtm/o}";
        let logged = "r rls=false force=false persistence=u acl={o=arwdDxtm/o}";
        assert!(statements("relation public.t", was, Some(logged), &[]).is_none());
        assert!(statements("relation public.t", was, None, &[]).is_none(), "a table gone");
        let body = statements("function public.f()", "A acl={o=X/o}", Some("B acl={o=X/o}"), &[]);
        assert!(body.is_none(), "a function's body");
        let two_grantors = "r rls=false acl={o=arwdDxtm/o,a=r/o,a=w/b}";
        let none = "r rls=false acl={o=arwdDxtm/o}";
        assert!(statements("relation public.t", two_grantors, Some(none), &[]).is_none());
    }

    #[test]
    fn a_publication_gets_back_a_table_it_named_whole() {
        let pubs = ["supabase realtime", "supabase"];
        assert_eq!(
            statements("publication table supabase realtime public.t", "columns=all", None, &pubs)
                .unwrap(),
            ["ALTER PUBLICATION \"supabase realtime\" ADD TABLE public.t"]
        );
        let some_columns = "columns=id,name";
        let key = "publication table supabase public.t";
        assert!(statements(key, some_columns, None, &pubs).is_none());
        assert_eq!(
            member("supabase public.t", &pubs),
            Some(("supabase".into(), "public.t".into()))
        );
    }
}
