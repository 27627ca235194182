# Admission policy for Sigstore policy-controller: the attestation-level policy of
# policy/admission/cluster-image-policy.yaml, evaluated over each verified attestation's
# in-toto Statement (predicate type https://slsa.dev/provenance/v1) attached to the image.
#
# policy-controller (through cosign v2's rego package) loads this one module as package
# `sigstore` and reads `isCompliant`: a set holding one object {result, error}. The error
# text is what `kubectl` shows when the webhook denies a Deployment.
#
# It admits provenance written by attest-step's Tekton step (build type tekton-step/v1) with a
# builder id from allowed_builder_ids, and at least one network-isolation record of a build
# step, every such record hermetic and observed by attest-step's own code (`attest-step run`),
# its summary agreeing with its content and digest (docs/hermetic.md, section 4).
# The same checks as policy/release/tekton_step.rego's hermetic, isolation_observed and
# isolation_record_consistent rules, on their own: policy-controller loads a single module.
package sigstore

import rego.v1

build_type := "https://attest-step.dev/buildtypes/tekton-step/v1"

isolation_media_type := "application/vnd.attest-step.network-isolation.v1+json"

# Edit for your platform (attest-step's default builder id).
allowed_builder_ids := {"https://attest-step.dev/builders/tekton-step/v1"}

# true: a step only declared hermetic, or whose isolation only the build itself reported
# (Tekton's hermetic mode), is refused; attest-step run's observation is required.
require_observed_isolation := true

isCompliant contains {"result": count(violations) == 0, "error": concat("; ", sort(violations))}

violations contains msg if {
	input.predicate.buildDefinition.buildType != build_type
	msg := sprintf("attest_step.build_type: build type %q is not %q", [input.predicate.buildDefinition.buildType, build_type])
}

violations contains msg if {
	not input.predicate.buildDefinition.buildType
	msg := "attest_step.build_type: the provenance has no build type"
}

violations contains msg if {
	builder := object.get(input, ["predicate", "runDetails", "builder", "id"], "")
	not builder in allowed_builder_ids
	msg := sprintf("attest_step.slsa_builder_id_accepted: builder id %q is not allowed", [builder])
}

isolation_records := [record |
	some record in object.get(input, ["predicate", "runDetails", "byproducts"], [])
	record.mediaType == isolation_media_type
	object.get(record, ["annotations", "role"], "") != "attest"
]

step_of(record) := object.get(record, ["annotations", "step"], object.get(record, "name", "?"))

violations contains msg if {
	count(isolation_records) == 0
	msg := "attest_step.hermetic: the provenance has no network-isolation record of a build step (not a hermetic build)"
}

violations contains msg if {
	some record in isolation_records
	object.get(record, ["annotations", "hermetic"], false) != true
	msg := sprintf(
		"attest_step.hermetic: step %q is not recorded as network-isolated (status %q): not a hermetic build",
		[step_of(record), object.get(record, ["annotations", "status"], "missing")],
	)
}

violations contains msg if {
	require_observed_isolation
	some record in isolation_records
	object.get(record, ["annotations", "observedIsolation"], false) != true
	msg := sprintf(
		"attest_step.isolation_observed: step %q: isolation not observed by attest-step run (only declared or reported)",
		[step_of(record)],
	)
}

violations contains msg if {
	some record in isolation_records
	not record_consistent(record)
	msg := sprintf(
		"attest_step.isolation_record_consistent: step %q: record content, digest and summary disagree",
		[step_of(record)],
	)
}

record_consistent(record) if {
	raw := base64.decode(record.content)
	crypto.sha256(raw) == record.digest.sha256
	content := json.unmarshal(raw)
	content.hermetic == record.annotations.hermetic
}
