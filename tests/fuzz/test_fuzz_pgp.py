"""OpenPGP simple signing (attest_step/pgp, simplesigning.check_atomic_claims).

Contract: ``check_atomic_claims`` returns (reference, payload) or raises VerificationError
for any bytes, and accepts exactly containers/image's shape (its strict field sets);
``verify_lookaside`` over any signature files returns verified signatures or raises
VerificationError/UsageError; any change of one byte of a signed message never verifies.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pysequoia
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, UsageError, VerificationError
from attest_step.imageref import parse_image_ref
from attest_step.oci.simplesigning import atomic_payload_bytes, check_atomic_claims
from attest_step.pgp.keys import PgpSigner, load_pgp_public_keys, load_pgp_signer
from attest_step.pgp.lookaside import image_dir
from attest_step.pgp.simple_signing import sign_to_lookaside, verify_lookaside
from tests.fuzz.support import fuzz, json_bytes, mutate

DIGEST = "sha256:" + "ab" * 32
IMAGE = parse_image_ref(f"127.0.0.1:5000/org/app:v1@{DIGEST}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _valid() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        atomic_payload_bytes("127.0.0.1:5000/org/app:v1", DIGEST, creator="t")
    )
    return doc


@fuzz
@given(st.binary(max_size=300) | json_values.map(json_bytes))
def test_any_payload_checks_or_raises_verification_error(data: bytes) -> None:
    try:
        reference, doc = check_atomic_claims(data, DIGEST)
    except VerificationError:
        return
    assert isinstance(reference, str) and set(doc) == {"critical", "optional"}


PLACES = [
    ("critical",), ("optional",), ("critical", "type"), ("critical", "image"),
    ("critical", "identity"), ("critical", "image", "docker-manifest-digest"),
    ("critical", "identity", "docker-reference"),
]  # fmt: skip


@fuzz
@given(st.sampled_from(PLACES), json_values)
def test_one_replaced_place_checks_or_raises(place: tuple[str, ...], value: Any) -> None:
    doc = _valid()
    target = doc
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = value
    try:
        check_atomic_claims(json_bytes(doc), DIGEST)
    except VerificationError:
        return
    # accepted only where containers/image would also accept it
    optional = place == ("optional",) and isinstance(value, dict)
    reference = place[-1] == "docker-reference" and isinstance(value, str) and value != ""
    assert optional or reference


@fuzz
@given(
    st.sampled_from(["critical", "critical.image", "critical.identity", "top"]), st.text(max_size=5)
)
def test_an_extra_field_is_refused_except_in_optional(where: str, key: str) -> None:
    doc = _valid()
    target = {"top": doc, "critical": doc["critical"]}.get(where)
    if target is None:
        target = doc["critical"][where.split(".")[1]]
    if key in target:
        return
    target[key] = "x"
    with pytest.raises(VerificationError):
        check_atomic_claims(json_bytes(doc), DIGEST)


@pytest.fixture(scope="module")
def sequoia_key() -> tuple[PgpSigner, list[pysequoia.Cert]]:
    tsk = pysequoia.Tsk.generate("Fuzz <fuzz@example.com>")
    cert = tsk.extract_certificate()
    return PgpSigner(tsk.signer(), cert), [cert]


@fuzz
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=3))
def test_a_changed_signature_never_verifies_or_raises_something_else(
    sequoia_key: tuple[PgpSigner, list[pysequoia.Cert]],
    tmp_path_factory: pytest.TempPathFactory,
    edits: list[tuple[int, int]],
) -> None:
    signer, certs = sequoia_key
    base = tmp_path_factory.mktemp("lookaside")
    sign_to_lookaside(IMAGE, signer, base, timestamp=0)
    path = image_dir(base, IMAGE) / "signature-1"
    original = path.read_bytes()
    changed = mutate(original, edits)
    path.write_bytes(changed)
    try:
        verified = verify_lookaside(IMAGE, certs, base)
    except AttestStepError:
        return
    # Only bytes outside what the signature covers may change and still verify (the
    # literal packet's file name and date); the payload read back is always the signed one.
    assert verified[0].claims["critical"]["image"]["docker-manifest-digest"] == DIGEST


@fuzz
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_any_lookaside_content_verifies_or_raises(
    sequoia_key: tuple[PgpSigner, list[pysequoia.Cert]],
    tmp_path_factory: pytest.TempPathFactory,
    files: list[bytes],
) -> None:
    _, certs = sequoia_key
    base = tmp_path_factory.mktemp("lookaside")
    directory = image_dir(base, IMAGE)
    directory.mkdir(parents=True)
    for index, data in enumerate(files, start=1):
        Path(directory / f"signature-{index}").write_bytes(data)
    with pytest.raises(AttestStepError):
        verify_lookaside(IMAGE, certs, base)


@pytest.fixture(scope="module")
def armored_key() -> bytes:
    return str(pysequoia.Tsk.generate("Parse <parse@example.com>")).encode()


@fuzz
@given(
    data=st.binary(max_size=400),
    edits=st.lists(st.tuples(st.integers(0, 900), st.integers(0, 255)), max_size=4),
)
def test_any_key_file_loads_or_raises_usage_error(
    armored_key: bytes, tmp_path_factory: pytest.TempPathFactory, data: bytes,
    edits: list[tuple[int, int]],
) -> None:  # fmt: skip
    base = tmp_path_factory.mktemp("keys")
    for name, content in (("random", data), ("edited", mutate(armored_key, edits))):
        path = base / name
        path.write_bytes(content)
        try:
            signer = load_pgp_signer(str(path), environ={})
            assert len(signer.fingerprint) == 40
        except UsageError:
            pass
        with contextlib.suppress(UsageError):
            assert load_pgp_public_keys(str(path))
