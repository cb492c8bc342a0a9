//! `rls`: row-level security is enabled (and forced, if asked) on each
//! table, and each has a permissive policy for every listed command. A
//! table with RLS on and no permissive policy denies everyone but its
//! owner everything, which is reported too.

use postgres::Client;

use super::{db, list, table, Outcome};
use crate::verify::config::RlsCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &RlsCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let mut problems = Vec::new();
    let mut good = Vec::new();
    for name in &c.tables {
        let rel = match table(client, name)? {
            Ok(rel) => rel,
            Err(why) => {
                problems.push(why);
                continue;
            }
        };
        let row = client
            .query_one(
                "select relrowsecurity, relforcerowsecurity from pg_class where oid = $1",
                &[&rel.oid],
            )
            .map_err(db("reading pg_class"))?;
        let (enabled, forced): (bool, bool) = (row.get(0), row.get(1));
        if !enabled {
            problems.push(format!(
                "{rel}: row level security is disabled (ALTER TABLE {} ENABLE ROW LEVEL SECURITY)",
                rel.sql()
            ));
            continue;
        }
        if c.force && !forced {
            problems.push(format!(
                "{rel}: row level security is not forced, so the owner bypasses it (ALTER TABLE {} FORCE ROW LEVEL SECURITY)",
                rel.sql()
            ));
        }
        let policies = client
            .query(
                "select polcmd::text from pg_policy where polrelid = $1 and polpermissive",
                &[&rel.oid],
            )
            .map_err(db("reading pg_policy"))?;
        let cmds: Vec<String> = policies.iter().map(|r| r.get(0)).collect();
        if cmds.is_empty() {
            problems.push(format!(
                "{rel}: row level security is on but there is no permissive policy, so everyone but the owner is denied everything"
            ));
            continue;
        }
        let uncovered: Vec<&str> = c
            .commands
            .iter()
            .filter(|cmd| !cmds.iter().any(|p| p == "*" || p == cmd.polcmd()))
            .map(|cmd| cmd.sql())
            .collect();
        if uncovered.is_empty() {
            good.push(format!(
                "{rel} ({} polic{})",
                cmds.len(),
                if cmds.len() == 1 { "y" } else { "ies" }
            ));
        } else {
            problems.push(format!("{rel}: no policy for {}", list(&uncovered)));
        }
    }
    Ok(if problems.is_empty() {
        let forced = if c.force { "enabled and forced" } else { "enabled" };
        Outcome::Pass(format!("row level security {forced} on {}", list(&good)))
    } else {
        Outcome::Fail(problems.join("; "))
    })
}
