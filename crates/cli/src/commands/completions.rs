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
  elvish  backstop completions elvish > ~/.config/elvish/lib/backstop.elv; then: use backstop
The manual pages: `backstop man` prints backstop's in roff; `backstop man --dir DIR` writes
one per command.")]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Prints the script for `cli`, the whole `backstop` command.
pub fn run(args: Args, cli: clap::Command) -> anyhow::Result<ExitCode> {
    let mut cli = shown(cli);
    // Generated into memory first: the generators panic on a failed write,
    // and a closed pipe (`| head`) must exit 0 like every other command.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "backstop", &mut script);
    let script = String::from_utf8(script).context("the generated completion script")?;
    print(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// `cli` with only the words `backstop --help` lists: the old words kept
/// as hidden aliases (`restore` for `backup restore`) answer but are not
/// offered, and some generators offer hidden words.
fn shown(cli: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> =
        cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut shown =
        clap::Command::new("backstop").version(env!("CARGO_PKG_VERSION")).subcommands(visible);
    // `--help` and `--version` are made again by `shown` itself.
    for arg in cli.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
        shown = shown.arg(arg.clone());
    }
    shown
}
