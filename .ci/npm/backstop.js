#!/usr/bin/env node
// The `backstop` command of the backstop-pg npm package: runs the binary of
// the platform package npm installed beside it (one optional dependency per
// platform, chosen by its os, cpu and libc fields), with the same arguments,
// standard streams and exit code. Nothing is downloaded.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const { optionalDependencies = {} } = require("../package.json");

function libc() {
  if (process.platform !== "linux") return "";
  const report = process.report && process.report.getReport();
  const glibc = report && report.header && report.header.glibcVersionRuntime;
  return glibc ? "gnu" : "musl";
}

const suffix = [process.platform, process.arch, libc()].filter(Boolean).join("-");
const wanted = `backstop-pg-${suffix}`;

let binary;
try {
  binary = path.join(path.dirname(require.resolve(`${wanted}/package.json`)), "bin", "backstop");
} catch {
  const built = Object.keys(optionalDependencies).map((p) => p.replace("backstop-pg-", ""));
  process.stderr.write(
    `backstop: no binary for this platform (${suffix}): package ${wanted} is not installed.\n` +
      `  This release has binaries for: ${built.join(", ") || "none"}.\n` +
      "  If yours is listed, install again without --no-optional / --omit=optional.\n" +
      "  Otherwise build one from a clone of Backstop on this platform: ./.ci/package\n",
  );
  process.exit(1);
}

// A terminal's Ctrl-C reaches the whole process group, so backstop gets its
// own and stops safely; this process waits for it. A signal sent to this
// process alone (a CI runner's SIGTERM) is passed on.
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });
process.on("SIGINT", () => {});
process.on("SIGQUIT", () => {});
for (const signal of ["SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("error", (error) => {
  process.stderr.write(`backstop: cannot run ${binary}: ${error.message}\n`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  }
  process.exit(code === null ? 1 : code);
});
