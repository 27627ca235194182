module github.com/attest-step/attest-step/hack/tekton-render

go 1.25
