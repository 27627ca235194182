"""attest-step as users run it, for the bench sections that time whole processes.

The wheel (``pip wheel``), installed non-editable in a fresh virtual environment whose
dependencies are the development venv's (a ``.pth`` line), as the step image installs it.
The editable development install pays ~13 ms more per process for its import hook.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PIP = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]


def build_wheel(dist: Path) -> Path:
    subprocess.run([*PIP, "wheel", "--no-deps", "-w", str(dist), str(REPO)], check=True)
    return sorted(dist.glob("attest_step-*.whl"))[-1]


def system_python() -> str | None:
    """Debian's ``/usr/bin/pythonX.Y`` of the development venv's version, if installed and
    not the venv's own interpreter: a distribution build, optimised as the step image's
    CPython is (the official image is built with PGO and LTO), where the venv's may be a
    plain source build (pyenv's default: ~35 % slower at pure Python on the machine of
    docs/oci-storage.md)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(f"/usr/bin/python{version}")
    if (
        not candidate.exists()
        or candidate.resolve() == Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    ):
        return None
    return str(candidate)


def _purelib(python: Path) -> Path:
    """The site-packages directory of the interpreter (or venv) ``python``."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    done = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip())


def wheel_install(wheel: Path, venv: Path, python: str) -> Path:
    """attest-step from ``wheel``, installed in a new venv at ``venv`` made by ``python``,
    with the development venv's dependencies (a ``.pth`` line)."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    venv_python = venv / "bin" / "python"
    deps = _purelib(VENV_PYTHON)
    (_purelib(venv_python) / "_bench_deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        [*PIP, "--python", str(venv_python), "install", "--no-deps", str(wheel)], check=True
    )
    return venv / "bin" / "attest-step"
