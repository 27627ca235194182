"""Reproducible container images for attest-step, built from Debian packages with mmdebstrap.

``python -m hack.image.cli`` is the entry point (``make image``, ``make image-lock``); see
docs/image.md.
"""
