"""OpenPGP "simple signing" of images, the format podman, skopeo and CRI-O verify.

The signature is an inline-signed OpenPGP message whose literal data is containers/image's
"atomic container signature" JSON; it is stored in a lookaside directory
(``registries.d`` ``lookaside``/``lookaside-staging``), not in the registry. OpenPGP itself is
Sequoia's, through pysequoia (see docs/decisions.md).
"""
