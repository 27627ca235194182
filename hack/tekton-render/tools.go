//go:build tools

// Package tools pins Tekton's step entrypoint (and workingdirinit), which the local executor runs as the
// wrapper of every step (go build github.com/tektoncd/pipeline/cmd/entrypoint).
package tools

import (
	_ "github.com/tektoncd/pipeline/cmd/entrypoint"
	_ "github.com/tektoncd/pipeline/cmd/workingdirinit"
)
