//! `GET /`: the status page. Server-rendered HTML (minijinja, escaped
//! everywhere, its script and style served beside it under a strict
//! content security policy), no build step: first what is happening now
//! (the open incident, a rollback method running), then migrations applied and pending, backups, the
//! last rehearsal, the last drill with its steps, the flags with a kill
//! button per release, the latest events. It reloads itself when the event stream announces a change.

use std::collections::BTreeMap;

use minijinja::{context, Environment};
use serde::Serialize;

use crate::Shared;

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Backstop: {{ database }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/status.css">
</head>
<body>
<h1>Backstop <span class="muted">{{ database }}</span></h1>
<p id="state" class="{% if ready %}muted{% else %}bad{% endif %}">{% if ready %}Database reachable; flags as of {{ now }}.{% else %}The database is not reachable: what follows may be stale.{% endif %}</p>
{% if incident or running %}<section id="now" class="bad">
<h2>Now</h2>
{% if incident %}<p id="incident">Incident {{ incident.id }} is open since {{ incident.opened }}: {{ incident.opened_by }}. <code>backstop respond incident report</code> tells its steps; it closes when its triggers clear, or with <code>backstop respond incident close</code>.</p>{% endif %}
{% if running %}<p id="running">A rollback method is running: started {{ running.at }} {{ running.by }}.</p>{% endif %}
</section>{% endif %}

<h2>Flags</h2>
{% if releases %}
<p><label>Token <input id="token" type="password" autocomplete="off" size="30"></label>
<label>Reason <input id="reason" type="text" size="40" placeholder="why (for the audit log)"></label></p>
<table>
<tr><th>Release</th><th>Flag</th><th>State</th><th>Description</th><th>Updated</th><th></th></tr>
{% for release, flags in releases %}{% for f in flags %}
<tr>
<td>{% if loop.first %}{{ release }}{% endif %}</td>
<td><code>{{ f.key }}</code></td>
<td class="{% if f.enabled %}on{% else %}off{% endif %}" data-flag="{{ f.key }}">{% if f.enabled %}on{% else %}off{% endif %}</td>
<td>{{ f.description }}</td>
<td class="muted">{{ f.updated_at }} by {{ f.updated_by }}</td>
<td>{% if loop.first %}<button class="kill" data-release="{{ release }}">Kill release {{ release }}</button>{% endif %}</td>
</tr>
{% endfor %}{% endfor %}
</table>
<p id="result" role="status"></p>
{% else %}
<p class="muted">No flags yet: declare them under [[flags]] in backstop.toml and run <code>backstop flags sync</code>.</p>
{% endif %}

{% if ramps %}
<h2>Ramps</h2>
<table>
<tr><th>Release</th><th>Serving</th><th>Steps</th><th>Next</th><th>Carried on</th></tr>
{% for r in ramps %}<tr>
<td>{{ r.release }}</td>
<td class="on">{{ r.share }}%</td>
<td><code>{{ r.path }}</code> every {{ r.every }}</td>
<td>{{ r.next }}</td>
<td class="{% if r.carried %}muted{% else %}bad{% endif %}">{{ r.carrier }}</td>
</tr>
{% endfor %}</table>
{% endif %}

{% if rollout %}<h2>Rollout {{ rollout.id }}</h2>
<p id="rollout" class="{% if rollout.ok %}on{% elif rollout.state == "running" %}muted{% else %}bad{% endif %}">{{ rollout.state }}, started {{ rollout.started_at }} by {{ rollout.started_by }}{% if rollout.reason %}: {{ rollout.reason }}{% endif %}</p>
<table>
<tr><th>Wave</th><th>State</th><th>Databases</th></tr>
{% for w in rollout.waves %}<tr><td>{{ w.name }}</td><td>{{ w.state }}</td><td>{{ w.counts }}</td></tr>
{% endfor %}</table>
{% for t in rollout.failed %}<p class="bad"><code>{{ t.name }}</code> failed: {{ t.error }}</p>
{% endfor %}{% if rollout.next %}<p>Next: {{ rollout.next }}</p>{% endif %}
{% endif %}
<h2>Migrations</h2>
<p>{{ applied }} applied, {{ pending | length }} pending.</p>
{% if expand %}<p id="expand" class="muted">{{ expand }}</p>{% endif %}
<table>
{% for m in applied_recent %}<tr><td><code>{{ m.version }}</code></td><td>{{ m.name }}</td><td class="muted">applied {{ m.at }}</td></tr>
{% endfor %}{% for p in pending %}<tr><td colspan="2"><code>{{ p }}</code></td><td class="bad">pending</td></tr>
{% endfor %}
</table>

<h2>Backups</h2>
{% if backups %}<table>
<tr><th>Backup</th><th>Age</th><th>Size</th><th>Verified</th></tr>
{% for b in backups %}<tr><td><code>{{ b.id }}</code></td><td>{{ b.age }}</td><td>{{ b.size }}</td><td>{{ b.verified }}</td></tr>
{% endfor %}</table>{% else %}<p class="bad">No backups.</p>{% endif %}

<h2>Last rehearsal</h2>
{% if rehearsal %}<p class="{% if rehearsal.ok %}on{% else %}off{% endif %}">{% if rehearsal.ok %}passed{% else %}failed{% endif %}, {{ rehearsal.at }}</p>
{% if rehearsal.report %}<pre>{{ rehearsal.report }}</pre>{% endif %}{% else %}<p class="bad">Never rehearsed.</p>{% endif %}

<h2>Last drill</h2>
{% if drill %}<p class="{% if drill.passed %}on{% else %}off{% endif %}">{{ drill.outcome }}, {{ drill.at }} by {{ drill.by }}{% if drill.release %}, release {{ drill.release }}{% endif %}</p>
{% if drill.steps %}<table>
<tr><th>Step</th><th>Outcome</th><th>Time</th><th>Target</th></tr>
{% for s in drill.steps %}<tr><td>{{ s.name }}</td><td class="{% if s.outcome == "passed" %}on{% else %}off{% endif %}">{{ s.outcome }}</td><td>{{ s.took }}</td><td>{{ s.target }}</td></tr>
{% endfor %}</table>{% endif %}
<p class="{% if drill.overdue %}bad{% else %}muted{% endif %}">{{ drill.due }}</p>{% else %}<p class="bad">Never drilled: <code>backstop backup drill</code> plays the runbook's rollbacks on a copy and keeps the date.</p>{% endif %}

<h2>Latest events</h2>
<table>
{% for e in events %}<tr><td class="muted">{{ e.at }}</td><td>{{ e.kind }}</td><td>{{ e.outcome }}</td><td class="muted">{{ e.actor }}</td></tr>
{% endfor %}
</table>

<script src="/status.js"></script>
</body>
</html>
"#;

/// The page's style, served at `/status.css`: no inline style, so the
/// content security policy can forbid all of it.
pub(crate) const STYLE: &str = r#"body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .25em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
.on { color: #176117; font-weight: bold; } .off { color: #8a1c1c; font-weight: bold; }
.bad { color: #8a1c1c; } .muted { color: #777; }
button { font: inherit; padding: .2em .8em; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .6em; max-height: 20em; overflow: auto; }
"#;

/// The page's script (the kill buttons, the reload on a change), served at
/// `/status.js`.
pub(crate) const SCRIPT: &str = r#"document.querySelectorAll("button.kill").forEach(function (b) {
  b.addEventListener("click", async function () {
    var out = document.getElementById("result");
    var reason = document.getElementById("reason").value || "killed from the status page";
    var r = await fetch("/api/releases/" + encodeURIComponent(b.dataset.release) + "/kill", {
      method: "POST",
      headers: { "Authorization": "Bearer " + document.getElementById("token").value, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: reason })
    });
    var body = await r.json().catch(function () { return {}; });
    out.textContent = r.ok ? "Release " + b.dataset.release + " killed." : (body.errorDetails || ("refused: " + r.status));
    out.className = r.ok ? "on" : "bad";
  });
});
var stream = new EventSource("/ofrep/v1/events");
stream.onmessage = function () { location.reload(); };
"#;

/// What the page may load and who may frame it: its own script, style and
/// event stream, nothing else, and no frame (no clickjacking of the kill
/// button).
pub(crate) const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

#[derive(Serialize)]
struct FlagRow {
    key: String,
    enabled: bool,
    description: String,
    updated_at: String,
    updated_by: String,
}

#[derive(Serialize)]
struct BackupRow {
    id: String,
    age: String,
    size: String,
    verified: String,
}

fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The current rollout as the page shows it: each wave's counts in words,
/// the databases that failed (their URLs are never shown).
fn rollout_context(r: &backstop_core::rollout::Record) -> minijinja::Value {
    use backstop_core::rollout::TargetState;
    let waves: Vec<_> = r
        .waves
        .iter()
        .map(|w| {
            let counts: Vec<String> = w.counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            context! { name => w.wave.name, state => w.wave.state.as_str(), counts => counts.join(", ") }
        })
        .collect();
    let failed: Vec<_> = r
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Failed || t.undo_error.is_some())
        .take(20)
        .map(|t| context! { name => t.name, error => t.undo_error.as_ref().or(t.error.as_ref()) })
        .collect();
    context! {
        id => r.rollout.id,
        state => r.rollout.state.as_str(),
        ok => r.ok(),
        started_at => when(r.rollout.started_at),
        started_by => r.rollout.started_by,
        reason => r.rollout.reason,
        waves => waves,
        failed => failed,
        next => r.next,
    }
}

/// The running release ramps, as the page shows them.
fn ramps_context(ramps: &[backstop_core::flags::ramp::RampStatus]) -> Vec<minijinja::Value> {
    ramps
        .iter()
        .map(|s| {
            let r = &s.ramp;
            let next = match (s.next_share, r.next_at) {
                (Some(share), Some(at)) => {
                    format!("{share}% at {}, when the triggers are clear", when(at))
                }
                _ => "none: its last step".to_string(),
            };
            let carrier = if s.carried {
                r.driven_by.clone().unwrap_or_else(|| "by a process".into())
            } else {
                "by no process: it stands still".to_string()
            };
            context! {
                release => r.release,
                share => s.share,
                path => r.path(),
                every => backstop_core::kit::duration::human(r.every()),
                next => next,
                carried => s.carried,
                carrier => carrier,
            }
        })
        .collect()
}

pub(crate) fn render(shared: &Shared, database: &str) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("status.html", TEMPLATE)?;
    let now = chrono::Utc::now();
    let evaluator = shared.evaluator();
    let mut releases: BTreeMap<String, Vec<FlagRow>> = BTreeMap::new();
    for f in evaluator.flags() {
        releases.entry(f.release.clone()).or_default().push(FlagRow {
            key: f.key.clone(),
            enabled: f.enabled(),
            description: f.description.clone(),
            updated_at: when(f.updated_at),
            updated_by: f.updated_by.clone(),
        });
    }
    let overview = shared.overview.read().unwrap_or_else(|e| e.into_inner()).clone();
    let applied_recent: Vec<_> = overview
        .applied
        .iter()
        .rev()
        .take(10)
        .map(|(v, n, at)| context! { version => v, name => n, at => when(*at) })
        .collect();
    let backups: Vec<BackupRow> = overview
        .backups
        .iter()
        .take(10)
        .map(|b| BackupRow {
            id: b.id.clone(),
            age: backstop_core::kit::duration::age(b.age(now)),
            size: backstop_core::kit::size::human(b.size_bytes),
            verified: b
                .verified()
                .map(|v| format!("{v:?}").to_lowercase())
                .unwrap_or_else(|| "no".into()),
        })
        .collect();
    let rehearsal = overview
        .rehearsal
        .as_ref()
        .map(|(at, ok, report)| context! { at => when(*at), ok => ok, report => report });
    let drill = overview.drill.as_ref().and_then(|due| {
        let last = due.last.as_ref()?;
        let ms = |v: &serde_json::Value| {
            v.as_u64()
                .map(|n| backstop_core::kit::duration::human(std::time::Duration::from_millis(n)))
        };
        let steps: Vec<_> = last
            .steps
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                context! {
                    name => s["name"].as_str().unwrap_or(""),
                    outcome => s["outcome"].as_str().unwrap_or("").replace('_', " "),
                    took => ms(&s["took_ms"]).unwrap_or_default(),
                    target => ms(&s["target_ms"]).unwrap_or_else(|| "–".into()),
                }
            })
            .collect();
        Some(context! {
            outcome => last.outcome,
            passed => last.passed(),
            at => when(last.started_at),
            by => last.by,
            release => last.release,
            steps => steps,
            overdue => due.overdue,
            due => due.text(now),
        })
    });
    let ramps = ramps_context(&overview.ramps);
    let events: Vec<_> = overview
        .events
        .iter()
        .map(|(at, kind, outcome, actor)| context! { at => when(*at), kind => kind, outcome => outcome, actor => actor })
        .collect();
    let rollout = overview.rollout.as_ref().map(rollout_context);
    let incident = overview.incident.as_ref().map(|i| {
        context! { id => i.id, opened => when(i.opened_at), opened_by => i.opened_by }
    });
    let running = overview.running.as_ref().map(|(at, by)| context! { at => when(*at), by => by });
    env.get_template("status.html")?.render(context! {
        incident => incident,
        running => running,
        rollout => rollout,
        expand => overview.expand.as_ref().map(|e| e.line()),
        database => database,
        ready => shared.ready.load(std::sync::atomic::Ordering::SeqCst),
        now => when(now),
        releases => releases.into_iter().collect::<Vec<_>>(),
        applied => overview.applied.len(),
        applied_recent => applied_recent,
        pending => overview.pending,
        backups => backups,
        rehearsal => rehearsal,
        drill => drill,
        events => events,
        ramps => ramps,
    })
}
