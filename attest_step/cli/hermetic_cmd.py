"""Verbs ``run`` (run a build command without network, record evidence) and ``probe``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from attest_step.cli.common import emit_json
from attest_step.cli.options import output_option
from attest_step.errors import UsageError, VerificationError
from attest_step.fileio import check_replaceable


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--network",
    type=click.Choice(["none", "host"]),
    default="none",
    show_default=True,
    help="none: fresh network namespace with only loopback. host: keep the caller's network "
    "(still new user/PID namespaces; the evidence then shows the network).",
)
@click.option(
    "--evidence-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The evidence volume: the mount point of a volume of its own. The record goes to "
    "STEP.json there, after the command's whole process tree has ended; the command never "
    "sees the volume. 'attest --evidence-dir' labels only these records observed.",
)
@click.option(
    "--evidence-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the record here (atomic rename). The command can reach this path, so "
    "'attest' labels such a file reported, never observed.",
)
@click.option("--step-name", help="Name of the build step the record describes.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(
    network: str,
    evidence_dir: Path | None,
    evidence_file: Path | None,
    step_name: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in new user, mount, PID and network namespaces (loopback up).

    \b
    Example:
      attest-step run --network none --evidence-dir /workspace/attest-evidence \\
          --step-name build -- make all

    Exits with COMMAND's exit status (128+N when killed by signal N; 127 when not found).
    """
    from attest_step.hermetic import evidence, isolate, volume  # noqa: PLC0415 - lazy

    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("run: no command given; write it after '--'")
    if evidence_file is not None:
        check_replaceable(evidence_file, "--evidence-file")
    if evidence_dir is not None:
        if step_name is None:
            raise UsageError("--evidence-dir needs --step-name (the record is STEP.json)")
        volume.check_step_name(step_name, "--step-name")
    # Both opened before the command starts: neither can be redirected by the command.
    target = evidence.EvidenceTarget.open(evidence_file) if evidence_file else None
    held = None
    try:
        held = volume.EvidenceVolume.open(evidence_dir) if evidence_dir else None
        result = isolate.run(argv, network=network, step=step_name, volume=held)
        if held is not None:
            held.write(result.record["evidenceVolume"]["file"], evidence.dumps(result.record))
        if target is not None:
            target.write(evidence.dumps(result.record))
    finally:
        if target is not None:
            target.close()
        if held is not None:
            held.close()
    if "execError" in result.record["command"]:
        click.echo(
            f"attest-step: run: cannot execute {argv[0]} "
            f"({result.record['command']['execError']}); check the command name and PATH",
            err=True,
        )
    sys.exit(result.exit_code)


def _print_text(record: dict[str, Any]) -> None:
    (snapshot,) = record["views"]
    click.echo(f"netns: {snapshot['netns']}")
    for interface in snapshot["interfaces"]:
        flags = ",".join(interface.get("flags") or []) or "-"
        click.echo(
            f"interface {interface['name']}: flags {flags}, "
            f"rx {interface['rxPackets']} pkts, tx {interface['txPackets']} pkts"
        )
    for key in ("ipv4Routes", "ipv6Routes"):
        for route in snapshot.get(key) or []:
            flags = ",".join(route["flags"])
            click.echo(f"route {route['destination']} dev {route['iface']} [{flags}]")
    click.echo(f"nameservers: {' '.join(record['dns']['nameservers']) or '-'}")
    for attempt in record["connects"]:
        outcome = "ok" if attempt["ok"] else f"{attempt.get('stage')}: {attempt.get('errno')}"
        click.echo(f"connect {attempt['target']}: {outcome}")
    for lookup in record["resolves"]:
        outcome = " ".join(lookup.get("addresses", [])) if lookup["ok"] else lookup["error"]
        click.echo(f"resolve {lookup['name']}: {outcome}")
    verdict = "; ".join(record["contradictions"]) or "nothing contradicts isolation"
    click.echo(f"verdict: {verdict}")


@click.command("probe")
@click.option(
    "--connect",
    "targets",
    help="Try to reach this target (repeatable). UDP sends one byte and waits for a reply.",
    metavar="[tcp|udp://]HOST:PORT",
    multiple=True,
)
@click.option("--resolve", "names", multiple=True, metavar="NAME", help="Look NAME up.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 30),
    default=1.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option("--step-name", help="Name of the step the record describes.")
@click.option(
    "--evidence-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON record here (atomic rename).",
)
@click.option(
    "--require-isolated",
    is_flag=True,
    help="Exit 1 when anything observed contradicts network isolation.",
)
@output_option
def probe_command(  # noqa: PLR0917 - one parameter per click option
    targets: tuple[str, ...],
    names: tuple[str, ...],
    timeout: float,
    step_name: str | None,
    evidence_file: Path | None,
    require_isolated: bool,
    output: str,
) -> None:
    """Report the network this process actually has (/proc/self/net, not /sys/class/net)."""
    from attest_step.hermetic import evidence, probe  # noqa: PLC0415 - lazy

    parsed = [probe.parse_target(text) for text in targets]
    if evidence_file is not None:
        check_replaceable(evidence_file, "--evidence-file")
    record = probe.collect(targets=parsed, names=list(names), timeout=timeout, step=step_name)
    if evidence_file is not None:
        evidence.write_atomic(evidence_file, record)
    if output == "json":
        emit_json(record)
    else:
        _print_text(record)
    if require_isolated and record["contradictions"]:
        raise VerificationError(
            "probe: this process has network: " + "; ".join(record["contradictions"])
        )
