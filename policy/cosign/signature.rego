# METADATA
# title: cosign entry point for policy/release/tekton_step.rego
# description: >-
#   cosign verify-attestation --policy evaluates `data.signature.allow` over the
#   verified in-toto Statement and passes only when it is `true`. Give cosign this
#   file and the rules:
#
#     cosign verify-attestation --type slsaprovenance1 \
#       --policy policy/cosign/signature.rego \
#       --policy policy/release/tekton_step.rego ...
#
#   cosign loads only .rego and .cue files, so the rule data lives here, in
#   `rule_data` (keep it in step with policy/data/rule_data.yml).
#   cosign prints a value that is not `true`: on failure `allow` is the list of
#   "code: message" strings, so cosign's error names every rule that failed.
package signature

import rego.v1

rule_data := {
	"known_attestation_types": ["https://in-toto.io/Statement/v1"],
	"allowed_predicate_types": ["https://slsa.dev/provenance/v1"],
	"allowed_builder_ids": ["https://attest-step.dev/builders/tekton-step/v1"],
	"allowed_source_repos": ["https://github.com/example/app"],
	"denied_build_tool_images": ["quay.io/untrusted-builders/"],
	"require_hermetic": true,
	"require_observed_isolation": false,
	"required_hermetic_steps": [],
}

violations := results if {
	results := data.attest_step.tekton_step.deny with data.rule_data as rule_data
}

allow if {
	count(violations) == 0
} else := messages if {
	count(violations) > 0
	messages := sort([sprintf("%s: %s", [r.code, r.msg]) | some r in violations])
} else := ["attest_step.rules_loaded: policy/release/tekton_step.rego was not given: pass it as a second --policy"]
