//! Foreign-key orphans: rows of the target whose key has no parent row,
//! counted for every foreign key, `NOT VALID` ones too.

use postgres::Client;

use super::ForeignKey;
use crate::pg::{quote_ident, quote_qualified};

/// Counts the orphans of every foreign key of `client`'s user tables,
/// `NOT VALID` ones too; returns those with any.
pub fn orphans(client: &mut Client) -> Result<Vec<ForeignKey>, postgres::Error> {
    let fks = client.query(
        "select n.nspname::text, c.relname::text, k.conname::text, not k.convalidated,
                pn.nspname::text, p.relname::text,
                (select array_agg(a.attname::text order by o) from unnest(k.conkey) with ordinality u(n, o)
                   join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n),
                (select array_agg(a.attname::text order by o) from unnest(k.confkey) with ordinality u(n, o)
                   join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n)
           from pg_constraint k
           join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
           join pg_class p on p.oid = k.confrelid join pg_namespace pn on pn.oid = p.relnamespace
          where k.contype = 'f' and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
          order by 1, 2, 3",
        &[],
    )?;
    let mut out = Vec::new();
    for fk in fks {
        let (schema, table, name, not_valid): (String, String, String, bool) =
            (fk.get(0), fk.get(1), fk.get(2), fk.get(3));
        let (pschema, ptable): (String, String) = (fk.get(4), fk.get(5));
        let (cols, pcols): (Vec<String>, Vec<String>) = (fk.get(6), fk.get(7));
        let not_null = cols
            .iter()
            .map(|c| format!("c.{} is not null", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" and ");
        let join = cols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" and ");
        let sql = format!(
            "select count(*) from only {} c where {not_null} and not exists (select from only {} p where {join})",
            quote_qualified(Some(&schema), &table),
            quote_qualified(Some(&pschema), &ptable)
        );
        let orphans: i64 = client.query_one(&sql, &[])?.get(0);
        if orphans > 0 {
            out.push(ForeignKey {
                table: format!("{schema}.{table}"),
                constraint: name,
                not_valid,
                orphans,
            });
        }
    }
    Ok(out)
}
