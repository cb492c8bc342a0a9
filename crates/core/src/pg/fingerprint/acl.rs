//! The privileges the picture appends to an object's definition
//! (` acl={…}`, always its last part), read item by item.

/// The grantee of one `aclitem` as text (`name=privs/grantor`, the name
/// quoted when it needs to be; empty for PUBLIC).
pub(crate) fn grantee(item: &str) -> String {
    let item = item.trim();
    let Some(rest) = item.strip_prefix('"') else {
        return item.split('=').next().unwrap_or("").to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('"', Some('"')) => {
                out.push('"');
                chars.next();
            }
            ('"', _) => break,
            (c, _) => out.push(c),
        }
    }
    out
}

/// A definition cut before its ` acl={…}` part (always its last), that
/// part with it; `None` where it has none.
pub(super) fn split_acl(definition: &str) -> Option<(&str, &str)> {
    definition.rfind(" acl=").map(|at| definition.split_at(at))
}

/// The `acl=` part of an object's definition (always its last part)
/// without the items `drop` says to leave out (every item when `drop` is
/// `None`).
pub(super) fn masked_acl(definition: &str, drop: Option<&[String]>) -> String {
    let Some((head, acl)) = split_acl(definition) else { return definition.to_string() };
    let Some(roles) = drop else { return head.to_string() };
    let kept: Vec<String> =
        acl_items(acl).into_iter().filter(|i| !roles.contains(&grantee(i))).collect();
    format!("{head} acl={{{}}}", kept.join(","))
}

/// The items of an ` acl={…}` part, split at commas outside double quotes.
pub(crate) fn acl_items(acl: &str) -> Vec<String> {
    let inner = acl.trim_start_matches(" acl=").trim_start_matches('{').trim_end_matches('}');
    let mut items = Vec::new();
    let (mut current, mut quoted) = (String::new(), false);
    for c in inner.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

/// The definition with the privilege letter `privilege` taken out of every
/// ACL item (`name=arwdDxtm/grantor` → `name=arwdDxt/grantor`).
pub(super) fn without_privilege(definition: &str, privilege: char) -> String {
    let Some((head, acl)) = split_acl(definition) else { return definition.to_string() };
    let items: Vec<String> = acl_items(acl)
        .into_iter()
        .map(|item| {
            let Some(slash) = item.rfind('/') else { return item };
            let (left, grantor) = item.split_at(slash);
            let Some(eq) = left.rfind('=') else { return item };
            let (who, privileges) = left.split_at(eq + 1);
            let privileges =
                privileges.replace(&format!("{privilege}*"), "").replace(privilege, "");
            format!("{who}{privileges}{grantor}")
        })
        .collect();
    format!("{head} acl={{{}}}", items.join(","))
}

/// Whether two definitions differ only in the order of the privileges
/// the picture appends (` acl={a,b}` against ` acl={b,a}`): a function
/// whose `EXECUTE` was taken from PUBLIC and given back lists its owner
/// first, where PostgreSQL's default lists PUBLIC first.
pub(super) fn same_but_privileges_order(before: &str, after: &str) -> bool {
    let (Some((def_b, acl_b)), Some((def_a, acl_a))) = (split_acl(before), split_acl(after)) else {
        return false;
    };
    let sorted = |acl: &str| {
        let mut items = acl_items(acl);
        items.sort_unstable();
        items
    };
    def_b == def_a && acl_b != acl_a && sorted(acl_b) == sorted(acl_a)
}
