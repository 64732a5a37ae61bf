#!/usr/bin/env python3
"""Tables of `benches/run.sh coldstart` from the stub runtime's JSON lines.

  coldstart_table.py start <dir> <count>   # start-0.jsonl .. : start and ratio to bare
  coldstart_table.py first <dir> <count>   # first-0.jsonl .. : start, invocations, ratio

File 0 is the bare binary; every file has one line per round, in the same
round order, so a ratio is taken between runs of the same round (for a
variant labelled "<binary>, <build>", against "bare-lambda, <build>" where
that was run). Prints
Markdown tables (medians with min..max). Only the standard library is used.
"""

import json
import statistics
import sys


def load(directory, prefix, n):
    with open(f"{directory}/{prefix}-{n}.jsonl") as lines:
        rows = [json.loads(line) for line in lines]
    return rows[0]["label"], rows


def spread(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} ({values[0]:.2f}..{values[-1]:.2f})"


def start_of(row):
    return row["start_ms"][0]


def invocation(row, i):
    runs = row["invocations_ms"]
    inv = runs[0] if runs else []
    return inv[i] if len(inv) > i else None


def build_of(label):
    """"order-webhook, before" -> "before"; "order-webhook" -> ""."""
    return label.split(", ", 1)[1] if ", " in label else ""


def start_table(directory, count):
    # A variant of another build ("<binary>, <build>") is compared with the
    # bare binary of that build where there is one, else with file 0's.
    loaded = [load(directory, "start", n) for n in range(count)]
    bares = {build_of(label): rows for label, rows in loaded
             if label.split(", ", 1)[0] == "bare-lambda"}
    print("| binary | start, median (min..max) ms | ratio to bare in the same round, median (min..max) |")
    print("| --- | --- | --- |")
    for label, rows in loaded:
        bare = bares.get(build_of(label), loaded[0][1])
        pairs = [(start_of(r), start_of(b)) for r, b in zip(rows, bare)]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        ratios = [a / b for a, b in pairs]
        failed = [r.get("errors") for r in rows if r.get("errors")]
        note = f" FAILED: {failed[0]}" if failed else ""
        print(f"| {label} | {spread([a for a, _ in pairs])} | {spread(ratios)} |{note}")


def first_table(directory, count):
    loaded = [load(directory, "first", n) for n in range(count)]
    bares = {build_of(label): rows for label, rows in loaded
             if label.split(", ", 1)[0] == "bare-lambda"}
    print("| binary | HTTP status | start ms | invocation 1 ms | invocation 2 ms "
          "| start + invocation 1 ms | ratio of start + invocation 1 to bare's, same round |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, rows in loaded:
        bare = bares.get(build_of(label), loaded[0][1])
        statuses = sorted({s for r in rows for s in r.get("statuses", []) if s is not None})
        totals, ratios = [], []
        for r, b in zip(rows, bare):
            values = (start_of(r), invocation(r, 0), start_of(b), invocation(b, 0))
            if None in values:
                continue
            totals.append(values[0] + values[1])
            ratios.append((values[0] + values[1]) / (values[2] + values[3]))
        failed = [r.get("errors") for r in rows if r.get("errors")]
        note = f" NOT ALL OK: {failed[0]}" if failed else ""
        print(f"| {label} | {'/'.join(map(str, statuses)) or '-'} "
              f"| {spread([start_of(r) for r in rows])} "
              f"| {spread([invocation(r, 0) for r in rows])} "
              f"| {spread([invocation(r, 1) for r in rows])} "
              f"| {spread(totals)} | {spread(ratios)} |{note}")


def main():
    kind, directory, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"start": start_table, "first": first_table}[kind](directory, count)


if __name__ == "__main__":
    main()
