"""Cosign-compatible storage of signatures and attestations in OCI registries and layouts."""
