"""Run the Pod that Tekton built for a TaskRun, on this machine, container by container.

Each container (init containers, then steps, in order) is a process started with
``unshare --mount``: in its private mount namespace, tmpfs is mounted on ``/tekton`` and
``/workspace`` and every volumeMount of the container is bind-mounted at its
``mountPath`` (read-only where the Pod says so), so scripts see the paths they see in a
pod, and a Secret is visible only to the containers that mount it. The container's
command is Tekton's own: Tekton's entrypoint binary (built from the pinned
tektoncd/pipeline) wraps every step, so step ordering, ``onError``, results, step
results and ``TEKTON_HERMETIC=1`` (new net+pid+user+mount namespaces, by the entrypoint
itself) behave as in a cluster.

Not like a pod: the container ``image`` is not pulled; the step runs with this machine's
tools (``attest-step`` from the venv is on PATH). securityContext, resources and
sidecars are ignored or refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.executor.render import KO_APPS, REPO_ROOT

TMPFS_ROOTS = ("/tekton", "/workspace")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PodError(RuntimeError):
    """The Pod uses something the local executor refuses to fake."""


@dataclass
class Cluster:
    """What a namespace would hold: Secrets, ConfigMaps, and where PVCs live."""

    root: Path
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    configmaps: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def claim_dir(self, claim: str) -> Path:
        path = self.root / "pvc" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_object(self, obj: dict[str, Any]) -> bool:
        """Take a Secret or ConfigMap manifest; False for other kinds."""
        kind = obj.get("kind")
        if kind not in ("Secret", "ConfigMap"):
            return False
        name = obj["metadata"]["name"]
        data: dict[str, bytes] = {}
        for key, value in (obj.get("data") or {}).items():
            data[key] = base64.b64decode(value) if kind == "Secret" else str(value).encode()
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = str(value).encode()
        for key, value in (obj.get("binaryData") or {}).items():
            data[key] = base64.b64decode(value)
        (self.secrets if kind == "Secret" else self.configmaps)[name] = data
        return True


@dataclass
class ContainerResult:
    name: str
    exit_code: int
    message: str
    started: str
    finished: str
    log: str


# A hook may rewrite a container before it runs (the kaniko stand-in does).
ContainerHook = Callable[[dict[str, Any]], dict[str, Any]]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_within(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or below it."""
    ancestor = ancestor.rstrip("/") or "/"
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _host_dirs_to_keep() -> list[str]:
    """The repository (venv, .tools) and the Python installation the steps run with."""
    dirs = {
        str(REPO_ROOT),
        str(Path(sys.prefix).resolve()),
        str(Path(sys.base_prefix).resolve()),
        str(Path(sys.executable).resolve().parent),
    }
    # Outer directories first, so an inner one is bound after (on top of) its parent.
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def ensure_mount_roots() -> None:
    """Empty directories ``/tekton`` and ``/workspace`` serve as mount points (host-wide)."""
    for root in TMPFS_ROOTS:
        Path(root).mkdir(exist_ok=True)


class PodRunner:
    def __init__(
        self,
        pod: dict[str, Any],
        workdir: Path,
        cluster: Cluster,
        *,
        path_prefix: list[str] | None = None,
        hooks: list[ContainerHook] | None = None,
        log: Callable[[str], None] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.pod = pod
        self.workdir = workdir
        self.cluster = cluster
        self.hooks = hooks or []
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self.extra_env = extra_env or {}
        venv_bin = str(Path(sys.executable).parent)
        tools = str(REPO_ROOT / ".tools" / "bin")
        self.path = ":".join([*(path_prefix or []), venv_bin, tools, DEFAULT_PATH])
        self.volumes: dict[str, Path] = {}

    # -- volumes ---------------------------------------------------------------------
    def _materialise(self) -> None:
        vroot = self.workdir / "volumes"
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            path = vroot / name
            if "emptyDir" in vol:
                path.mkdir(parents=True, exist_ok=True)
            elif "persistentVolumeClaim" in vol:
                path = self.cluster.claim_dir(vol["persistentVolumeClaim"]["claimName"])
            elif "secret" in vol or "configMap" in vol:
                is_secret = "secret" in vol
                src = vol["secret"] if is_secret else vol["configMap"]
                ref = src.get("secretName") if is_secret else src.get("name")
                store = self.cluster.secrets if is_secret else self.cluster.configmaps
                kind = "Secret" if is_secret else "ConfigMap"
                path.mkdir(parents=True, exist_ok=True)
                data = store.get(str(ref))
                if data is None:
                    if src.get("optional"):
                        continue
                    raise PodError(f"volume {name!r}: {kind} {ref!r} does not exist")
                items = src.get("items")
                pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
                for key, rel in pairs:
                    if key not in data:
                        raise PodError(f"volume {name!r}: {kind} {ref!r} has no key {key!r}")
                    target = path / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data[key])
                    target.chmod(0o644 if src.get("defaultMode") is None else src["defaultMode"])
            elif "downwardAPI" in vol:
                path.mkdir(parents=True, exist_ok=True)
                for item in vol["downwardAPI"].get("items") or []:
                    field_path = item.get("fieldRef", {}).get("fieldPath", "")
                    if field_path != "metadata.annotations['tekton.dev/ready']":
                        raise PodError(f"volume {name!r}: downwardAPI field {field_path!r}")
                    # Tekton sets this annotation once sidecars are ready (there are none).
                    (path / item["path"]).write_text("READY")
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise PodError(f"volume {name!r}: volume source {kinds} is not supported locally")
            self.volumes[name] = path

    # -- one container ---------------------------------------------------------------
    def _script(self, container: dict[str, Any], termination: Path) -> str:
        lines = ["set -e"]
        mounts = sorted(
            container.get("volumeMounts") or [], key=lambda m: m["mountPath"].count("/")
        )
        used_roots = {
            root
            for root in TMPFS_ROOTS
            for m in mounts
            if m["mountPath"] == root or m["mountPath"].startswith(root + "/")
        }
        used_roots.add("/tekton")  # the termination message file lives there
        for root in sorted(used_roots):
            lines.append(f"mount -t tmpfs -o mode=0755 tekton-local {root}")
        # Stage every source under /tekton first: a mount on e.g. /tmp would otherwise hide
        # the host directories the later sources live in.
        stage = "/tekton/.local-stage"
        staged: list[tuple[str, str, bool]] = []
        for i, m in enumerate(mounts):
            if m["name"] not in self.volumes:
                raise PodError(f"container {container['name']!r}: no volume {m['name']!r}")
            src = self.volumes[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
                src.mkdir(parents=True, exist_ok=True)
            target = m["mountPath"]
            if not any(target == r or target.startswith(r + "/") for r in TMPFS_ROOTS):
                # Outside the tmpfs roots the mount point must exist on the host: an empty
                # directory is created once and left there.
                Path(target).mkdir(parents=True, exist_ok=True)
            s_path = f"{stage}/{i}"
            lines.append(f"mkdir -p {s_path} && mount --bind {shlex.quote(str(src))} {s_path}")
            staged.append((s_path, target, bool(m.get("readOnly"))))
        # Host directories the step needs (the repository with its venv and .tools, the
        # Python installation) stay visible even when a volume is mounted over one of their
        # ancestors, e.g. an emptyDir on /tmp while the checkout lives under /tmp.
        targets = [t for _, t, _ in staged]
        kept: list[tuple[str, str]] = []
        for j, host_dir in enumerate(_host_dirs_to_keep()):
            if any(_is_within(host_dir, t) for t in targets):
                k_path = f"{stage}/keep{j}"
                lines.append(f"mkdir -p {k_path} && mount --bind {shlex.quote(host_dir)} {k_path}")
                kept.append((k_path, host_dir))
        termination_stage = f"{stage}/termination"
        lines.append(
            f"touch {termination_stage} && "
            f"mount --bind {shlex.quote(str(termination))} {termination_stage}"
        )
        for s_path, target, read_only in staged:
            q = shlex.quote(target)
            lines.append(f"mkdir -p {q}")
            lines.append(f"mount --bind {s_path} {q}")
            if read_only:
                lines.append(f"mount -o remount,bind,ro {q}")
        for k_path, host_dir in kept:
            q = shlex.quote(host_dir)
            lines.append(f"mkdir -p {q} && mount --bind {k_path} {q} && umount -l {k_path}")
        term_path = container.get("terminationMessagePath") or "/dev/termination-log"
        qt = shlex.quote(term_path)
        lines.append(f"mkdir -p $(dirname {qt}) && touch {qt}")
        lines.append(f"mount --bind {termination_stage} {qt}")
        for s_path, _, _ in staged:
            lines.append(f"umount -l {s_path}")
        lines.append(f"umount -l {termination_stage}; rm -rf {stage}")
        workdir = container.get("workingDir") or "/"
        lines.append(f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)}")
        env = {"PATH": self.path, "HOME": "/tekton/home", "HOSTNAME": self.pod["metadata"]["name"]}
        env.update(self.extra_env)
        for item in container.get("env") or []:
            if "valueFrom" in item:
                env[item["name"]] = self._value_from(container, item)
            else:
                env[item["name"]] = _expand(str(item.get("value", "")), env)
        if container.get("envFrom"):
            raise PodError(f"container {container['name']!r}: envFrom is not supported locally")
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            raise PodError(f"container {container['name']!r} has no command")
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        lines.append(f"exec env -i {assignments} {' '.join(shlex.quote(a) for a in argv)}")
        return "\n".join(lines) + "\n"

    def _value_from(self, container: dict[str, Any], item: dict[str, Any]) -> str:
        src = item["valueFrom"]
        for key, store in (
            ("secretKeyRef", self.cluster.secrets),
            ("configMapKeyRef", self.cluster.configmaps),
        ):
            if key in src:
                ref = src[key]
                data = store.get(ref["name"], {})
                if ref["key"] in data:
                    return data[ref["key"]].decode()
                if ref.get("optional"):
                    return ""
                raise PodError(
                    f"container {container['name']!r}: env {item['name']}: "
                    f"{ref['name']}/{ref['key']} not found"
                )
        if "fieldRef" in src:
            return self._field(container, item["name"], src["fieldRef"].get("fieldPath", ""))
        raise PodError(
            f"container {container['name']!r}: env {item['name']}: valueFrom {sorted(src)} "
            "is not supported locally"
        )

    def _field(self, container: dict[str, Any], name: str, path: str) -> str:
        """The downward API's env fields the catalog uses: the pod's name, namespace, uid and
        labels (a label the pod does not carry is empty, as the kubelet makes it)."""
        meta = self.pod["metadata"]
        if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
            return str(meta.get(path.split(".", 1)[1], ""))
        match = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
        if match:
            return str((meta.get("labels") or {}).get(match.group(1), ""))
        raise PodError(
            f"container {container['name']!r}: env {name}: fieldRef {path!r} is not supported "
            "locally"
        )

    def _run(self, container: dict[str, Any], index: int) -> ContainerResult:
        for hook in self.hooks:
            container = hook(container)
        cdir = self.workdir / "containers" / f"{index:02d}-{container['name']}"
        cdir.mkdir(parents=True, exist_ok=True)
        termination = cdir / "termination"
        termination.write_text("")
        script = cdir / "run.sh"
        script.write_text(self._script(container, termination))
        started = _now()
        logf = cdir / "log"
        with logf.open("wb") as out:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", str(script)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                self.log(f"[{container['name']}] {line.decode(errors='replace').rstrip()}")
            code = proc.wait()
        return ContainerResult(
            name=container["name"],
            exit_code=code,
            message=termination.read_text(),
            started=started,
            finished=_now(),
            log=logf.read_text(errors="replace"),
        )

    def _map_internal(self, container: dict[str, Any]) -> dict[str, Any]:
        """Tekton's own images: the entrypoint binary and the shell run from the host."""
        c = dict(container)
        c["command"] = [str(KO_APPS.get(a, a)) for a in c.get("command") or []]
        c["args"] = [str(KO_APPS.get(a, a)) for a in c.get("args") or []]
        return c

    # -- the pod ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every container; return the Pod with ``status`` as the kubelet reports it."""
        spec = self.pod["spec"]
        if spec.get("sidecars") or [
            c for c in spec.get("containers", []) if not c["name"].startswith("step-")
        ]:
            raise PodError("sidecars are not supported by the local executor")
        ensure_mount_roots()
        self._materialise()
        init_statuses = []
        for i, c in enumerate(spec.get("initContainers") or []):
            res = self._run(self._map_internal(c), i)
            init_statuses.append(_status(res))
            if res.exit_code != 0:
                raise PodError(f"init container {c['name']} failed ({res.exit_code}):\n{res.log}")
        statuses = []
        failed = False
        offset = len(init_statuses)
        for i, c in enumerate(spec.get("containers") or []):
            res = self._run(c, offset + i)
            statuses.append(_status(res))
            failed = failed or res.exit_code != 0
        pod = dict(self.pod)
        pod["status"] = {
            "phase": "Failed" if failed else "Succeeded",
            "initContainerStatuses": init_statuses,
            "containerStatuses": statuses,
        }
        return pod


def _status(res: ContainerResult) -> dict[str, Any]:
    return {
        "name": res.name,
        "ready": False,
        "restartCount": 0,
        "image": "",
        "imageID": "",
        "state": {
            "terminated": {
                "exitCode": res.exit_code,
                "reason": "Completed" if res.exit_code == 0 else "Error",
                "message": res.message,
                "startedAt": res.started,
                "finishedAt": res.finished,
            }
        },
    }


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of earlier env entries (``$$`` escapes)."""
    out = []
    i = 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2 : end]
            if name in env:
                out.append(env[name])
            else:
                out.append(value[i : end + 1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["Cluster", "ContainerHook", "PodError", "PodRunner", "os"]
