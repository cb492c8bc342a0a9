//! `backstop man`: the manual page in roff on stdout, or with `--dir` one
//! page per command (`backstop.1`, `backstop-migrate.1`,
//! `backstop-flags-list.1`, ...) as packagers install them; generated from
//! the clap definition that parses the arguments.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap_mangen::Man;

use super::print;

/// `backstop man [--dir DIR]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one page per command into this folder (created if missing)
    /// instead of printing `backstop`'s page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints or writes the pages of `cli`, the whole `backstop` command.
pub fn run(args: Args, cli: clap::Command) -> anyhow::Result<ExitCode> {
    // `backstop help` is clap's, not a command with a page of its own.
    let mut cli = cli.disable_help_subcommand(true);
    // Built once, so that each subcommand knows its full name
    // (`backstop-flags-list`), which its page's title and file take.
    cli.build();
    let Some(dir) = args.dir else {
        let mut page = Vec::new();
        Man::new(cli).render(&mut page).context("rendering the man page")?;
        print(&String::from_utf8(page).context("the rendered man page")?)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cli, &dir, &mut written)?;
    let names: Vec<String> =
        written.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into()).collect();
    print(&format!(
        "wrote {} man pages to {}: {}\nread one with `man -l {}`; installed in a man1 folder on \
         MANPATH (e.g. /usr/local/share/man/man1), `man backstop-migrate` finds them\n",
        written.len(),
        dir.display(),
        names.join(", "),
        dir.join("backstop.1").display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `cmd`'s page and those of its visible subcommands, depth first.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
