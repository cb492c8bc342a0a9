//! `backstop explain`: every rule, or one rule's docs with its bad and good
//! examples (the same files the rule is tested with).

use std::fmt::Write as _;
use std::process::ExitCode;

use backstop_lint::{Code, Severity};

use super::{print, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A rule code (BS101) or name (drop-table); without it, list every rule.
    #[arg(value_name = "CODE")]
    code: Option<String>,
}

fn default_severity(code: Code) -> Severity {
    let meta = code.meta();
    Severity::of(meta.probability, meta.impact)
}

fn indent(sql: &str) -> String {
    sql.lines().map(|l| format!("    {l}\n")).collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    match args.code {
        None => {
            for &code in Code::ALL {
                let meta = code.meta();
                let opt_in = if code.opt_in() { " (opt-in: [check] enable)" } else { "" };
                let _ = writeln!(
                    out,
                    "{code}  {:<32} {:<8} {}: {}{opt_in}",
                    meta.name,
                    default_severity(code).as_str(),
                    meta.family.as_str(),
                    meta.risk
                );
            }
        }
        Some(text) => {
            let code = Code::lookup(&text).ok_or_else(|| {
                UsageError(format!(
                    "unknown rule {text:?}; `backstop explain` lists every rule code and name"
                ))
            })?;
            let meta = code.meta();
            let _ = writeln!(
                out,
                "{code} {} ({}; {} by default: probability {} × impact {})\n",
                meta.name,
                meta.family.as_str(),
                default_severity(code),
                meta.probability.as_str(),
                meta.impact.as_str()
            );
            if code.opt_in() {
                let _ = writeln!(
                    out,
                    "Off by default: turn it on with `enable = [\"{code}\"]` under [check] in backstop.toml.\n"
                );
            }
            let _ = writeln!(out, "{}\n", code.docs().replace("**", ""));
            let _ = writeln!(out, "Reported (fixtures/{code}/bad.sql):\n");
            out.push_str(&indent(code.bad_example()));
            let _ = writeln!(out, "\nSafe (fixtures/{code}/good.sql):\n");
            out.push_str(&indent(code.good_example()));
            if default_severity(code) == Severity::Critical {
                let _ = writeln!(out, "\nCritical findings cannot be suppressed with a comment; accept one run with `backstop migrate --accept-risk {code}` (audited).");
            } else {
                let _ = writeln!(out, "\nSuppress one occurrence with `-- backstop:ignore {code} <reason>` on the line above it.");
            }
        }
    }
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}
