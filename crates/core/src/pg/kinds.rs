//! Every catalog of `pg_catalog` and what the schema picture makes of it:
//! a kind of object it holds (with the parts of its query for the kinds
//! outside tables: foreign data wrappers, servers, user mappings, casts,
//! operators and their classes and families, text search objects,
//! collations, conversions, event triggers, publications, extended
//! statistics, rules, default privileges, languages, access methods,
//! transforms), a part of another kind, a cosmetic kind held apart
//! (comments: `pg::comments`), or something that is not a database's
//! schema (the whole server's, data, statistics). The list is
//! checked against the server's own catalogs by the catalog test, so a
//! catalog a new major brings fails it until it is placed here.

use super::parts::{any_row, on_some, own, part, user_made, Part, SKIPPED};

/// What the picture makes of one catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Objects of this kind: the picture's keys start with it.
    Kind(&'static str),
    /// Rows that are part of objects of another kind, held there.
    PartOf(&'static str),
    /// Objects the picture holds apart, as cosmetic: a difference in them
    /// is reported by name and changes no behaviour (the fingerprint
    /// leaves them out).
    Cosmetic(&'static str),
    /// Not a database's schema: why.
    Outside(&'static str),
    /// A kind the picture cannot hold yet: a down that creates, changes or
    /// drops one is unprovable with this name.
    NotYet(&'static str),
}

/// Each catalog of `pg_catalog` (as in PostgreSQL 15 to 18) and what the
/// picture makes of it.
pub const CATALOGS: &[(&str, Held)] = &[
    ("pg_aggregate", Held::PartOf("function")),
    ("pg_am", Held::Kind("access method")),
    ("pg_amop", Held::PartOf("operator family")),
    ("pg_amproc", Held::PartOf("operator family")),
    ("pg_attrdef", Held::PartOf("column")),
    ("pg_attribute", Held::PartOf("column")),
    ("pg_auth_members", Held::Outside("role memberships are the whole server's (downs put them back as server state)")),
    ("pg_authid", Held::Outside("roles are the whole server's (downs put them back as server state)")),
    ("pg_cast", Held::Kind("cast")),
    ("pg_class", Held::Kind("relation")),
    ("pg_collation", Held::Kind("collation")),
    ("pg_constraint", Held::Kind("constraint")),
    ("pg_conversion", Held::Kind("conversion")),
    ("pg_database", Held::Outside("databases are the whole server's")),
    ("pg_db_role_setting", Held::Outside("role and database settings are the whole server's (downs put them back as server state)")),
    ("pg_default_acl", Held::Kind("default privileges")),
    ("pg_depend", Held::Outside("dependencies order objects; they are no objects")),
    ("pg_description", Held::Cosmetic("comment")),
    ("pg_enum", Held::PartOf("type")),
    ("pg_event_trigger", Held::Kind("event trigger")),
    ("pg_extension", Held::Kind("extension")),
    ("pg_foreign_data_wrapper", Held::Kind("foreign data wrapper")),
    ("pg_foreign_server", Held::Kind("server")),
    ("pg_foreign_table", Held::PartOf("foreign table")),
    ("pg_index", Held::PartOf("index")),
    ("pg_inherits", Held::PartOf("relation")),
    ("pg_init_privs", Held::Outside("the privileges initdb and CREATE EXTENSION gave; pg_dump writes changes to them as grants")),
    ("pg_language", Held::Kind("language")),
    ("pg_largeobject", Held::Outside("large objects are data")),
    ("pg_largeobject_metadata", Held::Outside("large objects are data")),
    ("pg_namespace", Held::Kind("schema")),
    ("pg_opclass", Held::Kind("operator class")),
    ("pg_operator", Held::Kind("operator")),
    ("pg_opfamily", Held::Kind("operator family")),
    ("pg_parameter_acl", Held::Outside("GRANT SET ON PARAMETER is the whole server's")),
    ("pg_partitioned_table", Held::PartOf("relation")),
    ("pg_policy", Held::Kind("policy")),
    ("pg_proc", Held::Kind("function")),
    ("pg_publication", Held::Kind("publication")),
    ("pg_publication_namespace", Held::PartOf("publication table")),
    ("pg_publication_rel", Held::Kind("publication table")),
    ("pg_range", Held::PartOf("type")),
    ("pg_replication_origin", Held::Outside("replication progress is the whole server's")),
    ("pg_rewrite", Held::Kind("rule")),
    ("pg_seclabel", Held::NotYet("security label")),
    ("pg_sequence", Held::PartOf("sequence")),
    ("pg_shdepend", Held::Outside("dependencies on the whole server's objects")),
    ("pg_shdescription", Held::Outside("comments on the whole server's objects")),
    ("pg_shseclabel", Held::Outside("security labels of the whole server's objects")),
    ("pg_statistic", Held::Outside("planner statistics ANALYZE gathers")),
    ("pg_statistic_ext", Held::Kind("statistics")),
    ("pg_statistic_ext_data", Held::Outside("what ANALYZE gathers for extended statistics")),
    ("pg_subscription", Held::Outside("a subscription connects to another server: downs refuse it")),
    ("pg_subscription_rel", Held::Outside("a subscription's progress")),
    ("pg_tablespace", Held::Outside("tablespaces are directories on the server's host: downs refuse them")),
    ("pg_transform", Held::Kind("transform")),
    ("pg_trigger", Held::Kind("trigger")),
    ("pg_ts_config", Held::Kind("text search configuration")),
    ("pg_ts_config_map", Held::PartOf("text search configuration")),
    ("pg_ts_dict", Held::Kind("text search dictionary")),
    ("pg_ts_parser", Held::Kind("text search parser")),
    ("pg_ts_template", Held::Kind("text search template")),
    ("pg_type", Held::Kind("type")),
    ("pg_user_mapping", Held::Kind("user mapping")),
];

/// Objects of a catalog without a schema that a user made: not
/// PostgreSQL's own (below the first OID a database hands out) and not an
/// extension's.
fn made(catalog: &str, alias: &str) -> String {
    format!("{alias}.oid >= 16384 and {}", own(catalog, &format!("{alias}.oid")))
}

/// Objects of a catalog in a schema that a user made.
fn in_schemas(catalog: &str, alias: &str, namespace: &str) -> String {
    format!(
        "{alias}.{namespace} in (select oid from pg_namespace where nspname not in {SKIPPED}) and {}",
        own(catalog, &format!("{alias}.oid"))
    )
}

/// The parts of the picture for the kinds outside tables and functions.
pub(super) fn kind_parts() -> Vec<Part> {
    let mut parts = foreign_parts();
    parts.extend(operator_parts());
    parts.extend(text_search_parts());
    parts.extend(more_parts());
    parts.extend(table_and_privilege_parts());
    parts
}

fn foreign_parts() -> Vec<Part> {
    vec![
        part(
            "'foreign data wrapper ' || w.fdwname,
                    'handler=' || w.fdwhandler::regproc::text || ' validator=' || w.fdwvalidator::regproc::text
                    || coalesce(' options=' || (select string_agg(o::text, ',' order by o::text) from unnest(w.fdwoptions) o), '')
                    || ' acl=' || coalesce(w.fdwacl, acldefault('F', w.fdwowner))::text"
                .into(),
            format!("from pg_foreign_data_wrapper w where {}", made("pg_foreign_data_wrapper", "w")),
            "pg_foreign_data_wrapper",
            "w.oid",
        )
        .probe(user_made("pg_foreign_data_wrapper")),
        part(
            "'server ' || s.srvname,
                    'wrapper=' || w.fdwname || coalesce(' type=' || s.srvtype, '')
                    || coalesce(' version=' || s.srvversion, '')
                    || coalesce(' options=' || (select string_agg(o::text, ',' order by o::text) from unnest(s.srvoptions) o), '')
                    || ' acl=' || coalesce(s.srvacl, acldefault('S', s.srvowner))::text"
                .into(),
            format!(
                "from pg_foreign_server s join pg_foreign_data_wrapper w on w.oid = s.srvfdw
              where {}",
                made("pg_foreign_server", "s")
            ),
            "pg_foreign_server",
            "s.oid",
        )
        .probe(user_made("pg_foreign_server")),
        // Through the view: the catalog itself is for superusers only (it
        // holds passwords), and the view shows options only to who may
        // see them.
        part(
            "'user mapping ' || u.usename || ' server ' || u.srvname,
                    coalesce('options=' || (select string_agg(o::text, ',' order by o::text) from unnest(u.umoptions) o), '')"
                .into(),
            "from pg_user_mappings u where u.srvid >= 16384".into(),
            "pg_user_mapping",
            "u.umid",
        )
        .probe(user_made("pg_foreign_server")),
        part(
            "'foreign table ' || n.nspname || '.' || c.relname,
                    'server=' || s.srvname || coalesce(' options=' || (select string_agg(o::text, ',' order by o::text) from unnest(f.ftoptions) o), '')"
                .into(),
            format!(
                "from pg_foreign_table f join pg_class c on c.oid = f.ftrelid
               join pg_namespace n on n.oid = c.relnamespace
               join pg_foreign_server s on s.oid = f.ftserver
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe(any_row("pg_foreign_table"))
        .probe_some(on_some("pg_foreign_table", "ftrelid", "")),
    ]
}

fn operator_parts() -> Vec<Part> {
    vec![
        part(
            "'cast ' || format_type(c.castsource, null) || ' as ' || format_type(c.casttarget, null),
                    c.castfunc::regprocedure::text || ' context=' || c.castcontext::text
                    || ' method=' || c.castmethod::text"
                .into(),
            format!("from pg_cast c where {}", made("pg_cast", "c")),
            "pg_cast",
            "c.oid",
        )
        .probe(user_made("pg_cast")),
        part(
            "'operator ' || n.nspname || '.' || o.oprname
                    || '(' || format_type(o.oprleft, null) || ',' || format_type(o.oprright, null) || ')',
                    o.oprcode::regprocedure::text || ' result=' || format_type(o.oprresult, null)
                    || ' commutator=' || o.oprcom::regoperator::text || ' negator=' || o.oprnegate::regoperator::text
                    || ' restrict=' || o.oprrest::regprocedure::text || ' join=' || o.oprjoin::regprocedure::text
                    || ' merges=' || o.oprcanmerge || ' hashes=' || o.oprcanhash
                    || ' owner=' || pg_get_userbyid(o.oprowner)"
                .into(),
            format!(
                "from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
              where {}",
                in_schemas("pg_operator", "o", "oprnamespace")
            ),
            "pg_operator",
            "o.oid",
        )
        .probe(user_made("pg_operator")),
        // A family's operators and functions (pg_amop, pg_amproc) are its own.
        part(
            "'operator family ' || n.nspname || '.' || f.opfname || ' using ' || am.amname,
                    'owner=' || pg_get_userbyid(f.opfowner)
                    || ' operators=' || coalesce((select string_agg(o.amopstrategy || ' ' || o.amopopr::regoperator::text
                                                   || ' ' || format_type(o.amoplefttype, null) || ',' || format_type(o.amoprighttype, null)
                                                   || ' ' || o.amoppurpose::text
                                                   || coalesce(' order by ' || (select sf.opfname from pg_opfamily sf where sf.oid = o.amopsortfamily), ''),
                                                   '; ' order by o.amopstrategy, format_type(o.amoplefttype, null), format_type(o.amoprighttype, null))
                                               from pg_amop o where o.amopfamily = f.oid), '')
                    || ' functions=' || coalesce((select string_agg(p.amprocnum || ' ' || p.amproc::regprocedure::text
                                                   || ' ' || format_type(p.amproclefttype, null) || ',' || format_type(p.amprocrighttype, null),
                                                   '; ' order by p.amprocnum, format_type(p.amproclefttype, null), format_type(p.amprocrighttype, null))
                                               from pg_amproc p where p.amprocfamily = f.oid), '')"
                .into(),
            format!(
                "from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace
               join pg_am am on am.oid = f.opfmethod
              where {}",
                in_schemas("pg_opfamily", "f", "opfnamespace")
            ),
            "pg_opfamily",
            "f.oid",
        )
        .probe(user_made("pg_opfamily")),
        part(
            "'operator class ' || n.nspname || '.' || c.opcname || ' using ' || am.amname,
                    'type=' || format_type(c.opcintype, null) || ' default=' || c.opcdefault
                    || ' family=' || fn.nspname || '.' || f.opfname
                    || coalesce(' storage=' || format_type(nullif(c.opckeytype, 0), null), '')
                    || ' owner=' || pg_get_userbyid(c.opcowner)"
                .into(),
            format!(
                "from pg_opclass c join pg_namespace n on n.oid = c.opcnamespace
               join pg_am am on am.oid = c.opcmethod
               join pg_opfamily f on f.oid = c.opcfamily
               join pg_namespace fn on fn.oid = f.opfnamespace
              where {}",
                in_schemas("pg_opclass", "c", "opcnamespace")
            ),
            "pg_opclass",
            "c.oid",
        )
        .probe(user_made("pg_opclass")),
    ]
}

fn text_search_parts() -> Vec<Part> {
    vec![
        part(
            "'text search parser ' || n.nspname || '.' || p.prsname,
                    p.prsstart::regproc::text || ' ' || p.prstoken::regproc::text || ' ' || p.prsend::regproc::text
                    || ' ' || p.prsheadline::regproc::text || ' ' || p.prslextype::regproc::text"
                .into(),
            format!(
                "from pg_ts_parser p join pg_namespace n on n.oid = p.prsnamespace where {}",
                in_schemas("pg_ts_parser", "p", "prsnamespace")
            ),
            "pg_ts_parser",
            "p.oid",
        )
        .probe(user_made("pg_ts_parser")),
        part(
            "'text search template ' || n.nspname || '.' || t.tmplname,
                    t.tmplinit::regproc::text || ' ' || t.tmpllexize::regproc::text"
                .into(),
            format!(
                "from pg_ts_template t join pg_namespace n on n.oid = t.tmplnamespace where {}",
                in_schemas("pg_ts_template", "t", "tmplnamespace")
            ),
            "pg_ts_template",
            "t.oid",
        )
        .probe(user_made("pg_ts_template")),
        part(
            "'text search dictionary ' || n.nspname || '.' || d.dictname,
                    'template=' || tn.nspname || '.' || t.tmplname || coalesce(' options=' || d.dictinitoption, '')
                    || ' owner=' || pg_get_userbyid(d.dictowner)"
                .into(),
            format!(
                "from pg_ts_dict d join pg_namespace n on n.oid = d.dictnamespace
               join pg_ts_template t on t.oid = d.dicttemplate
               join pg_namespace tn on tn.oid = t.tmplnamespace
              where {}",
                in_schemas("pg_ts_dict", "d", "dictnamespace")
            ),
            "pg_ts_dict",
            "d.oid",
        )
        .probe(user_made("pg_ts_dict")),
        // A configuration's mappings (pg_ts_config_map) are its own.
        part(
            "'text search configuration ' || n.nspname || '.' || c.cfgname,
                    'parser=' || pn.nspname || '.' || p.prsname || ' owner=' || pg_get_userbyid(c.cfgowner)
                    || ' mappings=' || coalesce((select string_agg(m.maptokentype || ':' || m.mapseqno || ':' || m.mapdict::regdictionary::text,
                                                                   ',' order by m.maptokentype, m.mapseqno)
                                                   from pg_ts_config_map m where m.mapcfg = c.oid), '')"
                .into(),
            format!(
                "from pg_ts_config c join pg_namespace n on n.oid = c.cfgnamespace
               join pg_ts_parser p on p.oid = c.cfgparser
               join pg_namespace pn on pn.oid = p.prsnamespace
              where {}",
                in_schemas("pg_ts_config", "c", "cfgnamespace")
            ),
            "pg_ts_config",
            "c.oid",
        )
        .probe(user_made("pg_ts_config")),
    ]
}

fn more_parts() -> Vec<Part> {
    vec![
        // Every column but the ones naming other rows by OID: the columns
        // differ between majors (colliculocale, colllocale, collicurules).
        part(
            "'collation ' || n.nspname || '.' || c.collname,
                    (to_jsonb(c) - 'oid' - 'collnamespace' - 'collowner' - 'collversion')::text
                    || ' owner=' || pg_get_userbyid(c.collowner)"
                .into(),
            format!(
                "from pg_collation c join pg_namespace n on n.oid = c.collnamespace where {}",
                in_schemas("pg_collation", "c", "collnamespace")
            ),
            "pg_collation",
            "c.oid",
        )
        .probe(user_made("pg_collation")),
        part(
            "'conversion ' || n.nspname || '.' || c.conname,
                    pg_encoding_to_char(c.conforencoding) || ' to ' || pg_encoding_to_char(c.contoencoding)
                    || ' ' || c.conproc::regprocedure::text || ' default=' || c.condefault
                    || ' owner=' || pg_get_userbyid(c.conowner)"
                .into(),
            format!(
                "from pg_conversion c join pg_namespace n on n.oid = c.connamespace where {}",
                in_schemas("pg_conversion", "c", "connamespace")
            ),
            "pg_conversion",
            "c.oid",
        )
        .probe(user_made("pg_conversion")),
        part(
            "'event trigger ' || t.evtname,
                    t.evtevent || ' ' || t.evtfoid::regprocedure::text || ' enabled=' || t.evtenabled::text
                    || coalesce(' tags=' || (select string_agg(o::text, ',' order by o::text) from unnest(t.evttags) o), '')
                    || ' owner=' || pg_get_userbyid(t.evtowner)"
                .into(),
            format!(
                "from pg_event_trigger t where {} and t.evtname not like 'backstop\\_journal%'",
                made("pg_event_trigger", "t")
            ),
            "pg_event_trigger",
            "t.oid",
        )
        .probe(user_made("pg_event_trigger")),
        part(
            "'publication ' || p.pubname,
                    (to_jsonb(p) - 'oid' - 'pubowner')::text || ' owner=' || pg_get_userbyid(p.pubowner)"
                .into(),
            "from pg_publication p where true".into(),
            "pg_publication",
            "p.oid",
        )
        .probe(any_row("pg_publication")),
        // What a publication publishes: the tables it names, with their
        // columns and row filter (from 15), and the schemas it names.
        part(
            "'publication table ' || p.pubname || ' ' || n.nspname || '.' || c.relname, ''".into(),
            "from pg_publication_rel r join pg_publication p on p.oid = r.prpubid
               join pg_class c on c.oid = r.prrelid join pg_namespace n on n.oid = c.relnamespace
              where true"
                .into(),
            "pg_publication",
            "p.oid",
        )
        .until(15)
        .probe(any_row("pg_publication_rel")),
        part(
            "'publication table ' || p.pubname || ' ' || n.nspname || '.' || c.relname,
                    'columns=' || coalesce((select string_agg(a.attname, ',' order by a.attnum) from pg_attribute a
                                             where a.attrelid = r.prrelid and a.attnum = any(r.prattrs::int2[])), 'all')
                    || coalesce(' where ' || pg_get_expr(r.prqual, r.prrelid), '')"
                .into(),
            "from pg_publication_rel r join pg_publication p on p.oid = r.prpubid
               join pg_class c on c.oid = r.prrelid join pg_namespace n on n.oid = c.relnamespace
              where true"
                .into(),
            "pg_publication",
            "p.oid",
        )
        .since(15)
        .probe(any_row("pg_publication_rel")),
        part(
            "'publication schema ' || p.pubname || ' ' || n.nspname, ''".into(),
            "from pg_publication_namespace s join pg_publication p on p.oid = s.pnpubid
               join pg_namespace n on n.oid = s.pnnspid
              where true"
                .into(),
            "pg_publication",
            "p.oid",
        )
        .since(15)
        .probe(any_row("pg_publication_namespace")),
    ]
}

fn table_and_privilege_parts() -> Vec<Part> {
    vec![
        part(
            "'statistics ' || n.nspname || '.' || s.stxname,
                    pg_get_statisticsobjdef(s.oid) || coalesce(' target=' || s.stxstattarget, '')"
                .into(),
            format!(
                "from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "s.stxrelid",
        )
        .probe(user_made("pg_statistic_ext"))
        .probe_some(on_some("pg_statistic_ext", "stxrelid", "")),
        part(
            "'rule ' || n.nspname || '.' || c.relname || '.' || r.rulename,
                    pg_get_ruledef(r.oid) || ' enabled=' || r.ev_enabled::text"
                .into(),
            format!(
                "from pg_rewrite r join pg_class c on c.oid = r.ev_class
               join pg_namespace n on n.oid = c.relnamespace
              where r.rulename <> '_RETURN' and n.nspname not in {SKIPPED}"
            ),
            "r",
            "r.ev_class",
        )
        .probe("exists (select 1 from pg_rewrite where oid >= 16384 and rulename <> '_RETURN')".into())
        .probe_some(on_some("pg_rewrite", "ev_class", " and rulename <> '_RETURN'")),
        part(
            "'default privileges ' || pg_get_userbyid(d.defaclrole) || coalesce(' in ' || n.nspname, '')
                    || ' on ' || d.defaclobjtype::text,
                    d.defaclobjtype::text || ' acl=' || d.defaclacl::text"
                .into(),
            "from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace where true"
                .into(),
            "pg_default_acl",
            "d.oid",
        )
        .probe(any_row("pg_default_acl")),
        part(
            "'language ' || l.lanname,
                    'handler=' || l.lanplcallfoid::regprocedure::text || ' inline=' || l.laninline::regprocedure::text
                    || ' validator=' || l.lanvalidator::regprocedure::text || ' trusted=' || l.lanpltrusted
                    || ' acl=' || coalesce(l.lanacl, acldefault('l', l.lanowner))::text"
                .into(),
            format!("from pg_language l where {}", made("pg_language", "l")),
            "pg_language",
            "l.oid",
        )
        .probe(user_made("pg_language")),
        part(
            "'access method ' || a.amname, a.amtype::text || ' ' || a.amhandler::regproc::text".into(),
            format!("from pg_am a where {}", made("pg_am", "a")),
            "pg_am",
            "a.oid",
        )
        .probe(user_made("pg_am")),
        part(
            "'transform ' || format_type(t.trftype, null) || ' language ' || l.lanname,
                    t.trffromsql::regprocedure::text || ' ' || t.trftosql::regprocedure::text"
                .into(),
            format!(
                "from pg_transform t join pg_language l on l.oid = t.trflang where {}",
                made("pg_transform", "t")
            ),
            "pg_transform",
            "t.oid",
        )
        .probe(user_made("pg_transform")),
        part(
            "'sequence ' || n.nspname || '.' || c.relname,
                    format_type(s.seqtypid, null) || ' start=' || s.seqstart || ' increment=' || s.seqincrement
                    || ' max=' || s.seqmax || ' min=' || s.seqmin || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
                    || coalesce((select ' owned by ' || rn.nspname || '.' || rc.relname || '.' || ra.attname
                                   from pg_depend d
                                   join pg_class rc on rc.oid = d.refobjid
                                   join pg_namespace rn on rn.oid = rc.relnamespace
                                   join pg_attribute ra on ra.attrelid = d.refobjid and ra.attnum = d.refobjsubid
                                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                    and d.refclassid = 'pg_class'::regclass and d.deptype = 'a'
                                    and d.refobjsubid > 0
                                  limit 1), '')"
                .into(),
            format!(
                "from pg_sequence s join pg_class c on c.oid = s.seqrelid
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        ),
    ]
}

/// User mappings as [`INVENTORY`] lists them: through the view, which
/// every role may read but which has no `xmin`, so each one is news to
/// every look; and from the catalog, for a session that may read it (a
/// superuser, as on a throwaway copy), where a row says when it was
/// written.
pub(super) const MAPPINGS_SEEN: &str = "select 'pg_user_mapping'::regclass::oid, o.umid, 'pg_user_mapping'::regclass::oid::text, o.umid, true, true, null
  from pg_user_mappings o where o.srvid >= 16384";
pub(super) const MAPPINGS_READ: &str = "select 'pg_user_mapping'::regclass::oid, o.oid, 'pg_user_mapping'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_user_mapping o cross join fresh_since f where o.umserver >= 16384";

/// The rows of the catalogs of these kinds for `pg::tracked`'s inventory
/// (see its query for the columns): each row with its owner, listed so
/// that a row gone is found; the rows without an OID of their own (a text
/// search configuration's mappings) by a stable number made of their key.
pub(super) const INVENTORY: &str = "
union all
select 'pg_foreign_data_wrapper'::regclass::oid, o.oid, 'pg_foreign_data_wrapper'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_foreign_data_wrapper o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_foreign_server'::regclass::oid, o.oid, 'pg_foreign_server'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_foreign_server o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_user_mapping'::regclass::oid, o.umid, 'pg_user_mapping'::regclass::oid::text, o.umid, true, true, null
  from pg_user_mappings o where o.srvid >= 16384
union all
select 'pg_class'::regclass::oid, o.ftrelid, 'r', o.ftrelid, true, false, null
  from pg_foreign_table o cross join fresh_since f where age(o.xmin) <= age(f.x)
union all
select 'pg_cast'::regclass::oid, o.oid, 'pg_cast'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_cast o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_operator'::regclass::oid, o.oid, 'pg_operator'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_operator o cross join fresh_since f where o.oprnamespace in (select oid from users)
union all
select 'pg_opfamily'::regclass::oid, o.oid, 'pg_opfamily'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_opfamily o cross join fresh_since f where o.opfnamespace in (select oid from users)
union all
select 'pg_amop'::regclass::oid, o.oid, 'pg_opfamily'::regclass::oid::text, o.amopfamily, age(o.xmin) <= age(f.x), true, null
  from pg_amop o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_amproc'::regclass::oid, o.oid, 'pg_opfamily'::regclass::oid::text, o.amprocfamily, age(o.xmin) <= age(f.x), true, null
  from pg_amproc o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_opclass'::regclass::oid, o.oid, 'pg_opclass'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_opclass o cross join fresh_since f where o.opcnamespace in (select oid from users)
union all
select 'pg_ts_parser'::regclass::oid, o.oid, 'pg_ts_parser'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_ts_parser o cross join fresh_since f where o.prsnamespace in (select oid from users)
union all
select 'pg_ts_template'::regclass::oid, o.oid, 'pg_ts_template'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_ts_template o cross join fresh_since f where o.tmplnamespace in (select oid from users)
union all
select 'pg_ts_dict'::regclass::oid, o.oid, 'pg_ts_dict'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_ts_dict o cross join fresh_since f where o.dictnamespace in (select oid from users)
union all
select 'pg_ts_config'::regclass::oid, o.oid, 'pg_ts_config'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_ts_config o cross join fresh_since f where o.cfgnamespace in (select oid from users)
union all
select 'pg_ts_config_map'::regclass::oid,
       (hashtext(o.mapcfg || ':' || o.maptokentype || ':' || o.mapseqno || ':' || o.mapdict)::bigint & 4294967295)::oid,
       'pg_ts_config'::regclass::oid::text, o.mapcfg, age(o.xmin) <= age(f.x), true, null
  from pg_ts_config_map o cross join fresh_since f
 where o.mapcfg in (select c.oid from pg_ts_config c where c.cfgnamespace in (select oid from users))
union all
select 'pg_collation'::regclass::oid, o.oid, 'pg_collation'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_collation o cross join fresh_since f where o.collnamespace in (select oid from users)
union all
select 'pg_conversion'::regclass::oid, o.oid, 'pg_conversion'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_conversion o cross join fresh_since f where o.connamespace in (select oid from users)
union all
select 'pg_event_trigger'::regclass::oid, o.oid, 'pg_event_trigger'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_event_trigger o cross join fresh_since f where o.evtname not like 'backstop\\_journal%'
union all
select 'pg_publication'::regclass::oid, o.oid, 'pg_publication'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_publication o cross join fresh_since f
union all
select 'pg_publication_rel'::regclass::oid, o.oid, 'pg_publication'::regclass::oid::text, o.prpubid, age(o.xmin) <= age(f.x), true, null
  from pg_publication_rel o cross join fresh_since f
union all
select d.classid, d.objid, 'pg_publication'::regclass::oid::text, d.refobjid, age(d.xmin) <= age(f.x), true, null
  from pg_depend d cross join fresh_since f
 where d.classid = to_regclass('pg_catalog.pg_publication_namespace') and d.refclassid = 'pg_publication'::regclass
union all
select 'pg_statistic_ext'::regclass::oid, o.oid, 'r', o.stxrelid, age(o.xmin) <= age(f.x), true, null
  from pg_statistic_ext o cross join fresh_since f where o.stxnamespace in (select oid from users)
union all
select 'pg_default_acl'::regclass::oid, o.oid, 'pg_default_acl'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_default_acl o cross join fresh_since f
union all
select 'pg_language'::regclass::oid, o.oid, 'pg_language'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_language o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_am'::regclass::oid, o.oid, 'pg_am'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_am o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_transform'::regclass::oid, o.oid, 'pg_transform'::regclass::oid::text, o.oid, age(o.xmin) <= age(f.x), true, null
  from pg_transform o cross join fresh_since f where o.oid >= 16384
union all
select 'pg_class'::regclass::oid, o.seqrelid, 'r', o.seqrelid, true, false, null
  from pg_sequence o cross join fresh_since f where age(o.xmin) <= age(f.x)
union all
select 'pg_class'::regclass::oid, o.inhrelid, 'r', o.inhrelid, true, false, null
  from pg_inherits o cross join fresh_since f where age(o.xmin) <= age(f.x)
union all
select 'pg_type'::regclass::oid, o.rngtypid, 't', o.rngtypid, true, false, null
  from pg_range o cross join fresh_since f where age(o.xmin) <= age(f.x)
union all
select 'pg_proc'::regclass::oid, o.aggfnoid, 'f', o.aggfnoid, true, false, null
  from pg_aggregate o cross join fresh_since f where age(o.xmin) <= age(f.x)
";
