"""Transparency log (Rekor v2): upload signed envelopes, keep and check the log's answer.

- :mod:`.hashedrekord`: the entry Rekor v2 logs for a DSSE envelope (a ``hashedrekord``
  v0.0.2 over the SHA-2 digest of the envelope's PAE) and its canonical body;
- :mod:`.merkle`: RFC 6962 / RFC 9162 leaf hashes and inclusion proofs;
- :mod:`.checkpoint`: C2SP signed notes and the checkpoints they carry;
- :mod:`.trustedroot`: the transparency logs of a Sigstore TrustedRoot JSON;
- :mod:`.entry`: checks a TransparencyLogEntry against an envelope and a trusted root;
- :mod:`.client`: the bounded, retried ``POST /api/v2/log/entries``;
- :mod:`.spool`: the log's answers kept beside the spooled items (``push --from``);
- :mod:`.filelog`: envelopes written only to a file: logged, their bundle written to a file;
- :mod:`.options`: the ``--rekor-url`` / ``--tlog-upload`` / ``--trusted-root`` flags.
"""
