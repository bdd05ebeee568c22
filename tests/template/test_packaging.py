"""What a Lambda zip holds: the Lambda packages only, and none of them imports `local` or `ops`."""

from __future__ import annotations

import ast
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_PACKAGES = ("jobstatus", "producers", "projector", "api", "notifier", "webhooks")
NEVER_IMPORTED = ("local", "ops")


def test_a_built_zip_holds_only_the_lambda_packages(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    subprocess.run(
        ["make", "--no-print-directory", "-s", "build-copy-GetJobFn", f"ARTIFACTS_DIR={artifacts}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    archive = shutil.make_archive(str(tmp_path / "GetJobFn"), "zip", artifacts)
    with zipfile.ZipFile(archive) as built:
        names = built.namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"jobstatus", "producers", "projector", "api", "notifier", "webhooks"}
    assert not {"local", "ops", "tests", "bench"} & top_level
    assert "jobstatus/schema/job_status_changed.schema.json" in names
    assert not any("__pycache__" in name for name in names)


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", LAMBDA_PACKAGES)
def test_no_lambda_package_imports_local_or_ops(package: str) -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in NEVER_IMPORTED
    }
    assert offenders == set()


def test_the_import_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from local.template import Template\n    import ops.cli\n")
    assert imported_modules(sample) == {"os", "local.template", "ops.cli"}


def python312() -> str | None:
    """A Python 3.12 interpreter on this machine (Lambda's runtime), or None."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]
    for candidate in candidates:
        if candidate is None:
            continue
        answer = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if answer.stdout.strip() == "True":
            return str(candidate)
    return None


def test_the_build_ships_bytecode_for_lambdas_python(tmp_path: Path) -> None:
    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 here: the build's bytecode step cannot be tried (it says so and skips)")
    artifacts = tmp_path / "artifacts"
    for step, extra in (
        ("build-copy-GetJobFn", []),
        ("build-compile-GetJobFn", [f"LAMBDA_PYTHON={interpreter}"]),
    ):
        subprocess.run(
            ["make", "--no-print-directory", "-s", step, f"ARTIFACTS_DIR={artifacts}", *extra],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    compiled = {path.name for path in (artifacts / "api" / "__pycache__").iterdir()}
    assert {"handler.cpython-312.pyc", "core.cpython-312.pyc"} <= compiled
    # unchecked-hash: Python 3.12 uses it whatever the file times in the zip (flags word = 0b01)
    header = (artifacts / "api" / "__pycache__" / "handler.cpython-312.pyc").read_bytes()[4:8]
    assert int.from_bytes(header, "little") == 0b01


def test_without_python_312_the_build_says_it_ships_no_bytecode(tmp_path: Path) -> None:
    answer = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "build-compile-GetJobFn",
            f"ARTIFACTS_DIR={tmp_path}",
            "LAMBDA_PYTHON=/nonexistent/python3.12",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "is not a Python 3.12: GetJobFn ships without bytecode" in answer.stdout
