//! What a method would do, said before it is carried out: `rollback
//! --method` without `--yes` prints it and changes nothing. What a method
//! does is the product's rule, so its plan is said here; the CLI prints it.

use std::path::Path;

use super::{HooksSection, Target};
use crate::decide::Method;
use crate::schema::flags::Flag;

/// The restore of method B, as it would run: of `backup`, as the whole
/// cluster where the backup is a pgBackRest restore point (`point`).
pub struct PlannedRestore<'a> {
    pub backup: &'a str,
    pub point: Option<&'a str>,
}

/// The keys of `flags` that `target` turns off.
pub fn affected<'f>(flags: &'f [Flag], target: Option<&Target>) -> Vec<&'f str> {
    flags
        .iter()
        .filter(|f| match target {
            Some(Target::Release(r)) => &f.release == r,
            Some(Target::Flag(k)) => &f.key == k,
            None => false,
        })
        .map(|f| f.key.as_str())
        .collect()
}

/// What method A or B would do, in the order it would: the flags off,
/// the hooks, the restore. Ends with how to carry it out.
pub fn method_ab(
    m: Method,
    (target, affected): (Option<&Target>, &[&str]),
    hooks: &HooksSection,
    restore: Option<PlannedRestore<'_>>,
) -> String {
    let mut plan = match target {
        Some(t) => {
            format!("method {m} would turn off {t} ({}: {})", affected.len(), affected.join(", "))
        }
        None => format!("method {m}: no flag is on, nothing to turn off"),
    };
    let stop_writes = if m == Method::B { &hooks.stop_writes } else { &None };
    for (name, hook) in [("after_kill", &hooks.after_kill), ("stop_writes", stop_writes)] {
        if let Some(hook) = hook {
            plan.push_str(&format!(", run [hooks] {name} `{hook}`"));
        }
    }
    if let Some(PlannedRestore { backup, point }) = restore {
        plan.push_str(&match point {
            Some(name) => format!(
                ", restore the whole cluster to pgBackRest restore point {name} (backup {backup}; \
                 the data directory it replaces kept whole beside it)"
            ),
            None => {
                format!(
                    ", restore backup {backup} (the current state kept as a pre-restore snapshot)"
                )
            }
        });
        if let Some(hook) = &hooks.resume_writes {
            plan.push_str(&format!(", run [hooks] resume_writes `{hook}`"));
        }
    }
    format!("{plan}.\nnothing changed; run again with --yes to carry it out\n")
}

/// What method C would do: the exports of what `reverts` created into
/// `root`, the flags of `target` off, the downs of its versions (or the
/// open expand dropped), the checks.
pub fn method_c(target: Option<&Target>, reverts: &super::Reverts, root: &Path) -> String {
    let versions = &reverts.versions;
    let flags = match target {
        Some(t) => format!("turn off {t}"),
        None => "turn off no flag (none is on)".into(),
    };
    let (created, reverted) = match versions.is_empty() {
        true => ("no migration".to_string(), "nothing".to_string()),
        false => (versions.join(", "), versions.join(", ")),
    };
    let undo = match reverts.expand {
        true => format!(
            "drop the open expand of {reverted} (nothing of it was applied: no down runs; the \
             values of the columns it added exported first)"
        ),
        false => {
            format!("revert {reverted} with their down files (what they remove exported first)")
        }
    };
    format!(
        "method C would count and export the tables that {created} created to {}/<time>/, \
         {flags}, {undo}, check the protected tables and verify.\n\
         nothing changed; run again with --yes to carry it out\n",
        root.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_says_each_step_in_the_order_the_method_takes_them() {
        let hooks = HooksSection {
            after_kill: Some("deploy --no-cache".into()),
            stop_writes: Some("maintenance on".into()),
            resume_writes: Some("maintenance off".into()),
            ..HooksSection::default()
        };
        let release = Target::Release("v2".into());
        let a = method_ab(Method::A, (Some(&release), &["cards", "memory"]), &hooks, None);
        assert_eq!(
            a,
            "method A would turn off release v2 (2: cards, memory), run [hooks] after_kill \
             `deploy --no-cache`.\nnothing changed; run again with --yes to carry it out\n"
        );
        let point = PlannedRestore { backup: "b1", point: Some("before-v2") };
        let b = method_ab(Method::B, (None, &[]), &hooks, Some(point));
        assert!(
            b.starts_with("method B: no flag is on, nothing to turn off, run [hooks] after_kill")
        );
        let order =
            ["after_kill", "stop_writes", "restore point before-v2 (backup b1;", "resume_writes"];
        let at: Vec<usize> =
            order.iter().map(|w| b.find(w).unwrap_or_else(|| panic!("{w}: {b}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{b}");
        let dump = PlannedRestore { backup: "b2", point: None };
        assert!(method_ab(Method::B, (None, &[]), &HooksSection::default(), Some(dump))
            .contains(", restore backup b2 (the current state kept as a pre-restore snapshot)."));
        let reverts =
            super::super::Reverts { versions: vec!["3".into(), "4".into()], expand: false };
        let c = method_c(Some(&Target::Flag("cards".into())), &reverts, Path::new("/f"));
        assert!(c.starts_with("method C would count and export the tables that 3, 4 created to /f/<time>/, turn off flag cards, revert 3, 4 with"), "{c}");
        assert!(method_c(None, &Default::default(), Path::new("/f"))
            .contains("turn off no flag (none is on), revert nothing"));
    }
}
