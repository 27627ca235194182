//go:build tools

// Package tools records the Sigstore policy-controller command that ko builds (its admission
// webhook), so that go.sum covers it.
package tools

import (
	_ "github.com/sigstore/policy-controller/cmd/webhook"
)
