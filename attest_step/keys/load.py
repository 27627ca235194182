"""Turn a ``--key`` argument into a Signer or Verifier. (Stub: filled in by the keys work.)"""

from __future__ import annotations

from attest_step.keys.signer import Signer, Verifier


def load_signer(key_ref: str) -> Signer:
    """Load a signer from ``key_ref``.

    ``key_ref`` is one of: a cosign encrypted key file (password from ``COSIGN_PASSWORD`` or
    ``ATTEST_STEP_PASSWORD_FILE``), a directory laid out like the mounted Secret of
    ``cosign generate-key-pair k8s://NS/NAME``, a plain PKCS#8 PEM key (optionally with a
    certificate chain), or a KMS URI. Raises AttestStepError on any problem.
    """
    raise NotImplementedError


def load_verifier(key_ref: str) -> Verifier:
    """Load a verifier from a public key PEM, a certificate, a Secret directory or a KMS URI."""
    raise NotImplementedError
