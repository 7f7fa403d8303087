//go:build tools

// The bed's NetworkPolicy enforcement: kube-router, run with its network
// policy controller only, built by ../build-kubernetes.sh from the module
// versions pinned in go.mod and go.sum.
package netpol

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
