"""The root click group: verbs are imported only when they run.

Lazy loading keeps the step's start-up short: ``attest-step hash`` never imports the
registry client or the crypto stack. The console script is :func:`attest_step.cli.main.main`,
which starts work that does not need click before importing this module.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from attest_step import __version__
from attest_step.errors import AttestStepError

# verb -> ("module:attribute", one-line help shown by --help without importing the module).
COMMANDS: dict[str, tuple[str, str]] = {
    "hash": (
        "attest_step.cli.hash_cmd:hash_command",
        "Hash files, trees and images into subjects.",
    ),
    "attest": (
        "attest_step.cli.attest_cmd:attest_command",
        "Write, sign and store SLSA v1 provenance as DSSE.",
    ),
    "verify-attestation": (
        "attest_step.cli.verify_attestation_cmd:verify_attestation_command",
        "Verify an attestation envelope or an image's attestations.",
    ),
    "generate-key-pair": (
        "attest_step.cli.keys_cmd:generate_key_pair_command",
        "Create a cosign-compatible encrypted key pair.",
    ),
    "public-key": (
        "attest_step.cli.keys_cmd:public_key_command",
        "Print the public key of a signing key.",
    ),
    "sign": ("attest_step.cli.oci_cmd:sign_command", "Sign an image and attach the signature."),
    "verify": ("attest_step.cli.oci_cmd:verify_command", "Verify an image's signatures."),
    "push": (
        "attest_step.cli.oci_cmd:push_command",
        "Upload signed output left on disk by an earlier run.",
    ),
    "copy": (
        "attest_step.cli.copy_cmd:copy_command",
        "Copy an image between an OCI layout directory and a registry.",
    ),
    "append": (
        "attest_step.cli.append_cmd:append_command",
        "Add a reproducible layer of a directory to an image in an OCI layout.",
    ),
    "run": (
        "attest_step.cli.hermetic_cmd:run_command",
        "Run a build command without network and record evidence.",
    ),
    "probe": (
        "attest_step.cli.hermetic_cmd:probe_command",
        "Report the network this process actually has.",
    ),
}

HELP = """Sign and attest what a Tekton build produced, from inside the build's pod.

\b
Typical flow (the catalog's attest StepAction does this):
  attest-step hash DIR --output json
  attest-step attest --key /etc/signing-secrets --image REPO@sha256:HEX
  attest-step verify-attestation --key cosign.pub --type slsaprovenance1 REPO@sha256:HEX
"""


EXIT_BROKEN_PIPE = 141
"""Exit status when the reader of standard output closed it (128 + SIGPIPE)."""


EXIT_USAGE = 2


# click >= 8.2 raises this for a bare group: it prints the help (exit 2), left to click.
_HELP_INSTEAD = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_error(err: click.UsageError) -> None:
    """A flag or argument click refused: one line naming it and where help is, exit 2.

    (click itself prints a usage block and a blank line before the error.) Returns only for
    a bare ``attest-step``, whose help click prints.
    """
    if isinstance(err, _HELP_INSTEAD):
        return
    path = err.ctx.command_path if err.ctx is not None else "attest-step"
    message = " ".join(err.format_message().split())
    click.echo(f"attest-step: error: {message} (see '{path} --help')", err=True)
    raise click.exceptions.Exit(EXIT_USAGE)


def _stdout_closed(ctx: click.Context) -> None:
    """The reader of our output went away (``attest-step hash … | head -1``): exit 141.

    As Python's documentation advises for SIGPIPE, standard output is pointed at /dev/null
    first, so the interpreter's final flush cannot fail again. 141 is what a shell reports
    for a program that SIGPIPE ended, which is how most command-line tools end here.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    ctx.exit(EXIT_BROKEN_PIPE)


class LazyGroup(click.Group):
    """A group that imports a verb's module on first use and turns errors into one line."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own --help and --version print while the context is made, before
        # invoke(); click would turn a closed stdout there into exit 1.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            _stdout_closed(click.Context(self, info_name=info_name, parent=parent))
            raise  # not reached: _stdout_closed exits
        except click.UsageError as err:
            _usage_error(err)
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        module = importlib.import_module(module_name)
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AttestStepError as err:
            if os.environ.get("ATTEST_STEP_DEBUG") == "1":
                raise
            message = " ".join(str(err).split())
            click.echo(f"attest-step: error: {message}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("attest-step: interrupted", err=True)
            ctx.exit(130)
        except click.UsageError as err:
            _usage_error(err)
            raise
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            _stdout_closed(ctx)
        except Exception as err:  # a bug: still one line, with a way to see more
            if os.environ.get("ATTEST_STEP_DEBUG") == "1":
                raise
            click.echo(
                f"attest-step: internal error: {type(err).__name__}: {err} "
                "(set ATTEST_STEP_DEBUG=1 for a traceback and report it)",
                err=True,
            )
            ctx.exit(70)


@click.group(cls=LazyGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="attest-step")
def cli() -> None:
    """Root command group."""
