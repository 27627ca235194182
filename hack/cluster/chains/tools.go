//go:build tools

// Package tools records the Tekton Chains command that ko builds, so that go.sum covers it.
package tools

import (
	_ "github.com/tektoncd/chains/cmd/controller"
)
