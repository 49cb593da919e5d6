//go:build tools

// Package tools pins the toxiproxy server that the fault campaign runs
// between kubefand and the API server (scripts/faults builds it with
// `go build` into the kubefan cache).
package tools

import (
	_ "github.com/Shopify/toxiproxy/v2/cmd/server"
)
