//go:build tools

// Package tools records the tkn command build.sh builds, so that go.sum covers it.
package tools

import (
	_ "github.com/tektoncd/cli/cmd/tkn"
)
