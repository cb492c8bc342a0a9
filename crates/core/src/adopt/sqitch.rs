//! sqitch's registry kept in step, as `sqitch deploy` and `sqitch revert`
//! write it: a deployed change is a row of `changes` (with its
//! `dependencies` and `tags`) and a `deploy` event; a reverted one loses
//! them and gains a `revert` event. sqitch names a change by its id, a
//! SHA-1 over the change's identity in the plan (project, URI, name, the
//! id of the change before it, planner, time, dependencies, note), and
//! `sqitch status` and `sqitch deploy` find their place in the plan by
//! that id: so the id is computed exactly as sqitch computes it
//! (`App::Sqitch::Plan::Change`'s `info` and `id`), or nothing is written.

use std::path::{Path, PathBuf};

use postgres::GenericClient;

use crate::source::sqitch::{Change, Plan, Planned, Tag};
use crate::source::{HistoryTable, Migration};

/// Why sqitch's registry row could not be written as sqitch writes it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The plan does not give what sqitch hashes into the change's id.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Db(#[from] postgres::Error),
}

/// The registry's tables, in the schema that holds `changes`.
struct Registry {
    schema: Option<String>,
}

impl Registry {
    fn table(&self, name: &str) -> String {
        crate::pg::quote_qualified(self.schema.as_deref(), name)
    }
}

/// sqitch's `SHA1("<kind> <byte length>\0<info>")`, as hex.
fn object_id(kind: &str, info: &str) -> String {
    use sha1::Digest as _;
    let mut sha = sha1::Sha1::new();
    sha.update(format!("{kind} {}\0", info.len()).as_bytes());
    sha.update(info.as_bytes());
    super::hex(&sha.finalize())
}

/// A dependency as sqitch logs it (`Depend::as_string`): without `!`, and
/// without its project when that is the plan's own.
struct Dependency {
    conflict: bool,
    /// `Some` for another project's change.
    project: Option<String>,
    /// `change`, `change@tag`, `@tag` or a change id.
    key: String,
}

impl Dependency {
    fn parse(text: &str, own: &str) -> Dependency {
        let conflict = text.starts_with('!');
        let text = text.trim_start_matches('!');
        let (project, key) = match text.split_once(':') {
            Some((p, k)) if p != own => (Some(p.to_string()), k.to_string()),
            Some((_, k)) => (None, k.to_string()),
            None => (None, text.to_string()),
        };
        Dependency { conflict, project, key }
    }

    fn as_string(&self) -> String {
        match &self.project {
            Some(p) => format!("{p}:{}", self.key),
            None => self.key.clone(),
        }
    }
}

/// The plan's identity of a change or tag, as sqitch's `info` joins it.
struct Info<'p> {
    project: &'p str,
    uri: Option<&'p str>,
}

impl Info<'_> {
    fn head(&self) -> Vec<String> {
        let mut lines = vec![format!("project {}", self.project)];
        lines.extend(self.uri.map(|u| format!("uri {u}")));
        lines
    }

    fn change(&self, c: &Change, parent: Option<&str>, planned: &Planned) -> String {
        let mut lines = self.head();
        lines.push(format!("change {}", c.name));
        lines.extend(parent.map(|p| format!("parent {p}")));
        lines.push(format!("planner {} <{}>", planned.planner_name, planned.planner_email));
        lines.push(format!("date {}", planned.at));
        let deps: Vec<Dependency> =
            c.dependencies.iter().map(|d| Dependency::parse(d, self.project)).collect();
        let list = |conflict: bool| -> Vec<String> {
            deps.iter().filter(|d| d.conflict == conflict).map(Dependency::as_string).collect()
        };
        let (requires, conflicts) = (list(false), list(true));
        if !requires.is_empty() {
            lines.push(format!("requires\n  + {}", requires.join("\n  + ")));
        }
        if !conflicts.is_empty() {
            lines.push(format!("conflicts\n  - {}", conflicts.join("\n  - ")));
        }
        push_note(&mut lines, &c.note);
        lines.join("\n")
    }

    fn tag(&self, t: &Tag, change_id: &str, planned: &Planned) -> String {
        let mut lines = self.head();
        lines.push(format!("tag @{}", t.name));
        lines.push(format!("change {change_id}"));
        lines.push(format!("planner {} <{}>", planned.planner_name, planned.planner_email));
        lines.push(format!("date {}", planned.at));
        push_note(&mut lines, &t.note);
        lines.join("\n")
    }
}

/// A note follows a blank line; Perl counts an empty note and `0` as none.
fn push_note(lines: &mut Vec<String>, note: &str) {
    if !note.is_empty() && note != "0" {
        lines.push(String::new());
        lines.push(note.to_string());
    }
}

/// The plan of `m`'s folder, its project, and the ids of its changes up
/// to and including `m`'s (each id needs the one before it).
struct PlanAt {
    plan: Plan,
    dir: PathBuf,
    project: String,
    index: usize,
    ids: Vec<String>,
}

fn plan_for(m: &Migration) -> Result<PlanAt, RegistryError> {
    let dir =
        m.up.path
            .ancestors()
            .find(|d| d.join("sqitch.plan").is_file())
            .ok_or_else(|| RegistryError::Plan("its sqitch.plan cannot be found".into()))?
            .to_path_buf();
    let plan = crate::source::sqitch::read_plan(&dir)
        .map_err(|e| RegistryError::Plan(format!("sqitch.plan cannot be read: {e}")))?;
    let project = plan
        .project
        .clone()
        .ok_or_else(|| RegistryError::Plan("sqitch.plan has no %project pragma".into()))?;
    let index =
        plan.changes.iter().position(|c| c.version == m.version).ok_or_else(|| {
            RegistryError::Plan(format!("sqitch.plan has no change {}", m.version))
        })?;
    let info = Info { project: &project, uri: plan.uri.as_deref() };
    let mut ids: Vec<String> = Vec::with_capacity(index + 1);
    for c in &plan.changes[..=index] {
        let planned = planned_of(&dir, c.line, &c.name, c.planned.as_ref())?;
        let id = object_id("change", &info.change(c, ids.last().map(String::as_str), planned));
        ids.push(id);
    }
    Ok(PlanAt { plan, dir, project, index, ids })
}

fn planned_of<'a>(
    dir: &Path,
    line: usize,
    what: &str,
    planned: Option<&'a Planned>,
) -> Result<&'a Planned, RegistryError> {
    planned.ok_or_else(|| {
        RegistryError::Plan(format!(
            "{}:{line}: {what} lacks its time or planner (`TIMESTAMP NAME <EMAIL>`), which sqitch \
             hashes into the change's id",
            dir.join("sqitch.plan").display()
        ))
    })
}

/// Who sqitch would record as the committer: `SQITCH_FULLNAME` and
/// `SQITCH_EMAIL`, else the system user and `user@host`, as sqitch falls back.
fn committer() -> (String, String) {
    let actor = crate::schema::actor();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let user = actor.split('@').next().unwrap_or(&actor).to_string();
    (env("SQITCH_FULLNAME").unwrap_or(user), env("SQITCH_EMAIL").unwrap_or(actor))
}

/// Writes what `sqitch deploy` writes once `m` is deployed: the project
/// (when the registry does not know it yet), the change, its dependencies
/// and tags, and the `deploy` event.
pub(super) fn applied(
    client: &mut impl GenericClient,
    m: &Migration,
    changes: &HistoryTable,
) -> Result<(), RegistryError> {
    let p = plan_for(m)?;
    let r = Registry { schema: changes.schema.clone() };
    let c = &p.plan.changes[p.index];
    let id = &p.ids[p.index];
    let planned = planned_of(&p.dir, c.line, &c.name, c.planned.as_ref())?;
    let (name, email) = committer();
    client.execute(
        &format!(
            "insert into {} (project, uri, creator_name, creator_email, created_at)
             select $1, $2, $3, $4, clock_timestamp()
              where not exists (select 1 from {} where project = $1)",
            r.table("projects"),
            r.table("projects")
        ),
        &[&p.project, &p.plan.uri, &name, &email],
    )?;
    // A row left for this id (written by hand, or by a run that lost its
    // way) is replaced, as every other tool's row is.
    client.execute(&format!("delete from {} where change_id = $1", r.table("tags")), &[id])?;
    client.execute(&format!("delete from {} where change_id = $1", r.table("changes")), &[id])?;
    let script_hash = std::fs::read(&m.up.path).ok().map(|b| {
        use sha1::Digest as _;
        super::hex(&sha1::Sha1::digest(b))
    });
    client.execute(
        &format!(
            "insert into {} (change_id, script_hash, change, project, note, committer_name,
                             committer_email, planned_at, planner_name, planner_email, committed_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz, $9, $10, clock_timestamp())",
            r.table("changes")
        ),
        &[
            id,
            &script_hash,
            &c.name,
            &p.project,
            &c.note,
            &name,
            &email,
            &planned.at,
            &planned.planner_name,
            &planned.planner_email,
        ],
    )?;
    let (requires, conflicts) = dependencies(client, &r, &p, c, id)?;
    let tags = tags(client, &r, &p, c, id, (&name, &email))?;
    let event = Event { kind: "deploy", id, change: c, project: &p.project, planned };
    event.log(client, &r, (&name, &email), &tags, &requires, &conflicts)
}

/// Writes `c`'s dependencies, each require with the id of the change it
/// names, as sqitch resolves it; gives the requires and conflicts as the
/// deploy event lists them.
fn dependencies(
    client: &mut impl GenericClient,
    r: &Registry,
    p: &PlanAt,
    c: &Change,
    id: &str,
) -> Result<(Vec<String>, Vec<String>), RegistryError> {
    let (mut requires, mut conflicts) = (Vec::new(), Vec::new());
    for text in &c.dependencies {
        let dep = Dependency::parse(text, &p.project);
        let resolved = if dep.conflict { None } else { Some(resolve(client, r, p, &dep)?) };
        let kind = if dep.conflict { "conflict" } else { "require" };
        client.execute(
            &format!(
                "insert into {} (change_id, type, dependency, dependency_id) values ($1, $2, $3, $4)",
                r.table("dependencies")
            ),
            &[&id, &kind, &dep.as_string(), &resolved],
        )?;
        if dep.conflict { &mut conflicts } else { &mut requires }.push(dep.as_string());
    }
    Ok((requires, conflicts))
}

/// The deployed change a require names: in this project, the plan's
/// change (`name`: its first instance; `name@tag`: the last instance up
/// to the tag; `@tag`: the tagged change), which must be deployed; in
/// another project, the registry's, as sqitch looks it up.
fn resolve(
    client: &mut impl GenericClient,
    r: &Registry,
    p: &PlanAt,
    dep: &Dependency,
) -> Result<String, RegistryError> {
    let changes = r.table("changes");
    let found: Option<String> = match &dep.project {
        Some(project) => {
            let (change, tag) = dep.key.split_once('@').unwrap_or((&dep.key, ""));
            let row = if tag.is_empty() {
                let sql = format!(
                    "select change_id from {changes} where project = $1 and change = $2
                      order by committed_at limit 1"
                );
                client.query_opt(&sql, &[project, &change])?
            } else {
                let sql = format!(
                    "select c.change_id from {changes} c join {} t
                         on c.committed_at <= t.committed_at and c.project = t.project
                      where c.project = $1 and c.change = $2 and t.tag = '@' || $3
                      order by c.committed_at desc limit 1",
                    r.table("tags")
                );
                client.query_opt(&sql, &[project, &change, &tag])?
            };
            row.map(|row| row.get(0))
        }
        None => {
            let planned = plan_index(&p.plan, &dep.key).and_then(|i| p.ids.get(i)).cloned();
            let id = planned.or_else(|| is_id(&dep.key).then(|| dep.key.clone()));
            match id {
                Some(id) => client
                    .query_opt(
                        &format!("select change_id from {changes} where change_id = $1"),
                        &[&id],
                    )?
                    .map(|row| row.get(0)),
                None => None,
            }
        }
    };
    found.ok_or_else(|| {
        RegistryError::Plan(format!(
            "it requires {}, which sqitch's registry does not hold as deployed",
            dep.as_string()
        ))
    })
}

fn is_id(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where sqitch's plan lookup (`ChangeList::find`) puts `key`.
fn plan_index(plan: &Plan, key: &str) -> Option<usize> {
    let tagged = |tag: &str| plan.changes.iter().position(|c| c.tags.iter().any(|t| t.name == tag));
    match key.split_once('@') {
        Some(("", tag)) => tagged(tag),
        Some((name, tag)) => {
            let at = tagged(tag)?;
            (0..=at).rev().find(|&i| plan.changes[i].name == name)
        }
        None => plan.changes.iter().position(|c| c.name == key),
    }
}

/// Writes `c`'s tags; gives their names as the deploy event lists them.
fn tags(
    client: &mut impl GenericClient,
    r: &Registry,
    p: &PlanAt,
    c: &Change,
    id: &str,
    (name, email): (&str, &str),
) -> Result<Vec<String>, RegistryError> {
    let info = Info { project: &p.project, uri: p.plan.uri.as_deref() };
    let mut out = Vec::new();
    for t in &c.tags {
        let planned = planned_of(&p.dir, c.line, &format!("tag @{}", t.name), t.planned.as_ref())?;
        let tag_id = object_id("tag", &info.tag(t, id, planned));
        client.execute(
            &format!(
                "insert into {} (tag_id, tag, project, change_id, note, committer_name,
                                 committer_email, planned_at, planner_name, planner_email,
                                 committed_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz, $9, $10,
                         clock_timestamp())",
                r.table("tags")
            ),
            &[
                &tag_id,
                &format!("@{}", t.name),
                &p.project,
                &id,
                &t.note,
                &name,
                &email,
                &planned.at,
                &planned.planner_name,
                &planned.planner_email,
            ],
        )?;
        out.push(format!("@{}", t.name));
    }
    Ok(out)
}

/// One row of sqitch's `events`.
struct Event<'a> {
    kind: &'a str,
    id: &'a str,
    change: &'a Change,
    project: &'a str,
    planned: &'a Planned,
}

impl Event<'_> {
    fn log(
        &self,
        client: &mut impl GenericClient,
        r: &Registry,
        (name, email): (&str, &str),
        tags: &[String],
        requires: &[String],
        conflicts: &[String],
    ) -> Result<(), RegistryError> {
        client.execute(
            &format!(
                "insert into {} (event, change_id, change, project, note, tags, requires,
                                 conflicts, committer_name, committer_email, planned_at,
                                 planner_name, planner_email, committed_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::timestamptz,
                         $12, $13, clock_timestamp())",
                r.table("events")
            ),
            &[
                &self.kind,
                &self.id,
                &self.change.name,
                &self.project,
                &self.change.note,
                &tags,
                &requires,
                &conflicts,
                &name,
                &email,
                &self.planned.at,
                &self.planned.planner_name,
                &self.planned.planner_email,
            ],
        )?;
        Ok(())
    }
}

/// The registry release sqitch 1.x makes and reads (`registry_release`).
const REGISTRY_RELEASE: f32 = 1.1;

/// Makes sqitch's registry where a database has none, as `sqitch deploy`
/// makes it before its first change: the schema that is to hold
/// `changes`, the six tables with the keys and checks sqitch relies on
/// (a change's row, its dependencies, its tags, the event log, the
/// project, the release), and the row saying which registry release this
/// is, so that `sqitch status` reads it as its own.
pub(super) fn create_registry(
    client: &mut impl GenericClient,
    changes: &HistoryTable,
) -> Result<(), RegistryError> {
    let schema = changes.schema.as_deref().unwrap_or("sqitch");
    let t = |name: &str| crate::pg::quote_qualified(Some(schema), name);
    // Who made it, and when, in the columns every table shares.
    let who = "committer_name text not null, committer_email text not null";
    let planned = "planned_at timestamptz not null, planner_name text not null, \
                   planner_email text not null";
    let ddl = format!(
        "create schema if not exists {schema_q};
         create table {releases} (
             version real primary key,
             installed_at timestamptz not null default clock_timestamp(),
             installer_name text not null,
             installer_email text not null);
         create table {projects} (
             project text primary key,
             uri text null unique,
             created_at timestamptz not null default clock_timestamp(),
             creator_name text not null,
             creator_email text not null);
         create table {changes} (
             change_id text primary key,
             script_hash text null,
             change text not null,
             project text not null references {projects} (project) on update cascade,
             note text not null default '',
             committed_at timestamptz not null default clock_timestamp(),
             {who}, {planned},
             unique (project, script_hash));
         create table {tags} (
             tag_id text primary key,
             tag text not null,
             project text not null references {projects} (project) on update cascade,
             change_id text not null references {changes} (change_id) on update cascade,
             note text not null default '',
             committed_at timestamptz not null default clock_timestamp(),
             {who}, {planned},
             unique (project, tag));
         create table {dependencies} (
             change_id text not null
                 references {changes} (change_id) on update cascade on delete cascade,
             type text not null,
             dependency text not null,
             dependency_id text null references {changes} (change_id) on update cascade
                 constraint dependencies_check check (
                     (type = 'require' and dependency_id is not null)
                     or (type = 'conflict' and dependency_id is null)),
             primary key (change_id, dependency));
         create table {events} (
             event text not null constraint events_event_check
                 check (event in ('deploy', 'revert', 'fail', 'merge')),
             change_id text not null,
             change text not null,
             project text not null references {projects} (project) on update cascade,
             note text not null default '',
             requires text[] not null default '{{}}',
             conflicts text[] not null default '{{}}',
             tags text[] not null default '{{}}',
             committed_at timestamptz not null default clock_timestamp(),
             {who}, {planned},
             primary key (change_id, committed_at));",
        schema_q = crate::pg::quote_ident(schema),
        releases = t("releases"),
        projects = t("projects"),
        changes = t("changes"),
        tags = t("tags"),
        dependencies = t("dependencies"),
        events = t("events"),
    );
    client.batch_execute(&ddl)?;
    let (name, email) = committer();
    client.execute(
        &format!(
            "insert into {} (version, installer_name, installer_email) values ($1, $2, $3)",
            t("releases")
        ),
        &[&REGISTRY_RELEASE, &name, &email],
    )?;
    Ok(())
}

/// Takes `m` out as `sqitch revert` does: its tags, dependencies and
/// change row go, and a `revert` event lists the tags and dependencies it
/// had. Nothing where the registry does not hold `m` as deployed.
pub(super) fn reverted(
    client: &mut impl GenericClient,
    m: &Migration,
    changes: &HistoryTable,
) -> Result<(), RegistryError> {
    let p = plan_for(m)?;
    let r = Registry { schema: changes.schema.clone() };
    let c = &p.plan.changes[p.index];
    let id = &p.ids[p.index];
    let deployed = client
        .query_opt(&format!("select 1 from {} where change_id = $1", r.table("changes")), &[id])?
        .is_some();
    if !deployed {
        return Ok(());
    }
    let planned = planned_of(&p.dir, c.line, &c.name, c.planned.as_ref())?;
    let tags: Vec<String> = client
        .query(
            &format!("delete from {} where change_id = $1 returning tag", r.table("tags")),
            &[id],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let row = client.query_one(
        &format!(
            "select array(select dependency from {deps} where change_id = $1 and type = 'require'),
                    array(select dependency from {deps} where change_id = $1 and type = 'conflict')",
            deps = r.table("dependencies")
        ),
        &[id],
    )?;
    let (requires, conflicts): (Vec<String>, Vec<String>) = (row.get(0), row.get(1));
    client
        .execute(&format!("delete from {} where change_id = $1", r.table("dependencies")), &[id])?;
    client.execute(&format!("delete from {} where change_id = $1", r.table("changes")), &[id])?;
    let (name, email) = committer();
    let event = Event { kind: "revert", id, change: c, project: &p.project, planned };
    event.log(client, &r, (&name, &email), &tags, &requires, &conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids `sqitch plan` prints for this plan, and the tag's id over
    /// the info `sqitch show tag @v1` prints (sqitch 1.3.1): a URI, a
    /// conflict, another project's change, a note of two lines, a tag, a
    /// require of a tagged change and a change without a note.
    #[test]
    fn change_and_tag_ids_are_the_ones_sqitch_computes() {
        let text = "%syntax-version=1.0.0\n%project=fixture\n%uri=https://example.com/fixture/\n\n\
            users 2020-01-01T00:00:00Z Fixture <fixture@example.com> # The users table.\n\
            users_email_idx [users !nope other:thing] 2020-01-02T00:00:00Z Fixture <fixture@example.com> # Look users\\nup by email.\n\
            @v1 2020-01-02T12:00:00Z Tagger <tag@example.com> # First release.\n\
            posts [users@v1] 2020-01-03T00:00:00Z Fixture <fixture@example.com>\n";
        let plan = crate::source::sqitch::parse_plan(Path::new("sqitch.plan"), text).unwrap();
        let info = Info { project: "fixture", uri: plan.uri.as_deref() };
        let mut ids: Vec<String> = Vec::new();
        for c in &plan.changes {
            let planned = c.planned.clone().unwrap();
            ids.push(object_id(
                "change",
                &info.change(c, ids.last().map(String::as_str), &planned),
            ));
        }
        assert_eq!(
            ids,
            [
                "f6ff7fb90ed09b3ffd4223d039c4578baafbdf03",
                "a0cb2b8141c1177635f78c2cfa41d1971bee240d",
                "340b6ca8dae6a3cfd65f1f4194f3de1345e0ec5d"
            ]
        );
        let tag = &plan.changes[1].tags[0];
        let tag_id = object_id("tag", &info.tag(tag, &ids[1], tag.planned.as_ref().unwrap()));
        assert_eq!(tag_id, "2f2c1c08e25fe382854ded6069746356959a703b");
        assert_eq!(plan_index(&plan, "users@v1"), Some(0));
        assert_eq!(plan_index(&plan, "@v1"), Some(1));
    }

    #[test]
    fn dependencies_drop_their_own_project_and_keep_another() {
        assert_eq!(Dependency::parse("fixture:users", "fixture").as_string(), "users");
        assert_eq!(Dependency::parse("!other:old@v1", "fixture").as_string(), "other:old@v1");
        assert!(Dependency::parse("!old", "fixture").conflict);
    }
}
