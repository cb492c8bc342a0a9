//! `backstop completions SHELL`: the shell's completion script on stdout,
//! generated from the same clap definition that parses the arguments, so
//! a new command or flag completes without anyone writing it twice.

use std::process::ExitCode;

use anyhow::Context as _;
use clap_complete::Shell;

use super::print;

/// `backstop completions SHELL`; the shells are clap_complete's own list.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Install, for example:
  bash    backstop completions bash > ~/.local/share/bash-completion/completions/backstop
  zsh     backstop completions zsh > ~/.zfunc/_backstop  (fpath+=~/.zfunc before compinit)
  fish    backstop completions fish > ~/.config/fish/completions/backstop.fish
  pwsh    in $PROFILE: backstop completions powershell | Out-String | Invoke-Expression
  elvish  backstop completions elvish > ~/.config/elvish/lib/backstop.elv; then: use backstop")]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Prints the script for `cli`, the whole `backstop` command.
pub fn run(args: Args, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    // Generated into memory first: the generators panic on a failed write,
    // and a closed pipe (`| head`) must exit 0 like every other command.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "backstop", &mut script);
    let script = String::from_utf8(script).context("the generated completion script")?;
    print(&script)?;
    Ok(ExitCode::SUCCESS)
}
