"""Every registry verb against a table of bad registry answers and bad local input: each is
an input error (exit 2) with one line on stderr, no traceback, no secret.

Before, a non-JSON manifest, bad layers, a bad size field, port 99999 and a malformed spool
ended in exit 70 ("internal error"). The registry side is a small hostile server
(tests/fixtures/hostile_http.py); the spool rows need no registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from attest_step.imageref import parse_image_ref
from attest_step.oci.spool import write_attestation
from attest_step.oci.types import INDEX_TYPE, MANIFEST_TYPE, SIMPLESIGNING_TYPE
from tests.fixtures.hostile_http import ATTEST_STEP, Behaviour, HostileServer, Request, run_measured
from tests.fixtures.keys import KeyPair

pytestmark = pytest.mark.registry

IMAGE_DIGEST = "sha256:" + "ab" * 32
LAYER = {"mediaType": SIMPLESIGNING_TYPE, "digest": "sha256:" + "cd" * 32, "size": 10}
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": LAYER["digest"]}
CONFIG["size"] = 10


def _manifest(**fields: object) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": CONFIG, **fields}
    return json.dumps(doc).encode()


EMPTY_INDEX = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": []}).encode()


def _serving(tag_manifest: bytes, fallback_index: bytes = EMPTY_INDEX) -> Behaviour:
    """The ``.sig``/``.att`` tags answer ``tag_manifest``; the referrers fallback tag
    (``sha256-<hex>``) answers ``fallback_index``; tag lists are empty; the rest is 404."""

    def behave(request: Request) -> None:
        if request.method == "GET" and "/manifests/" in request.path:
            if request.path.endswith((".sig", ".att")):
                request.answer(200, tag_manifest, {"Content-Type": MANIFEST_TYPE})
            else:
                request.answer(200, fallback_index, {"Content-Type": INDEX_TYPE})
        elif request.path.endswith("/tags/list"):
            request.answer(200, b'{"tags":[]}', {"Content-Type": "application/json"})
        else:
            request.answer(404)

    return behave


def _index(*entries: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": entries}).encode()


def _garbage_everywhere(request: Request) -> None:
    request.answer(200, b"\x00\xff<html>oops</html>", {"Content-Type": INDEX_TYPE})


def _not_http(request: Request) -> None:
    request.raw(b"\x16\x03\x01\x00 this is not HTTP\r\n\r\n")


def _token_service(answer: bytes, *, realm: bool = True) -> Callable[[list[str]], Behaviour]:
    def make(host: list[str]) -> Behaviour:
        def behave(request: Request) -> None:
            if request.path.startswith("/token"):
                request.answer(200, answer, {"Content-Type": "application/json"})
                return
            where = f'realm="http://{host[0]}/token",' if realm else ""
            challenge = f'Bearer {where}service="hostile",scope="repository:app:pull"'
            request.answer(401, b"{}", {"WWW-Authenticate": challenge})

        return behave

    return make


def _fixed(behave: Behaviour) -> Callable[[list[str]], Behaviour]:
    return lambda _host: behave


REGISTRY_ROWS: dict[str, Callable[[list[str]], Behaviour] | None] = {
    "a non-JSON manifest": _fixed(_serving(b"<html><body>Welcome</body></html>")),
    "bad layers": _fixed(_serving(_manifest(layers="nope"))),
    "layers that are not descriptors": _fixed(_serving(_manifest(layers=[1, None]))),
    "a bad size field": _fixed(_serving(_manifest(layers=[{**LAYER, "size": "big"}]))),
    "a negative size": _fixed(_serving(_manifest(layers=[{**LAYER, "size": -1}]))),
    "a layer digest that is a path": _fixed(
        _serving(_manifest(layers=[{**LAYER, "digest": "sha256:../../etc/passwd"}]))
    ),
    "a manifest that is a JSON list": _fixed(_serving(b"[1, 2, 3]")),
    "a referrers index that is not JSON": _fixed(_serving(_manifest(), b"\x00not json")),
    "a referrers index entry with a bad digest": _fixed(
        _serving(_manifest(), _index({**LAYER, "digest": "sha256:zz"}))
    ),
    "a referrers index of the wrong type": _fixed(_serving(_manifest(), _manifest())),
    "garbage for every request": _fixed(_garbage_everywhere),
    "an answer that is not HTTP": _fixed(_not_http),
    "a token service answering a JSON list": _token_service(b"[1]"),
    "a token service answering HTML": _token_service(b"<html></html>"),
    "a Bearer challenge without a realm": _token_service(b"{}", realm=False),
    "port 99999 in the reference": None,
}

VERBS = ["verify", "verify-attestation", "sign", "attest", "push --from"]


def _args(verb: str, ref: str, keys: KeyPair, tmp: Path) -> list[str]:
    common = ["--allow-insecure-registry", "--timeout", "20s"]
    if verb == "verify":
        return [ATTEST_STEP, "verify", "--key", str(keys.pub), *common, ref]
    if verb == "verify-attestation":
        return [ATTEST_STEP, "verify-attestation", "--key", str(keys.pub), *common, ref]
    spool = tmp / "spool"
    if verb == "sign":
        return [
            ATTEST_STEP,
            "sign",
            "--key",
            str(keys.key),
            *common,
            "--spool-dir",
            str(spool),
            ref,
        ]
    if verb == "attest":
        args = [ATTEST_STEP, "attest", "--key", str(keys.key), "--image", ref, *common]
        return [*args, "--spool-dir", str(spool)]
    image = parse_image_ref(ref)
    envelope = {
        "payload": "e30=",
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"sig": "AAAA"}],
    }
    write_attestation(spool, json.dumps(envelope).encode(), image, "https://slsa.dev/provenance/v1")
    return [ATTEST_STEP, "push", "--from", str(spool), *common]


def assert_input_error(outcome_stderr: str, outcome_stdout: str, code: int, keys: KeyPair) -> str:
    lines = outcome_stderr.strip().splitlines()
    assert code == 2, (code, outcome_stderr[-3000:])
    assert len(lines) == 1, outcome_stderr[-3000:]
    assert lines[0].startswith("attest-step: error: "), lines[0]
    for text in (outcome_stderr, outcome_stdout):
        assert "Traceback" not in text and "internal error" not in text
        assert keys.password not in text
        key_body = keys.key.read_text().splitlines()[1]
        assert key_body not in text
    return lines[0]


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("row", list(REGISTRY_ROWS))
def test_a_bad_registry_answer_is_an_input_error_for_every_verb(
    hostile: Callable[[Behaviour], HostileServer],
    cosign_key_pair: KeyPair,
    tmp_path: Path,
    row: str,
    verb: str,
) -> None:
    make = REGISTRY_ROWS[row]
    if make is None:
        host = "127.0.0.1:99999"
    else:
        holder: list[str] = []
        server = hostile(make(holder))
        holder.append(server.host)
        host = server.host
    ref = f"{host}/app@{IMAGE_DIGEST}"
    outcome = run_measured(_args(verb, ref, cosign_key_pair, tmp_path), cosign_key_pair.env())
    assert_input_error(outcome.stderr, outcome.stdout, outcome.returncode, cosign_key_pair)


def _spool_record(spool: Path) -> Path:
    return next(spool.glob("*.oci.json"))


def _bad_annotations(spool: Path) -> None:
    record = _spool_record(spool)
    doc = json.loads(record.read_text())
    doc["annotations"] = ["not", "a", "map"]
    record.write_text(json.dumps(doc))


def _record_not_an_object(spool: Path) -> None:
    _spool_record(spool).write_text("[1, 2]")


def _record_not_json(spool: Path) -> None:
    _spool_record(spool).write_text("{not json")


def _deeply_nested_record(spool: Path) -> None:
    _spool_record(spool).write_text("[" * 100_000 + "]" * 100_000)


def _predicate_type_not_a_string(spool: Path) -> None:
    record = _spool_record(spool)
    doc = json.loads(record.read_text())
    doc["predicateType"] = {"a": 1}
    record.write_text(json.dumps(doc))


def _envelope_without_signatures_list(spool: Path) -> None:
    record = _spool_record(spool)
    doc = json.loads(record.read_text())
    blob = spool / doc["blob"]
    data = json.dumps({"payload": "e30=", "payloadType": "x", "signatures": "nope"}).encode()
    blob.write_bytes(data)
    doc["blobDigest"] = "sha256:" + hashlib.sha256(data).hexdigest()
    record.write_text(json.dumps(doc))


def _bad_image(spool: Path) -> None:
    record = _spool_record(spool)
    doc = json.loads(record.read_text())
    doc["image"] = 12
    record.write_text(json.dumps(doc))


SPOOL_ROWS: dict[str, Callable[[Path], None]] = {
    "annotations that are a list": _bad_annotations,
    "a record that is a JSON list": _record_not_an_object,
    "a record that is not JSON": _record_not_json,
    "a record nested 100000 deep": _deeply_nested_record,
    "a predicateType that is an object": _predicate_type_not_a_string,
    "an envelope whose signatures are not a list": _envelope_without_signatures_list,
    "an image that is a number": _bad_image,
}


@pytest.mark.parametrize("row", list(SPOOL_ROWS))
def test_push_from_a_malformed_spool_is_an_input_error(
    cosign_key_pair: KeyPair, tmp_path: Path, row: str
) -> None:
    ref = f"127.0.0.1:1/app@{IMAGE_DIGEST}"  # never reached: the spool is read first
    args = _args("push --from", ref, cosign_key_pair, tmp_path)
    SPOOL_ROWS[row](tmp_path / "spool")
    args += ["--registry-layout", "bundle"]
    outcome = run_measured(args, cosign_key_pair.env())
    line = assert_input_error(outcome.stderr, outcome.stdout, outcome.returncode, cosign_key_pair)
    assert "spool record" in line or "DSSE envelope" in line, line
