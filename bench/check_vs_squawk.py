"""Times `backstop check` and `squawk` over the same generated corpus and
lists which findings each reports that the other misses.

Run through bench/check_vs_squawk.sh, which builds backstop, installs
squawk-cli when it is missing and generates the corpus.
"""

import collections
import json
import os
import statistics
import subprocess
import sys
import time

# squawk rule -> the backstop rules that report the same risk.
EQUIVALENT = {
    "ban-drop-table": {"BS101", "BS100"},
    "ban-drop-column": {"BS102"},
    "ban-truncate-cascade": {"BS104"},
    "changing-column-type": {"BS206"},
    "adding-field-with-default": {"BS205"},
    "adding-foreign-key-constraint": {"BS203"},
    "constraint-missing-not-valid": {"BS203"},
    "adding-not-nullable-field": {"BS204"},
    "adding-required-field": {"BS404"},
    "adding-primary-key-constraint": {"BS207"},
    "disallowed-unique-constraint": {"BS207"},
    "ban-concurrent-index-creation-in-transaction": {"BS202"},
    "require-concurrent-index-creation": {"BS201"},
    "renaming-column": {"BS302"},
    "renaming-table": {"BS301"},
    "ban-drop-not-null": {"BS303"},
    "prefer-robust-stmts": {"BS401"},
    "transaction-nesting": {"BS402"},
    "require-lock-timeout": {"BS209"},
    "require-timeout-settings": {"BS209"},
    "require-enum-value-ordering": {"BS304"},
}
BACKSTOP_TO_SQUAWK = collections.defaultdict(set)
for rule, codes in EQUIVALENT.items():
    for code in codes:
        BACKSTOP_TO_SQUAWK[code].add(rule)


def timed(cmd, cwd, rounds):
    """Median and min wall time of `rounds` runs after one warm-up; the
    output of the last run."""
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), out


def main():
    backstop, corpus, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = sorted(
        os.path.join("migrations", d, "up.sql") for d in os.listdir(os.path.join(corpus, "migrations"))
    )
    b_cmd = [backstop, "check", "--offline", "--format", "json"]
    s_cmd = ["squawk", "--reporter", "json", "--assume-in-transaction", *files]
    b_med, b_min, b_out = timed(b_cmd, corpus, rounds)
    s_med, s_min, s_out = timed(s_cmd, corpus, rounds)
    if b_out.returncode not in (0, 1):
        sys.exit(f"backstop check failed ({b_out.returncode}): {b_out.stderr}")
    report = json.loads(b_out.stdout)
    b_findings = report["findings"] + report.get("suppressed", [])
    s_findings = json.loads(s_out.stdout or "[]")
    statements = sum(f["statements"] for f in report["files"])

    print(f"corpus: {len(files)} migration files, {statements} statements ({corpus})")
    print(f"backstop check --offline: median {b_med:.3f}s, min {b_min:.3f}s over {rounds} runs; "
          f"{len(b_findings)} findings, verdict {report['verdict']}")
    print(f"squawk {s_out.args and subprocess.run(['squawk', '--version'], capture_output=True, text=True).stdout.split()[-1]}: "
          f"median {s_med:.3f}s, min {s_min:.3f}s over {rounds} runs; {len(s_findings)} violations")

    # Compare per (file, rule family): which risks one reports in a file
    # and the other does not.
    b_pairs = {(os.path.relpath(f["file"]), f["code"]) for f in b_findings}
    b_by_file = collections.defaultdict(set)
    for file, code in b_pairs:
        b_by_file[file].add(code)
    s_by_file = collections.defaultdict(set)
    examples = {}
    for v in s_findings:
        s_by_file[v["file"]].add(v["rule_name"])
        examples.setdefault(v["rule_name"], f"{v['file']}:{v['line'] + 1}")

    only_backstop = collections.Counter()
    b_examples = {}
    for file, codes in b_by_file.items():
        for code in codes:
            if not (BACKSTOP_TO_SQUAWK.get(code, set()) & s_by_file.get(file, set())):
                only_backstop[code] += 1
                b_examples.setdefault(code, file)
    only_squawk = collections.Counter()
    s_examples = {}
    for file, rules in s_by_file.items():
        for rule in rules:
            if not (EQUIVALENT.get(rule, set()) & b_by_file.get(file, set())):
                only_squawk[rule] += 1
                s_examples.setdefault(rule, file)
    names = {f["code"]: f["rule"] for f in b_findings}

    print("\nreported by backstop only (files, rule, example):")
    for code, n in only_backstop.most_common():
        twin = ", ".join(sorted(BACKSTOP_TO_SQUAWK.get(code, []))) or "no squawk rule"
        print(f"  {n:4d}  {code} {names[code]:<32} ({twin})  e.g. {b_examples[code]}")
    print("\nreported by squawk only (files, rule, example):")
    for rule, n in only_squawk.most_common():
        twin = ", ".join(sorted(EQUIVALENT.get(rule, []))) or "no backstop rule"
        print(f"  {n:4d}  {rule:<45} ({twin})  e.g. {s_examples[rule]}")


if __name__ == "__main__":
    main()
