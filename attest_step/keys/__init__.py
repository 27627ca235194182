"""Signing keys: cosign's encrypted format, Kubernetes Secret mounts, PEM, x509, KMS."""
