"""attest-step: in-pod supply-chain attestation for Tekton builds."""

__version__ = "0.1.0"
