"""Delete each field name from projector/fold.py, one at a time, and see which test fails.

`python -m tests.core.fold_mutants` (from the repo root) makes one mutant per quoted field
name in fold.py: a tuple element is removed, a dict entry's line is removed, any other use is
renamed to `"__deleted__"`. For each it runs the fold's tests (`-x`, cheapest first) and prints
the first test that failed, or SURVIVED. fold.py is restored afterwards, whatever happens.
Exit status 1 if any mutant survived.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Final

FOLD: Final = Path("projector/fold.py")
FIELDS: Final = (
    "jobId",
    "userId",
    "createdAt",
    "ttl",
    "request",
    "status",
    "updatedAt",
    "version",
    "lastEventId",
    "attempt",
    "progress",
    "startedAt",
    "outputUrl",
    "result",
    "error",
    "metrics",
    "occurredAt",
    "eventId",
)
SUITES: Final = (
    ["tests/core/test_fold_table.py"],
    ["tests/core/test_fold_properties.py"],
    ["tests/core/test_store.py", "tests/core/test_handler.py"],
)


def mutants(source: str) -> list[tuple[str, str]]:
    """(description, mutated source) for every occurrence of a quoted field name."""
    found: list[tuple[str, str]] = []
    lines = source.splitlines(keepends=True)
    for number, line in enumerate(lines):
        for match in re.finditer(r'"(' + "|".join(FIELDS) + r')"', line):
            start, end = match.span()
            after = line[end:]
            where = f"line {number + 1}: {line.strip()}"
            in_tuple = re.fullmatch(r'\s*"\w+",\s*', line) or re.search(r"(= |in )\(", line)
            if after.startswith(":") and line[:start].strip() == "":
                mutated_line = ""  # a dict entry on its own line
                how = "entry removed"
            elif in_tuple:
                # A tuple element: dropped with its comma; a tuple left with one stays a tuple.
                if after.startswith(","):
                    mutated_line = line[:start] + after[1:].lstrip(" ")
                else:
                    mutated_line = line[:start].rstrip()[:-1] + after
                mutated_line = re.sub(r'\(("\w+")\)', r"(\1,)", mutated_line)
                how = "element removed"
            else:
                mutated_line = line[:start] + '"__deleted__"' + after
                how = "renamed"
            mutated = "".join(lines[:number]) + mutated_line + "".join(lines[number + 1 :])
            found.append((f"{match.group(1)} ({how}) {where}", mutated))
    return found


def first_failure(suite: list[str]) -> str | None:
    """The first failing test of `suite`, or None when it passes."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *suite],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return failed[0] if failed else done.stdout.strip().splitlines()[-1]


def main() -> int:
    """Run every mutant; print what killed it."""
    original = FOLD.read_text(encoding="utf-8")
    survivors = 0
    try:
        for description, mutated in mutants(original):
            FOLD.write_text(mutated, encoding="utf-8")
            killed = next((f for suite in SUITES if (f := first_failure(suite)) is not None), None)
            survivors += killed is None
            print(f"{description}\n    -> {killed or 'SURVIVED'}", flush=True)
    finally:
        FOLD.write_text(original, encoding="utf-8")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
