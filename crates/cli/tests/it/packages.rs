//! The packages a team installs Backstop from (issue 74): `.ci/package`
//! builds a Python wheel and npm packages from this clone; the wheel
//! installed into a fresh virtual environment and the npm packages into
//! a fresh project each run `backstop --version` and `backstop status`
//! against a real database, as a team would after `pip install` or
//! `npm install`. The test packages a debug build (`--profile dev`, in a
//! target folder of its own under the tools' cache); a release package
//! differs only in the binary it holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{find_program, missing_tool, program, run_program, Project};

/// The workspace's root, where `.ci/package` is.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The one file in `dir` whose name starts with `prefix` and ends with `suffix`.
fn one_file(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    assert_eq!(found.len(), 1, "one {prefix}…{suffix} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// Runs an installed `backstop` in the project with its database.
fn installed(p: &Project, program: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(p.path())
        .env("DATABASE_URL", &p.url)
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .expect("the installed backstop starts")
}

/// `--version` names the crate's version, and `status` reads the
/// project's pending migration from its database, exit 0.
fn answers(p: &Project, program: &Path, how: &str) {
    let version = installed(p, program, &["--version"]);
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(version.status.success(), "{how}: --version failed: {version:?}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{how}: --version said {text}");
    let status = installed(p, program, &["status"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(status.status.code(), Some(0), "{how}: status failed:\n{text}");
    assert!(
        text.contains("2024-09-01-000001"),
        "{how}: status does not name the migration:\n{text}"
    );
}

#[test]
fn the_wheel_and_the_npm_packages_install_a_backstop_that_runs() {
    let Some(_) = program("maturin", ".ci/tools/maturin.sh") else { return };
    let (Some(npm), Some(python)) = (find_program("npm"), find_program("python3")) else {
        missing_tool("npm and python3", ".ci/tools/nodejs.sh and Debian's python3-venv");
        return;
    };
    let p = Project::new("packages");
    p.migration("2024-09-01-000001_accounts", "CREATE TABLE accounts (id int PRIMARY KEY);", None);
    let work = tempfile::Builder::new().prefix("backstop-packages-").tempdir().unwrap();
    let dist = work.path().join("dist");
    // Built in a target folder of its own (cached like the tools): a
    // build in the tests' own would replace the binary and libraries the
    // other tests are running and linking (cargo test unifies features
    // with the dev-dependencies; a plain build does not).
    let target = std::env::var_os("BACKSTOP_PACKAGE_TARGET")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::common::tools_dir().join("../backstop-package-target"));
    let mut package = Command::new(root().join(".ci/package"));
    package.args(["--profile", "dev", "--out"]).arg(&dist).env("CARGO_TARGET_DIR", &target);
    run_program(&mut package);
    let version = env!("CARGO_PKG_VERSION");

    // The wheel: tagged for this platform, installed with no index.
    let wheel = one_file(&dist, &format!("backstop_pg-{version}-py3-none-"), ".whl");
    let tag = wheel.file_name().unwrap().to_string_lossy().into_owned();
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        let platform = format!("_{}.whl", std::env::consts::ARCH);
        assert!(tag.contains("-manylinux_") && tag.ends_with(&platform), "{tag}");
    }
    let venv = work.path().join("venv");
    run_program(Command::new(&python).args(["-m", "venv"]).arg(&venv));
    let pip = venv.join("bin/pip");
    run_program(Command::new(&pip).args(["install", "--no-index", "--quiet"]).arg(&wheel));
    answers(&p, &venv.join("bin/backstop"), "the wheel");

    // The GitHub Action installs that wheel and runs the check, whose
    // verdict is the step's exit code: GO, then NO-GO for a migration
    // that cannot run.
    let wheel_path = wheel.to_string_lossy().into_owned();
    let project = p.path().to_string_lossy().into_owned();
    let inputs = [
        ("database-url", p.url.as_str()),
        ("package", wheel_path.as_str()),
        ("working-directory", project.as_str()),
        ("command", "check"),
    ];
    let go = run_action(&inputs, work.path());
    let said = String::from_utf8_lossy(&go.stdout).into_owned();
    assert_eq!(go.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&go.stderr));
    assert!(said.contains(version) && said.contains("verdict: GO"), "{said}");
    p.migration("2024-09-01-000002_broken", "ALTER TABLE missing ADD COLUMN x int;", None);
    let no_go = run_action(&inputs, work.path());
    let said = String::from_utf8_lossy(&no_go.stdout).into_owned();
    assert_eq!(no_go.status.code(), Some(1), "{said}{}", String::from_utf8_lossy(&no_go.stderr));
    assert!(said.contains("NO-GO") && !said.contains(&p.url), "{said}");
    std::fs::remove_dir_all(p.path().join("migrations/2024-09-01-000002_broken")).unwrap();

    // The npm packages: the platform's binary and the command that runs it.
    let os = if cfg!(target_os = "macos") { "darwin" } else { std::env::consts::OS };
    let platform = one_file(&dist, &format!("backstop-pg-{os}-"), &format!("{version}.tgz"));
    let main = dist.join(format!("backstop-pg-{version}.tgz"));
    let app = work.path().join("app");
    std::fs::create_dir(&app).unwrap();
    run_program(Command::new(&npm).args(["init", "-y"]).current_dir(&app));
    let install = |what: &[&Path], more: &[&str]| {
        let mut cmd = Command::new(&npm);
        cmd.args(["install", "--offline", "--no-audit", "--no-fund"]).args(more);
        cmd.args(what).current_dir(&app);
        run_program(&mut cmd);
    };
    install(&[&platform, &main], &[]);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.join("node_modules/backstop-pg/package.json")).unwrap(),
    )
    .unwrap();
    let chosen =
        platform.file_name().unwrap().to_string_lossy().replace(&format!("-{version}.tgz"), "");
    assert_eq!(manifest["optionalDependencies"][&chosen], version, "{manifest:#}");
    answers(&p, &app.join("node_modules/.bin/backstop"), "the npm package");
    let npx = run_program(
        Command::new(&npm)
            .args(["exec", "--offline", "--", "backstop", "--version"])
            .current_dir(&app),
    );
    assert!(npx.contains(version), "npx backstop --version said {npx}");

    // Without its platform's package the command says what to do.
    let bare = work.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    run_program(Command::new(&npm).args(["init", "-y"]).current_dir(&bare));
    let mut cmd = Command::new(&npm);
    cmd.args(["install", "--offline", "--no-audit", "--no-fund", "--omit=optional"]).arg(&main);
    run_program(cmd.current_dir(&bare));
    let out = installed(&p, &bare.join("node_modules/.bin/backstop"), &["--version"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no binary for this platform") && said.contains(&chosen), "{said}");
    assert!(said.contains("./.ci/package"), "{said}");
}

/// The composite action at the repository's root, its steps run as a
/// runner runs them (each `run` in `bash -eo pipefail`, its `env` and
/// `working-directory` with the inputs filled in, `GITHUB_PATH` read
/// between steps): it installs the wheel and runs the command given, and
/// the step exits with the command's code.
fn run_action(inputs: &[(&str, &str)], work: &Path) -> std::process::Output {
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let action = &yaml_rust2::YamlLoader::load_from_str(&text).expect("action.yml is YAML")[0];
    let declared = action["inputs"].as_hash().expect("inputs");
    let value = |name: &str| -> String {
        match inputs.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => v.to_string(),
            None => declared
                .get(&yaml_rust2::Yaml::String(name.into()))
                .and_then(|i| i["default"].as_str())
                .unwrap_or_else(|| panic!("input {name} has no default and was not given"))
                .replace("${{ github.token }}", ""),
        }
    };
    let fill = |s: &str| -> String {
        let mut out = s.to_string();
        while let Some(at) = out.find("${{ inputs.") {
            let end = at + out[at..].find("}}").expect("an expression ends");
            let name = out[at + "${{ inputs.".len()..end].trim().to_string();
            out.replace_range(at..end + 2, &value(&name));
        }
        out
    };
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let (temp, github_path) = (work.join("runner-temp"), work.join("github-path"));
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::write(&github_path, "").unwrap();
    let mut last = None;
    for step in action["runs"]["steps"].as_vec().expect("steps") {
        let script = work.join("step.sh");
        std::fs::write(&script, step["run"].as_str().expect("a run step")).unwrap();
        let added = std::fs::read_to_string(&github_path).unwrap();
        let outside = std::env::var("PATH").unwrap();
        let path: Vec<&str> = added.lines().chain([outside.as_str()]).collect();
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"]).arg(&script);
        cmd.env("RUNNER_TEMP", &temp).env("GITHUB_PATH", &github_path).env("PATH", path.join(":"));
        cmd.env_remove("DATABASE_URL").env_remove("GITHUB_TOKEN");
        if let Some(env) = step["env"].as_hash() {
            for (k, v) in env {
                cmd.env(k.as_str().unwrap(), fill(v.as_str().unwrap()));
            }
        }
        if let Some(dir) = step["working-directory"].as_str() {
            cmd.current_dir(fill(dir));
        }
        let out = cmd.output().unwrap();
        if !out.status.success() {
            return out;
        }
        last = Some(out);
    }
    last.expect("the action has steps")
}

/// The workflow docs/check.md gives to copy is YAML, runs on pull
/// requests with the permission to comment, and gives the action only
/// inputs it declares, the required one among them.
#[test]
fn the_workflow_to_copy_gives_the_action_only_inputs_it_declares() {
    let load = |rel: &str| {
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        yaml_rust2::YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .remove(0)
    };
    let (action, workflow) = (load("action.yml"), load("docs/examples/backstop-check.yml"));
    let declared = action["inputs"].as_hash().unwrap();
    assert_eq!(workflow["permissions"]["pull-requests"].as_str(), Some("write"));
    assert_eq!(workflow["on"].as_str(), Some("pull_request"));
    let steps = workflow["jobs"]["check"]["steps"].as_vec().unwrap();
    let uses = steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.contains("/backstop@")));
    let given = uses.expect("a step uses the action")["with"].as_hash().unwrap();
    for key in given.keys() {
        assert!(declared.contains_key(key), "{key:?} is no input of action.yml");
    }
    for (name, input) in declared {
        if input["required"].as_bool() == Some(true) {
            assert!(given.contains_key(name), "the required input {name:?} is not given");
        }
    }
}
