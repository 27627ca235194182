"""The `hash` verb: output formats, errors, and what it must not import."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from attest_step.cli.hash_cmd import subjects_json, text_line
from attest_step.cli.main import cli
from attest_step.model import Subject

A = "a" * 64


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["hash", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "out" / "bin").mkdir(parents=True)
    (tmp_path / "out" / "bin" / "app").write_bytes(b"app")
    (tmp_path / "out" / "README").write_bytes(b"readme")
    return tmp_path / "out"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_text_output_is_sha256sum_like(tree: Path) -> None:
    code, out, _ = run(str(tree))
    assert code == 0
    assert out == f"sha256:{sha(b'readme')}  README\nsha256:{sha(b'app')}  bin/app\n"


def test_json_output(tree: Path) -> None:
    code, out, _ = run(str(tree), "--output", "json", "--image", f"ghcr.io/o/app@sha256:{A}")
    assert code == 0
    assert json.loads(out) == [
        {"name": "README", "digest": {"sha256": sha(b"readme")}},
        {"name": "bin/app", "digest": {"sha256": sha(b"app")}},
        {"name": "ghcr.io/o/app", "digest": {"sha256": A}},
    ]


def test_exclude_and_dir_digest_flags(tree: Path) -> None:
    _, out, _ = run(str(tree), "--exclude", "bin")
    assert out.endswith("  README\n") and out.count("\n") == 1
    _, out, _ = run(str(tree), "--dir-digest", "--output", "json")
    (subject,) = json.loads(out)
    assert subject["name"] == "out"
    assert subject["annotations"] == {"digestFormat": "attest-step-dir-digest-v1"}


def test_images_only(tree: Path) -> None:
    code, out, _ = run("--image", f"ghcr.io/o/app@sha256:{A}")
    assert (code, out) == (0, f"sha256:{A}  ghcr.io/o/app\n")


def test_nothing_to_hash_is_a_usage_error() -> None:
    code, _, err = run()
    assert code == 2
    assert "give at least one PATH" in err


def test_errors_are_one_line(tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    code, out, err = run(str(tree))
    assert (code, out) == (2, "")  # bad input: exit 2
    assert err.count("\n") == 1
    assert err.startswith("attest-step: error: ") and "fifo: is a FIFO" in err


def test_bad_image_is_exit_2(tree: Path) -> None:
    code, _, err = run(str(tree), "--image", "ghcr.io/o/app:latest")
    assert code == 2
    assert "--image: 'ghcr.io/o/app:latest' has no digest" in err


def test_text_line_escapes_like_sha256sum() -> None:
    assert text_line(Subject("a\nb\\c", {"sha256": A})) == f"\\sha256:{A}  a\\nb\\\\c"
    assert text_line(Subject("plain name", {"sha256": A})) == f"sha256:{A}  plain name"


SUBJECTS = st.lists(
    st.builds(
        Subject,
        st.text(),
        st.dictionaries(st.sampled_from(["sha256", "sha512"]), st.text(), min_size=1),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    ),
    max_size=5,
)


@given(SUBJECTS)
def test_fast_json_is_byte_identical_to_json_dumps(subjects: list[Subject]) -> None:
    expected = json.dumps([s.to_dict() for s in subjects], indent=2, sort_keys=True)
    assert subjects_json(subjects) == expected


HEAVY = ["cryptography", "oras", "requests", "nacl", "securesystemslib", "jsonschema", "yaml"]


def test_hash_verb_does_not_import_heavy_modules(tree: Path) -> None:
    probe = (
        "import sys\n"
        "from attest_step.cli.main import cli\n"
        f"try:\n    cli.main(args=['hash', {str(tree)!r}], prog_name='attest-step')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
        "print('HEAVY', sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout, result.stdout
    assert "bin/app" in result.stdout


# Modules the text path of `hash` leaves out because its start-up is part of what
# `make bench` grades against the read-plus-hash anchor (docs/hashing.md).
STARTUP_HEAVY = ["pathlib", "dataclasses", "tempfile"]


def test_hash_verb_start_up_leaves_out_pathlib_and_dataclasses(tree: Path) -> None:
    import click  # noqa: PLC0415 - only to find where the dependencies are installed

    repo = Path(__file__).resolve().parents[2]
    site_packages = Path(click.__file__).resolve().parents[1]
    probe = (
        "import sys\n"
        "from attest_step.cli.main import main\n"
        f"sys.argv = ['attest-step', 'hash', {str(tree)!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        f"loaded = [m for m in {STARTUP_HEAVY!r} if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    # -S: no site processing, so the development venv's .pth hooks (the editable install's
    # finder) do not import pathlib before attest-step does; the wheel has no such hook.
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{site_packages}"},
    )
    assert "LOADED []" in result.stdout, result.stdout
    assert "bin/app" in result.stdout
