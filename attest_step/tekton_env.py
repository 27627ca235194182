"""What a Tekton step can learn about its run from its environment.

Tekton does not export run context to steps by itself; the catalog's StepAction maps
``$(context.*)`` variables and params to the environment variables named here
(docs/provenance.md has the table). Everything is read from a mapping passed in, never from
``os.environ`` directly, so callers and tests decide what the environment is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from attest_step.provenance import RunContext

# Environment variable -> Tekton variable the StepAction sets it from.
ENV_TASKRUN_UID = "TEKTON_TASKRUN_UID"  # $(context.taskRun.uid)
ENV_TASKRUN_NAME = "TEKTON_TASKRUN_NAME"  # $(context.taskRun.name)
ENV_TASKRUN_NAMESPACE = "TEKTON_TASKRUN_NAMESPACE"  # $(context.taskRun.namespace)
ENV_TASK_NAME = "TEKTON_TASK_NAME"  # $(context.task.name)
ENV_PIPELINERUN_NAME = "TEKTON_PIPELINERUN_NAME"  # $(context.pipelineRun.name)
ENV_PIPELINERUN_UID = "TEKTON_PIPELINERUN_UID"  # $(context.pipelineRun.uid)
ENV_PIPELINE_NAME = "TEKTON_PIPELINE_NAME"  # $(context.pipeline.name)
ENV_GIT_URL = "CHAINS-GIT_URL"  # $(params.CHAINS-GIT_URL), Chains' type hint
ENV_GIT_COMMIT = "CHAINS-GIT_COMMIT"  # $(params.CHAINS-GIT_COMMIT)
ENV_IMAGE_URL = "IMAGE_URL"  # $(tasks.build.results.IMAGE_URL) or a step result
ENV_IMAGE_DIGEST = "IMAGE_DIGEST"
ENV_IMAGES = "IMAGES"
ENV_PARAM_PREFIX = "ATTEST_PARAM_"  # ATTEST_PARAM_<name>=$(params.<name>)
ENV_RESOLVED_DEPENDENCIES = "ATTEST_RESOLVED_DEPENDENCIES"  # URI@ALG:HEX, one per line
ENV_DECLARED_REFS = "ATTEST_DECLARED_REFS"  # NAME=URI@ALG:HEX, space or newline separated
ENV_BUILDER_ID = "ATTEST_BUILDER_ID"
ENV_STARTED_ON = "ATTEST_STARTED_ON"

TEKTON_STEPS_DIR = Path("/tekton/steps")
"""Where Tekton's ``prepare`` init container links every step (``step-<name>``), read-only
in the step containers."""
MAX_STEP_ENTRIES = 1000


@dataclass(frozen=True)
class TektonContext(RunContext):
    """The run context the StepAction passed in; empty strings are treated as unset. The run's
    identifiers are those of :class:`RunContext`, so the context is the provenance's ``run``."""

    git_url: str | None = None
    git_commit: str | None = None
    image_url: str | None = None
    image_digest: str | None = None
    images: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    resolved_dependencies: tuple[str, ...] = ()
    declared_refs: tuple[str, ...] = ()
    builder_id: str | None = None
    started_on: str | None = None


# RunContext field -> the environment variable it is read from.
_RUN_ENV = {
    "taskrun_uid": ENV_TASKRUN_UID,
    "taskrun_name": ENV_TASKRUN_NAME,
    "namespace": ENV_TASKRUN_NAMESPACE,
    "task_name": ENV_TASK_NAME,
    "pipelinerun_name": ENV_PIPELINERUN_NAME,
    "pipelinerun_uid": ENV_PIPELINERUN_UID,
    "pipeline_name": ENV_PIPELINE_NAME,
}


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def read_context(env: Mapping[str, str]) -> TektonContext:
    """Collect the run context from ``env`` (normally ``os.environ``)."""
    params = {
        name[len(ENV_PARAM_PREFIX) :]: value
        for name, value in env.items()
        if name.startswith(ENV_PARAM_PREFIX) and len(name) > len(ENV_PARAM_PREFIX)
    }
    deps_text = env.get(ENV_RESOLVED_DEPENDENCIES, "")
    return TektonContext(
        **{name: _get(env, variable) for name, variable in _RUN_ENV.items()},
        git_url=_get(env, ENV_GIT_URL),
        git_commit=_get(env, ENV_GIT_COMMIT),
        image_url=_get(env, ENV_IMAGE_URL),
        image_digest=_get(env, ENV_IMAGE_DIGEST),
        images=_get(env, ENV_IMAGES),
        params=dict(sorted(params.items())),
        resolved_dependencies=tuple(deps_text.split()),
        declared_refs=tuple(env.get(ENV_DECLARED_REFS, "").split()),
        builder_id=_get(env, ENV_BUILDER_ID),
        started_on=_get(env, ENV_STARTED_ON),
    )


def steps_prepared_time(steps_dir: Path = TEKTON_STEPS_DIR) -> datetime | None:
    """When Tekton's init container prepared this TaskRun's steps, or None.

    The ``prepare`` init container writes one ``step-<name>`` link per step into
    /tekton/steps before any step starts; the earliest link's own modification time is
    therefore the start of the TaskRun's steps, in a pod and under an executor that runs
    Tekton's init container alike. (PID 1's start time is not: under an executor that runs
    steps as host processes, PID 1 is the host's init.) Reads at most MAX_STEP_ENTRIES.
    """
    times: list[float] = []
    try:
        with os.scandir(steps_dir) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_STEP_ENTRIES:
                    break
                if entry.name.startswith("step-"):
                    times.append(entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        return None
    if not times:
        return None
    return datetime.fromtimestamp(min(times), tz=UTC).replace(microsecond=0)
