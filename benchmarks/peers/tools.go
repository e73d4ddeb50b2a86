//go:build tools

// Package peers pins the peer NetworkPolicy tools measured next to kgents-pipeline's engine.
// The blank import keeps cyclonus' own command in go.mod/go.sum so that `go build` can build it.
package peers

import (
	_ "github.com/mattfenwick/cyclonus/cmd/cyclonus"
)
