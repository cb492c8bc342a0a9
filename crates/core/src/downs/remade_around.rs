//! What a down drops and makes again around a change it undoes, and what
//! it must make first. Around a column whose type goes back: the views on
//! it, the foreign keys on or to it, the policies, triggers and rules that
//! read it (PostgreSQL refuses to change the type under them). Around an
//! enum type swapped back for one of its old labels, and around a function
//! made again with `DROP` and `CREATE` (its result type changed): every
//! index, check, default, policy, trigger, rule, view and function that
//! names it (a partial index `WHERE kind = 'x'` holds a constant of the
//! type). First, before columns are added back: the types they are of.

use std::collections::HashSet;

use postgres::GenericClient;

use super::catalog::Column;
use super::picture::Work;

/// What the down changes under its dependents.
#[derive(Debug, Default)]
pub(super) struct Seeds {
    /// Views the up changed (they are made again, and so are their dependents).
    pub relations: Vec<u32>,
    /// Columns whose type goes back: (table OID, column number).
    pub columns: Vec<(u32, i16)>,
    /// Enum types swapped back (the OIDs they have after the up).
    pub types: Vec<u32>,
    /// Functions dropped and made again (their OIDs after the up).
    pub functions: Vec<u32>,
}

/// The dependents to drop first and make again after.
#[derive(Debug, Default)]
pub(super) struct Around {
    /// Views and materialized views (relation OIDs).
    pub views: HashSet<u32>,
    /// Other objects, by (catalog, OID): foreign keys, checks, indexes,
    /// policies, triggers, rules, functions.
    pub refit: HashSet<(u32, u32)>,
    /// Column defaults: (table OID, column number).
    pub redefault: HashSet<(u32, i16)>,
}

/// The catalog's answer for what depends on the seeds.
pub(super) type Dependents<'f> = dyn FnMut(&Seeds) -> Result<Around, postgres::Error> + 'f;

/// Reads what depends on `seeds`, as [`Around`] says.
pub(super) fn dependents(
    client: &mut impl GenericClient,
    seeds: &Seeds,
) -> Result<Around, postgres::Error> {
    let mut out = Around::default();
    let col_tables: Vec<u32> = seeds.columns.iter().map(|c| c.0).collect();
    let col_nums: Vec<i16> = seeds.columns.iter().map(|c| c.1).collect();
    let mut roots = seeds.relations.clone();
    if !(seeds.columns.is_empty() && seeds.types.is_empty() && seeds.functions.is_empty()) {
        for r in
            client.query(DEPENDENTS, &[&seeds.types, &seeds.functions, &col_tables, &col_nums])?
        {
            let (class, oid): (u32, u32) = (r.get(0), r.get(1));
            let catalog: &str = r.get(2);
            match catalog {
                "pg_rewrite" => match (r.get::<_, Option<u32>>(3), r.get::<_, Option<bool>>(4)) {
                    (Some(view), Some(true)) => roots.push(view),
                    _ => {
                        out.refit.insert((class, oid));
                    }
                },
                "pg_attrdef" => {
                    if let (Some(t), Some(n)) = (r.get(5), r.get(6)) {
                        out.redefault.insert((t, n));
                    }
                }
                "pg_class" => {
                    if matches!(r.get::<_, Option<&str>>(7), Some("i" | "I")) {
                        out.refit.insert((class, oid));
                    }
                }
                "pg_constraint" | "pg_policy" | "pg_trigger" | "pg_proc" => {
                    out.refit.insert((class, oid));
                }
                _ => {}
            }
        }
    }
    out.views.extend(roots.iter().copied());
    out.views.extend(super::catalog::dependent_views(client, &roots, &seeds.columns)?);
    // A function or procedure whose SQL body reads a view made again is
    // dropped before it and made again after (PostgreSQL refuses to drop
    // the view under it).
    let views: Vec<u32> = out.views.iter().copied().collect();
    for r in client.query(READERS_OF_VIEWS, &[&views])? {
        out.refit.insert((r.get(0), r.get(1)));
    }
    let pg_constraint = super::columns::PG_CONSTRAINT;
    for fk in super::catalog::foreign_keys_on(client, &seeds.columns)? {
        out.refit.insert((pg_constraint, fk));
    }
    Ok(out)
}

/// What depends on the types (`$1`) and functions (`$2`), and through the
/// functions among them further on; and the policies, triggers and rules
/// on the columns (`$3`, `$4`). With, where it helps: a rule's relation
/// and whether it is a view's, a default's column, a relation's kind.
const DEPENDENTS: &str = "
with recursive deps(classid, objid) as (
    select d.classid, d.objid from pg_depend d
     where d.deptype in ('n', 'a')
       and ((d.refclassid = 'pg_type'::regclass and d.refobjid = any($1::oid[]))
            or (d.refclassid = 'pg_proc'::regclass and d.refobjid = any($2::oid[])))
  union
    select d.classid, d.objid from pg_depend d join deps x
        on x.classid = 'pg_proc'::regclass and d.refclassid = x.classid and d.refobjid = x.objid
     where d.deptype in ('n', 'a')
), cols(classid, objid) as (
    select d.classid, d.objid from pg_depend d
      join unnest($3::oid[], $4::int2[]) c(rel, att)
        on d.refclassid = 'pg_class'::regclass and d.refobjid = c.rel and d.refobjsubid = c.att
     where d.classid in ('pg_policy'::regclass, 'pg_trigger'::regclass, 'pg_rewrite'::regclass)
)
select x.classid, x.objid, x.classid::regclass::text, r.ev_class, r.rulename = '_RETURN',
       a.adrelid, a.adnum, c.relkind::text
  from (select * from deps union select * from cols) x
  left join pg_rewrite r on x.classid = 'pg_rewrite'::regclass and r.oid = x.objid
  left join pg_attrdef a on x.classid = 'pg_attrdef'::regclass and a.oid = x.objid
  left join pg_class c on x.classid = 'pg_class'::regclass and c.oid = x.objid";

/// The functions and procedures whose SQL-standard body reads one of the
/// views `$1` (`pg_depend` records those, as it does not for a body in a
/// string).
const READERS_OF_VIEWS: &str = "
select distinct d.classid, d.objid from pg_depend d
 where d.classid = 'pg_proc'::regclass and d.refclassid = 'pg_class'::regclass
   and d.refobjid = any($1::oid[]) and d.deptype = 'n'";

/// The type a column is of, as a qualified name without array brackets
/// or modifiers: `public.kind` of `public.kind[]`.
fn base_type(c: &Column) -> &str {
    let t = c.type_name.trim_end_matches("[]");
    t.split('(').next().unwrap_or(t)
}

/// The entries of `before` (by index) the down makes before it adds
/// columns back or changes their type: the types, domains and collations
/// the up dropped that such a column is of, with what they depend on that
/// the up dropped too (their schema, a function a domain's check calls).
pub(super) fn early(work: &Work<'_>, columns: &[&Column]) -> Vec<usize> {
    let before = &work.before.dump;
    let wanted: HashSet<String> = columns
        .iter()
        .flat_map(|c| [base_type(c).to_string(), c.collation.clone().unwrap_or_default()])
        .collect();
    let mut out: HashSet<usize> = HashSet::new();
    let mut todo: Vec<usize> = before
        .entries
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            matches!(e.kind.as_str(), "TYPE" | "DOMAIN" | "COLLATION")
                && !work.pairs.of_before.contains_key(i)
                && wanted.contains(&backstop_sql::rewrite::qualified(&e.schema, &e.name))
        })
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = todo.pop() {
        if !out.insert(i) {
            continue;
        }
        for d in &before.entries[i].deps {
            let Some(j) = before.entries.iter().position(|x| x.id == *d) else { continue };
            let e = &before.entries[j];
            let standalone = !super::ddl::is_member(&e.kind)
                && !matches!(
                    e.kind.as_str(),
                    "TABLE" | "FOREIGN TABLE" | "VIEW" | "MATERIALIZED VIEW"
                );
            if standalone && !work.pairs.of_before.contains_key(&j) {
                todo.push(j);
            }
        }
    }
    let mut out: Vec<usize> = out.into_iter().collect();
    out.sort();
    out
}
