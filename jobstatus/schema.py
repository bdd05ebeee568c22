"""Export the `JobStatusChanged` JSON Schema to its checked-in file.

`python -m jobstatus.schema` (or `make schema`) rewrites
`jobstatus/schema/job_status_changed.schema.json` from the pydantic model;
`python -m jobstatus.schema --check` exits 1 when the file is stale. Producers written in other
languages validate their events against that file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Final

from jobstatus.events import json_schema

SCHEMA_PATH: Final = Path(__file__).with_name("schema") / "job_status_changed.schema.json"


def render() -> str:
    """The schema file's exact text, as the model says it should be."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def is_current(path: Path = SCHEMA_PATH) -> bool:
    """Whether the file at `path` holds exactly what `render()` gives."""
    return path.is_file() and path.read_text(encoding="utf-8") == render()


def main(argv: list[str] | None = None) -> int:
    """Write the schema file (or, with `--check`, only say whether it is current)."""
    parser = argparse.ArgumentParser(prog="python -m jobstatus.schema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file is stale")
    parser.add_argument("--path", type=Path, default=SCHEMA_PATH, help="where the schema file lives")
    args = parser.parse_args(argv)
    if args.check:
        if is_current(args.path):
            return 0
        print(f"{args.path} is stale: run `python -m jobstatus.schema`", file=sys.stderr)
        return 1
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(render(), encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
