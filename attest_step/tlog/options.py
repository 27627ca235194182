"""The transparency-log flags of ``sign``, ``attest`` and ``push`` (cosign's spellings).

  --rekor-url URL          the Rekor v2 log (env ATTEST_STEP_REKOR_URL); no default
  --tlog-upload=BOOL       upload each signed envelope to the log. Default: true when a
                           --rekor-url is given, else false (docs/decisions.md)
  --tlog-timeout SECONDS   one deadline for the log's work of the verb, retries included

And of ``verify`` and ``verify-attestation``: ``--trusted-root FILE`` (check every counted
signature's log entry against the logs it names) and ``--insecure-ignore-tlog``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from attest_step.oci.options import RegistryOptions
from attest_step.option_group import option_group

if TYPE_CHECKING:
    from attest_step.tlog.trustedroot import TrustedLog

DEFAULT_TLOG_TIMEOUT = 60.0


class TlogOptions(NamedTuple):
    upload: bool | None = None  # None: not given (true when a URL is given)
    rekor_url: str | None = None
    timeout_seconds: float = DEFAULT_TLOG_TIMEOUT

    @property
    def enabled(self) -> bool:
        """Whether new signatures are logged."""
        return self.upload is not False and self.rekor_url is not None

    @property
    def upload_requested(self) -> bool:
        return self.upload is True


NO_TLOG = TlogOptions(upload=False)


def _resolve(upload: bool | None, rekor_url: str | None, timeout: float) -> TlogOptions:
    from attest_step.errors import UsageError  # noqa: PLC0415
    from attest_step.tlog.client import check_url  # noqa: PLC0415

    url = None
    if rekor_url:
        try:
            url = check_url(rekor_url)
        except ValueError as err:
            raise UsageError(
                f"{err}; give the log's base URL, e.g. http://rekor.example:3000"
            ) from err
    if upload is True and url is None:
        raise UsageError(
            "--tlog-upload=true: no log to upload to; give --rekor-url (attest-step has no default "
            "log), or --tlog-upload=false"
        )
    if timeout <= 0:
        raise UsageError("--tlog-timeout: give a positive number of seconds")
    return TlogOptions(upload, url, timeout)


tlog_options = option_group(
    "tlog",
    _resolve,
    ("upload", "rekor_url", "timeout"),
    [
        click.option(
            "--rekor-url",
            envvar="ATTEST_STEP_REKOR_URL",
            default=None,
            metavar="URL",
            help="Rekor v2 transparency log to upload each signed envelope to (env "
            "ATTEST_STEP_REKOR_URL). No default: nothing is uploaded unless a log is given.",
        ),
        click.option(
            "--tlog-upload",
            "upload",
            type=click.BOOL,
            default=None,
            metavar="BOOL",
            help="Upload to the transparency log: true or false (default: true when "
            "--rekor-url is given, else false). --tlog-upload=false uploads nothing.",
        ),
        click.option(
            "--tlog-timeout",
            "timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_TLOG_TIMEOUT,
            show_default=True,
            metavar="SECONDS",
            help="Deadline for the transparency log's work, retries included; past it the "
            "signed output stays in the spool (exit 75) for attest-step push --from.",
        ),
    ],
)
"""Add the upload flags; the command receives ``tlog: TlogOptions``."""


def _checked_root(trusted_root: Path | None, insecure_ignore_tlog: bool) -> Path | None:
    return None if insecure_ignore_tlog else trusted_root


verify_tlog_options = option_group(
    "trusted_root",
    _checked_root,
    ("trusted_root", "insecure_ignore_tlog"),
    [
        click.option(
            "--trusted-root",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Sigstore TrustedRoot JSON: every signature must then have a transparency "
            "log entry whose inclusion proof and checkpoint verify against a log it names.",
        ),
        click.option(
            "--insecure-ignore-tlog",
            is_flag=True,
            help="Do not check transparency log entries (the default without --trusted-root).",
        ),
    ],
)
"""Add ``--trusted-root`` and ``--insecure-ignore-tlog``; the command receives
``trusted_root: Path | None`` (None: the log is not checked)."""


def bundle_layout(registry: RegistryOptions, logged: bool) -> RegistryOptions:
    """The registry options for items with log entries: only a Sigstore bundle carries a
    Rekor v2 entry, so ``auto`` becomes ``both`` (bundles for cosign v3, tags for v2) and
    ``tag`` is refused."""
    if not logged:
        return registry
    if registry.layout == "tag":
        from attest_step.errors import UsageError  # noqa: PLC0415

        raise UsageError(
            "--registry-layout tag: the .sig/.att tags have no place for a transparency log "
            "entry; use --registry-layout bundle or both, or --tlog-upload=false"
        )
    if registry.layout == "auto":
        return registry._replace(layout="both")
    return registry


def load_logs(trusted_root: Path | None) -> list[TrustedLog] | None:
    """The logs of ``--trusted-root`` (None when the log is not to be checked)."""
    if trusted_root is None:
        return None
    from attest_step.tlog.trustedroot import load_trusted_root  # noqa: PLC0415

    return load_trusted_root(trusted_root)


def tlog_summary(checked: bool) -> str:
    """The line a verifier prints about the transparency log."""
    if checked:
        return (
            "A transparency log entry was verified: its checkpoint is signed by a log of "
            "--trusted-root and its inclusion proof and body match the signature"
        )
    return (
        "The transparency log was NOT checked (no --trusted-root, or --insecure-ignore-tlog): "
        "nothing shows the signature was logged"
    )


def tlog_line(entry: dict[str, Any]) -> str:
    return (
        f"transparency log: {entry['log']} index {entry['logIndex']} "
        f"(checkpoint tree size {entry['treeSize']})"
    )
