"""Local executor for Tekton TaskRuns/PipelineRuns: Tekton's own code decides, this runs."""

from tests.e2e.executor.pod import Cluster, PodError
from tests.e2e.executor.render import RenderError, ToolMissing, ensure_built
from tests.e2e.executor.runs import Executor, RunOutcome, kaniko_hook, load_yaml_docs, runs_in

__all__ = [
    "Cluster",
    "Executor",
    "PodError",
    "RenderError",
    "RunOutcome",
    "ToolMissing",
    "ensure_built",
    "kaniko_hook",
    "load_yaml_docs",
    "runs_in",
]
