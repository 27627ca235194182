"""What the entry point starts before click loads (attest_step.cli.main, cli.early), and how
``sign`` orders its work around it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from attest_step.cli.early import EarlyWork, early_work
from attest_step.cli.main import cli, preload
from attest_step.errors import AttestStepError
from attest_step.keys.early_kdf import KdfPrefetch
from tests.fixtures.keys import KeyPair

IMAGE = "127.0.0.1:1/early/work@sha256:" + "c" * 64


@click.command()
def _show() -> None:
    click.echo(repr(early_work()))


def test_early_work_is_empty_without_an_entry_point() -> None:
    result = CliRunner().invoke(_show, [])
    assert result.output.strip() == "EarlyWork(kdf=None, imports=False)"
    EarlyWork().wait_for_imports()  # nothing to wait for: returns


def test_early_work_is_what_the_entry_point_passed(cosign_key_pair: KeyPair) -> None:
    kdf = KdfPrefetch.start(str(cosign_key_pair.key), cosign_key_pair.env())
    assert kdf is not None
    result = CliRunner().invoke(_show, [], obj=EarlyWork(kdf))
    assert result.output.strip() == f"EarlyWork(kdf={kdf!r}, imports=False)"


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--key", "k", IMAGE],
        ["sign", "--help"],
        ["--version"],
        [],
        ["sign", "--pgp-key", "k.gpg", "--lookaside", "d", IMAGE],
        ["sign", "--pgp-key=k.gpg", "--lookaside", "d", IMAGE],
    ],
)
def test_no_background_imports_for_other_verbs_or_help(argv: list[str]) -> None:
    assert preload(argv) is None


def test_sign_imports_the_registry_client_in_the_background() -> None:
    code = (
        "import sys\n"
        "from attest_step.cli.main import preload\n"
        f"thread = preload(['sign', '--key', 'k', {IMAGE!r}])\n"
        "assert thread is not None and thread.daemon\n"
        "thread.join()\n"
        "print(sorted(m for m in ('attest_step.oci.upload', 'attest_step.oci.sign',"
        " 'attest_step.cli.oci_cmd', 'attest_step.keys.local') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    # The command-line module on the main thread, the registry side in the background; the
    # key loader's cryptography is left for later.
    assert (
        out.strip()
        == "['attest_step.cli.oci_cmd', 'attest_step.oci.sign', 'attest_step.oci.upload']"
    )


def _sign_with_stand_in_loader(
    key: Path, layout_dir: Path, monkeypatch: pytest.MonkeyPatch, early: EarlyWork
) -> tuple[list[bool], str]:
    """Run ``sign`` with ``early`` and a key loader that records whether ``early``'s import
    thread was still running when the key was loaded, then fails; (what it saw, output)."""
    seen: list[bool] = []

    def loader(*_args: Any, **kwargs: Any) -> Any:
        seen.append(early.imports is not None and early.imports.is_alive())
        assert kwargs["kdf"] is early.kdf
        raise AttestStepError("stand-in key loader")

    monkeypatch.setattr("attest_step.keys.load.load_signer", loader)
    result = CliRunner().invoke(
        cli, ["sign", "--key", str(key), "--oci-layout", str(layout_dir), IMAGE], obj=early
    )
    return seen, result.output


def _gated_imports() -> tuple[threading.Thread, threading.Event]:
    """A stand-in import thread that runs until the event is set."""
    release = threading.Event()
    imports = threading.Thread(target=release.wait, daemon=True)
    imports.start()
    return imports, release


def test_sign_loads_the_key_after_the_background_imports_while_scrypt_runs(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kdf = KdfPrefetch.start(str(cosign_key_pair.key), cosign_key_pair.env())
    assert kdf is not None
    imports, release = _gated_imports()
    started = time.monotonic()
    threading.Timer(0.2, release.set).start()
    seen, output = _sign_with_stand_in_loader(
        cosign_key_pair.key, tmp_path, monkeypatch, EarlyWork(kdf, imports)
    )
    assert "stand-in key loader" in output
    assert seen == [False]
    assert time.monotonic() - started >= 0.2


def test_sign_does_not_wait_for_imports_when_no_scrypt_runs(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without an early scrypt the key loader starts it: waiting would only delay it.
    imports, release = _gated_imports()
    try:
        seen, output = _sign_with_stand_in_loader(
            cosign_key_pair.key, tmp_path, monkeypatch, EarlyWork(None, imports)
        )
    finally:
        release.set()
    assert "stand-in key loader" in output
    assert seen == [True]
