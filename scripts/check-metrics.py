#!/usr/bin/env python3
"""Checks a Prometheus text page (stdin) strictly; exit 1 with one line per problem.

Two parsers: prometheus_client's own (Debian's python3-prometheus-client, installed by `make deps`), which is
lenient about trailing fields, and a line check of the exposition format 0.0.4 as Hive writes it: HELP then TYPE
before a family's samples, samples of one family together, sample names that belong to their family, labels
quoted and escaped, a float value and no timestamp, counters ending in _total.
Usage: curl -s http://127.0.0.1:9502/metrics | scripts/check-metrics.py
"""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$")
SUFFIXES = {"counter": [""], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}

text = sys.stdin.read()
problems = []
families = list(text_string_to_metric_families(text))
if not families:
    problems.append("no metric families")
help_of, type_of, seen, current = {}, {}, set(), None
for number, line in enumerate(text.split("\n"), 1):
    if line == "":
        if number != len(text.split("\n")):
            problems.append(f"line {number}: empty line")
        continue
    if line.startswith("# HELP "):
        name = line.split(" ")[2]
        if name in help_of or name in seen:
            problems.append(f"line {number}: second HELP for {name}")
        help_of[name] = line[len("# HELP " + name + " "):]
        current = name
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        if name != current or name in type_of:
            problems.append(f"line {number}: TYPE for {name} not right after its HELP")
        if kind not in SUFFIXES:
            problems.append(f"line {number}: type {kind} of {name}")
        if kind == "counter" and not name.endswith("_total"):
            problems.append(f"line {number}: counter {name} does not end in _total")
        type_of[name] = kind
        continue
    if line.startswith("#"):
        problems.append(f"line {number}: unexpected comment")
        continue
    match = SAMPLE.match(line)
    if not match:
        problems.append(f"line {number}: malformed sample: {line}")
        continue
    if current is None or current not in type_of or match.group(1) not in [current + s for s in SUFFIXES[type_of[current]]]:
        problems.append(f"line {number}: sample {match.group(1)} outside its family ({current})")
    seen.add(current)
for problem in problems:
    print(problem, file=sys.stderr)
print(f"{len(families)} families, {len(problems)} problems")
sys.exit(1 if problems else 0)
