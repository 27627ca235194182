# METADATA
# title: attest-step provenance, build type tekton-step/v1
# description: >-
#   Deploy-gate rules for the SLSA v1 provenance that attest-step writes
#   (docs/provenance.md) and its network-isolation byproducts (docs/hermetic.md).
#   Written in Rego v1. The `import rego.v1` line is kept on purpose: cosign
#   parses policies as Rego v0, where that import switches on the v1 keywords,
#   so the same file runs under `opa eval` and `cosign verify-attestation`.
#
#   Query `data.attest_step.tekton_step.deny`: a set of results
#   {"code", "msg"[, "term"]}, empty when the provenance passes. The allow-lists
#   come from `data.rule_data` (policy/data/rule_data.yml).
#
#   The rules read content only. Verify the signature first (cosign
#   verify-attestation, attest-step verify-attestation): given a bare DSSE
#   envelope, this package decodes its payload without checking any signature.
package attest_step.tekton_step

import rego.v1

build_type := "https://attest-step.dev/buildtypes/tekton-step/v1"

isolation_media_type := "application/vnd.attest-step.network-isolation.v1+json"

# ---------------------------------------------------------------------------
# Input: three shapes are accepted.
#  1. an in-toto Statement (what cosign verify-attestation --policy passes in);
#  2. a DSSE envelope as `attest --output-file` writes it (payload decoded here);
#  3. Conforma's input: {"attestations": [{"statement": {...}}, ...]}.
# ---------------------------------------------------------------------------

_all_statements contains input if input._type

_all_statements contains statement if {
	input.payloadType == "application/vnd.in-toto+json"
	statement := json.unmarshal(base64.decode(input.payload))
}

_all_statements contains att.statement if {
	some att in input.attestations
}

# The statements this package judges: ours, by build type. Others (Chains'
# own provenance of the same image, an SBOM) are left to their own policies.
statements contains statement if {
	some statement in _all_statements
	statement.predicate.buildDefinition.buildType == build_type
}

# ---------------------------------------------------------------------------
# Rule data, with Conforma's key names where a stock rule has the same data.
# ---------------------------------------------------------------------------

_rule_data(key) := value if {
	value := data.rule_data[key]
} else := []

_flag(key) if data.rule_data[key] == true

_result(code, msg, term) := {"code": sprintf("attest_step.%s", [code]), "msg": msg, "term": term}

# ---------------------------------------------------------------------------
# attestation_found (Conforma: attestation_type.pipelinerun_attestation_found)
# ---------------------------------------------------------------------------

deny contains result if {
	count(statements) == 0
	result := _result(
		"attestation_found",
		sprintf("No attestation of build type %s found", [build_type]),
		build_type,
	)
}

# ---------------------------------------------------------------------------
# known_attestation_type (Conforma: attestation_type.known_attestation_type)
# ---------------------------------------------------------------------------

deny contains result if {
	some statement in statements
	not statement._type in _rule_data("known_attestation_types")
	result := _result(
		"known_attestation_type",
		sprintf("Unknown attestation type %q", [statement._type]),
		statement._type,
	)
}

# ---------------------------------------------------------------------------
# attestation_predicate_type_accepted
# (Conforma: slsa_provenance_available.attestation_predicate_type_accepted)
# ---------------------------------------------------------------------------

deny contains result if {
	some statement in statements
	allowed := _rule_data("allowed_predicate_types")
	not statement.predicateType in allowed
	result := _result(
		"attestation_predicate_type_accepted",
		sprintf(
			"Attestation predicate type %q is not an expected type (%s)",
			[statement.predicateType, concat(", ", allowed)],
		),
		statement.predicateType,
	)
}

# ---------------------------------------------------------------------------
# slsa_builder_id_found, slsa_builder_id_accepted
# (Conforma: slsa_build_build_service.*)
# ---------------------------------------------------------------------------

deny contains result if {
	some statement in statements
	not statement.predicate.runDetails.builder.id
	result := _result("slsa_builder_id_found", "Builder ID not set in attestation", "")
}

deny contains result if {
	some statement in statements
	builder_id := statement.predicate.runDetails.builder.id
	not builder_id in _rule_data("allowed_builder_ids")
	result := _result(
		"slsa_builder_id_accepted",
		sprintf("Builder ID %q is not in allowed_builder_ids", [builder_id]),
		builder_id,
	)
}

# ---------------------------------------------------------------------------
# Source: git dependencies among resolvedDependencies (and builderDependencies),
# as `attest --git-url/--git-commit` (Chains' CHAINS-GIT_*) records them.
# source_found (Conforma: slsa_source_version_controlled.materials_format_okay),
# source_commit_is_git_sha (… .materials_include_git_sha),
# source_accepted (no stock rule: an allow-list of repositories).
# ---------------------------------------------------------------------------

_dependencies(statement) := array.concat(
	object.get(statement, ["predicate", "buildDefinition", "resolvedDependencies"], []),
	object.get(statement, ["predicate", "runDetails", "builder", "builderDependencies"], []),
)

_is_git(uri) if startswith(uri, "git+")

_is_git(uri) if startswith(uri, "git://")

_is_git(uri) if startswith(uri, "ssh://")

_is_git(uri) if endswith(uri, ".git")

_git_sources(statement) := [dep |
	some dep in _dependencies(statement)
	is_string(dep.uri)
	_is_git(dep.uri)
]

# git+https://Host/org/repo.git@ref -> https://host/org/repo (as attest_step.policy does)
normalize_repo(uri) := repo if {
	text := trim_prefix(trim_space(uri), "git+")
	parts := split(text, "://")
	count(parts) > 1
	repo := trim_right(concat("", [parts[0], "://", _host_and_path(concat("://", array.slice(parts, 1, count(parts))))]), "/")
} else := repo if {
	text := trim_prefix(trim_space(uri), "git+")
	repo := trim_right(_host_and_path(text), "/")
}

_host_and_path(rest) := lower(rest) if {
	not contains(rest, "/")
} else := concat("/", [lower(host), path]) if {
	i := indexof(rest, "/")
	host := substring(rest, 0, i)
	raw := substring(rest, i + 1, -1)
	path := trim_suffix(trim_right(split(raw, "@")[0], "/"), ".git")
}

deny contains result if {
	some statement in statements
	count(_git_sources(statement)) == 0
	result := _result(
		"source_found",
		"No git source (git+URL with a sha1 commit) among resolvedDependencies",
		"",
	)
}

deny contains result if {
	some statement in statements
	some dep in _git_sources(statement)
	commit := object.get(dep, ["digest", "sha1"], "")
	not regex.match(`^[0-9a-f]{40}$`, commit)
	result := _result(
		"source_commit_is_git_sha",
		sprintf("Source %q has no git commit sha1 (got %q)", [dep.uri, commit]),
		dep.uri,
	)
}

deny contains result if {
	some statement in statements
	allowed := {normalize_repo(repo) | some repo in _rule_data("allowed_source_repos")}
	some dep in _git_sources(statement)
	not normalize_repo(dep.uri) in allowed
	result := _result(
		"source_accepted",
		sprintf("Source %q is not in allowed_source_repos", [dep.uri]),
		dep.uri,
	)
}

# ---------------------------------------------------------------------------
# Build-tool images (no stock rule; Conforma's base_image_registries is an
# allow-list of registries, this is a deny-list). An entry is
#   sha256:HEX         any dependency with this sha256,
#   NAME@ALG:HEX       this name with this digest,
#   NAME               a name prefix (oci://, docker://, pkg:oci/ ignored).
# ---------------------------------------------------------------------------

_image_name(uri) := trim_prefix(trim_prefix(trim_prefix(uri, "oci://"), "docker://"), "pkg:oci/")

_dep_name(dep) := _image_name(dep.uri) if is_string(dep.uri)

else := _image_name(dep.name) if is_string(dep.name)

else := ""

_denied(entry, dep) if {
	startswith(entry, "sha256:")
	not contains(entry, "/")
	object.get(dep, ["digest", "sha256"], null) == trim_prefix(entry, "sha256:")
}

_denied(entry, dep) if {
	not _bare_digest(entry)
	contains(entry, "@")
	i := indexof(entry, "@")
	name := _image_name(substring(entry, 0, i))
	alg_hex := split(substring(entry, i + 1, -1), ":")
	count(alg_hex) == 2
	split(_dep_name(dep), "@")[0] == name
	object.get(dep, ["digest", alg_hex[0]], null) == alg_hex[1]
}

_denied(entry, dep) if {
	not _bare_digest(entry)
	not contains(entry, "@")
	name := _dep_name(dep)
	name != ""
	startswith(name, _image_name(entry))
}

_bare_digest(entry) if {
	startswith(entry, "sha256:")
	not contains(entry, "/")
}

deny contains result if {
	some statement in statements
	some entry in _rule_data("denied_build_tool_images")
	some dep in _dependencies(statement)
	_denied(entry, dep)
	result := _result(
		"build_tool_image_not_denied",
		sprintf("Dependency %q matches denied_build_tool_images entry %q", [_dep_name(dep), entry]),
		entry,
	)
}

# ---------------------------------------------------------------------------
# Hermetic (Conforma: hermetic_task.hermetic, which reads the build Task's
# HERMETIC param). Here: the network-isolation byproducts attest-step records,
# one per step, with the summary in annotations (docs/hermetic.md, section 4).
# The attest step's own record (role attest) is not a build step.
# ---------------------------------------------------------------------------

_isolation_records(statement) := [record |
	some record in object.get(statement, ["predicate", "runDetails", "byproducts"], [])
	record.mediaType == isolation_media_type
	object.get(record, ["annotations", "role"], "") != "attest"
]

_step(record) := record.annotations.step if is_string(record.annotations.step)

else := regex.replace(object.get(record, "name", "?"), `^.*/`, "")

_require_hermetic if _flag("require_hermetic")

_require_hermetic if _flag("require_observed_isolation")

_require_hermetic if count(_rule_data("required_hermetic_steps")) > 0

deny contains result if {
	_require_hermetic
	some statement in statements
	count(_isolation_records(statement)) == 0
	result := _result(
		"hermetic",
		"The provenance has no network-isolation record of a build step",
		"",
	)
}

deny contains result if {
	_flag("require_hermetic")
	some statement in statements
	some record in _isolation_records(statement)
	object.get(record, ["annotations", "hermetic"], false) != true
	step := _step(record)
	result := _result(
		"hermetic",
		sprintf(
			"Step %q is not recorded as network-isolated (status %q)",
			[step, object.get(record, ["annotations", "status"], "missing")],
		),
		step,
	)
}

deny contains result if {
	_flag("require_observed_isolation")
	some statement in statements
	some record in _isolation_records(statement)
	object.get(record, ["annotations", "observedIsolation"], false) != true
	step := _step(record)
	result := _result(
		"isolation_observed",
		sprintf("Step %q: no isolation observed by attest-step's own code (only declared or reported)", [step]),
		step,
	)
}

deny contains result if {
	some statement in statements
	some step in _rule_data("required_hermetic_steps")
	not _hermetic_record_of(statement, step)
	result := _result(
		"hermetic_step_recorded",
		sprintf("Step %q has no hermetic network-isolation record", [step]),
		step,
	)
}

_hermetic_record_of(statement, step) if {
	some record in _isolation_records(statement)
	_step(record) == step
	record.annotations.hermetic == true
}

# The summary must agree with the full record it summarizes, and the digest
# with the content: otherwise the annotations could say what the record does not.
deny contains result if {
	_require_hermetic
	some statement in statements
	some record in _isolation_records(statement)
	not _record_consistent(record)
	step := _step(record)
	result := _result(
		"isolation_record_consistent",
		sprintf("Step %q: network-isolation record content, digest and summary disagree", [step]),
		step,
	)
}

_record_consistent(record) if {
	raw := base64.decode(record.content)
	crypto.sha256(raw) == record.digest.sha256
	content := json.unmarshal(raw)
	content.hermetic == record.annotations.hermetic
}

# ---------------------------------------------------------------------------
# Rule data checks (Conforma: *_provided): an empty allow-list would deny
# everything with a confusing message, so say what is missing instead.
# ---------------------------------------------------------------------------

deny contains result if {
	some key in ["known_attestation_types", "allowed_predicate_types", "allowed_builder_ids", "allowed_source_repos"]
	not _non_empty_strings(_rule_data_raw(key))
	result := _result(
		"rule_data_provided",
		sprintf("Rule data %s is missing or not a non-empty list of strings", [key]),
		key,
	)
}

_rule_data_raw(key) := value if {
	value := data.rule_data[key]
} else := null

_non_empty_strings(value) if {
	is_array(value)
	count(value) > 0
	every item in value {
		is_string(item)
	}
}
