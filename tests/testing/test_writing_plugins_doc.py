"""docs/writing-plugins.md, followed literally.

The walkthrough's files (each code block captioned ``**`casper-hello/PATH`**``) are written
into an empty folder, which is pip-installed into the current environment as the doc says
(editable; ``--no-deps --no-build-isolation`` so it works offline with the hatchling this
environment has). Then ``casper plugins`` must list the plugin with its description, and
the plugin's own tests must pass in a fresh pytest process. The plugin is uninstalled at
the end, whatever happened. Every step has a time limit.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-plugins.md"
TEMPLATE_TEST = ROOT / "examples" / "casper-strategy-template" / "tests" / "test_conformance.py"
DISTRIBUTION = "casper-hello"
BLOCK = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
CAPTION = re.compile(r"\*\*`(?P<path>[^`]+)`\*\*\s*\n\s*\n?$")
INSTALL_TIMEOUT = 120
PYTEST_TIMEOUT = 300
NO_NETWORK = ("Could not find a version", "No matching distribution", "Failed to establish",
              "Temporary failure in name resolution", "Network is unreachable")  # fmt: skip


def blocks() -> Iterator[tuple[str | None, str, str]]:
    """Every fenced block of the doc: (captioned path or None, language, body)."""
    text = DOC.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        caption = CAPTION.search(text[: match.start()][-200:])
        yield (caption["path"] if caption else None), match["lang"], match["body"]


def walkthrough_files() -> dict[str, str]:
    return {path: body for path, _, body in blocks() if path is not None}


def run(args: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_walkthrough_has_the_files_a_plugin_needs() -> None:
    files = walkthrough_files()
    assert set(files) == {
        "casper-hello/pyproject.toml",
        "casper-hello/casper_hello.py",
        "casper-hello/tests/test_hello.py",
    }
    assert (
        '[project.entry-points.casper]\nhello = "casper_hello"'
        in files["casper-hello/pyproject.toml"]
    )


def test_the_shell_steps_are_the_ones_this_test_runs() -> None:
    shell = "\n".join(body for path, lang, body in blocks() if lang == "sh")
    for command in ("mkdir casper-hello && cd casper-hello", "pip install -e .",
                    "casper plugins", "python -m pytest -q"):  # fmt: skip
        assert command in shell


def test_the_strategy_driver_shown_is_the_template_one_verbatim() -> None:
    """The driver in step 6 is not run here: it is a literal excerpt of the template's
    tests, which run the conformance suite (examples/run-example-tests.sh)."""
    drivers = [body for path, lang, body in blocks() if "class WorkingHoursDriver" in body]
    assert len(drivers) == 1
    assert drivers[0] in TEMPLATE_TEST.read_text(encoding="utf-8")


@pytest.fixture
def plugin_folder(tmp_path: Path) -> Path:
    for path, body in walkthrough_files().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    return tmp_path / "casper-hello"


@pytest.fixture
def installed(plugin_folder: Path) -> Iterator[Path]:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed here, and building without network needs it "
                    "(pip install hatchling)")  # fmt: skip
    pip = [sys.executable, "-m", "pip"]
    try:
        result = run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", "."],
                     cwd=plugin_folder, timeout=INSTALL_TIMEOUT)  # fmt: skip
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if any(marker in output for marker in NO_NETWORK):
                pytest.skip(
                    f"pip could not fetch build dependencies (no network?): {output[-500:]}"
                )
            pytest.fail(f"pip install -e failed:\n{output}")
        yield plugin_folder
    finally:
        run([*pip, "uninstall", "-y", DISTRIBUTION], cwd=plugin_folder, timeout=INSTALL_TIMEOUT)


def test_following_the_walkthrough_gives_an_installed_plugin_whose_tests_pass(
    installed: Path,
) -> None:
    listing = run([sys.executable, "-m", "casper", "plugins"], cwd=installed, timeout=60)
    assert listing.returncode == 0, listing.stderr
    line = next((ln for ln in listing.stdout.splitlines() if ln.split()[:1] == ["hello"]), "")
    assert line.split()[1] == "disabled", listing.stdout
    assert line.endswith(
        "Hello: greets whoever asks, and says whether the account is online to them."
    ), line

    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                cwd=installed, timeout=PYTEST_TIMEOUT)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\b3 passed\b", tests.stdout), tests.stdout


def test_the_plugin_is_gone_once_uninstalled() -> None:
    """Runs after the test above (file order): the environment is left as it was."""
    from importlib.metadata import entry_points

    assert "hello" not in {ep.name for ep in entry_points(group="casper")}
