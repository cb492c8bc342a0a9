"""Times `backstop check --offline` and `squawk` on the same up files of a
realistic generated history, text and JSON output, and prints the ratios;
then lists which findings each reports that the other misses on a corpus
of risky shapes.

Run through bench/check_vs_squawk.sh, which builds backstop, installs
squawk-cli when it is missing and generates both.
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
    "require-concurrent-index-deletion": {"BS210"},
    "renaming-column": {"BS302"},
    "renaming-table": {"BS301"},
    "ban-drop-not-null": {"BS303"},
    "prefer-robust-stmts": {"BS401"},
    "transaction-nesting": {"BS402"},
    "require-lock-timeout": {"BS209"},
    "require-timeout-settings": {"BS209"},
    "require-enum-value-ordering": {"BS304"},
    "identifier-too-long": {"BS406"},
    "ban-alter-domain-with-add-constraint": {"BS211"},
    "ban-create-domain-with-constraint": {"BS407"},
    "ban-duplicate-column-assignments": {"BS405"},
    # The preferences, opt-in in backstop ([check] enable).
    "ban-char-field": {"BS801"},
    "prefer-text-field": {"BS802"},
    "prefer-bigint-over-int": {"BS803"},
    "prefer-bigint-over-smallint": {"BS803"},
    "prefer-identity": {"BS804"},
    "prefer-timestamp-tz": {"BS805"},
    "prefer-timestamptz": {"BS805"},
    "require-table-schema": {"BS806"},
}
BACKSTOP_TO_SQUAWK = collections.defaultdict(set)
for rule, codes in EQUIVALENT.items():
    for code in codes:
        BACKSTOP_TO_SQUAWK[code].add(rule)


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_side_by_side(cmds, cwd, rounds):
    """Runs every command once per round, in turn, after one warm-up each,
    so that load from elsewhere falls on all of them alike. Per command:
    median wall and CPU seconds, and the output of its last run."""
    results = {name: {"wall": [], "cpu": [], "out": None} for name in cmds}
    for name, cmd in cmds.items():
        subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    for _ in range(rounds):
        for name, cmd in cmds.items():
            before = children_cpu()
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
            results[name]["wall"].append(time.perf_counter() - start)
            results[name]["cpu"].append(children_cpu() - before)
            results[name]["out"] = out
    for r in results.values():
        r["wall"] = statistics.median(r["wall"])
        r["cpu"] = statistics.median(r["cpu"])
    return results


def speed(backstop, history, rounds):
    """`backstop check --offline` against squawk on the same up files of a
    realistic history, text and JSON, with the ratios."""
    folder = os.path.join(history, "supabase", "migrations")
    files = sorted(os.path.join("supabase", "migrations", f) for f in os.listdir(folder))
    squawk = ["squawk", "--assume-in-transaction", *files]
    cmds = {
        "backstop text": [backstop, "check", "--offline"],
        "squawk text": squawk,
        "backstop json": [backstop, "check", "--offline", "--format", "json"],
        "squawk json": ["squawk", "--reporter", "json", "--assume-in-transaction", *files],
    }
    r = timed_side_by_side(cmds, history, rounds)
    report = json.loads(r["backstop json"]["out"].stdout)
    statements = sum(f["statements"] for f in report["files"])
    version = subprocess.run(["squawk", "--version"], capture_output=True, text=True).stdout.split()[-1]
    print(f"history: {len(files)} up files, {statements} statements ({history}); squawk {version}; "
          f"median of {rounds} alternating rounds")
    for kind in ("text", "json"):
        b, s = r[f"backstop {kind}"], r[f"squawk {kind}"]
        print(f"  {kind:<4}  backstop {b['wall']:.3f}s wall, {b['cpu']:.3f}s cpu | "
              f"squawk {s['wall']:.3f}s wall, {s['cpu']:.3f}s cpu | "
              f"ratio {b['wall'] / s['wall']:.2f}x wall, {b['cpu'] / s['cpu']:.2f}x cpu (target <= 1.00x)")
    counts = collections.Counter(f["code"] for f in report["findings"])
    print(f"  backstop: {len(report['findings'])} findings ({', '.join(f'{c} {n}' for c, n in counts.most_common())}), "
          f"verdict {report['verdict']}; squawk: {len(json.loads(r['squawk json']['out'].stdout or '[]'))} violations")


def explain(backstop):
    out = subprocess.run([backstop, "explain"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.startswith("BS")]


def rule_counts(backstop):
    """How many rules each has, and how many of squawk's have a twin here."""
    listed = explain(backstop)
    opt_in = sum("(opt-in" in line for line in listed)
    print(f"\nrules: backstop {len(listed)} ({len(listed) - opt_in} on by default, {opt_in} opt-in); "
          f"squawk rules with a backstop twin: {len(EQUIVALENT)} "
          f"(every one of them listed in docs/check.md, 'Coming from squawk')")


def main():
    backstop, history, corpus, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    speed(backstop, history, rounds)

    rule_counts(backstop)

    # What each reports that the other misses, on the corpus of risky
    # shapes; backstop with its opt-in preferences on, as squawk's are.
    opt_in = [line.split()[0] for line in explain(backstop) if "(opt-in" in line]
    with open(os.path.join(corpus, "backstop.toml"), "a") as config:
        config.write("\n[check]\nenable = [%s]\n" % ", ".join(f'"{c}"' for c in opt_in))
    files = sorted(
        os.path.join("migrations", d, "up.sql") for d in os.listdir(os.path.join(corpus, "migrations"))
    )
    b_out = subprocess.run([backstop, "check", "--offline", "--format", "json"], cwd=corpus,
                           capture_output=True, text=True)
    s_out = subprocess.run(["squawk", "--reporter", "json", "--assume-in-transaction", *files], cwd=corpus,
                           capture_output=True, text=True)
    if b_out.returncode not in (0, 1):
        sys.exit(f"backstop check failed ({b_out.returncode}): {b_out.stderr}")
    report = json.loads(b_out.stdout)
    b_findings = report["findings"] + report.get("suppressed", [])
    s_findings = json.loads(s_out.stdout or "[]")
    statements = sum(f["statements"] for f in report["files"])
    print(f"\ncorpus of risky shapes: {len(files)} migration files, {statements} statements ({corpus}); "
          f"backstop {len(b_findings)} findings, squawk {len(s_findings)} violations")

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
