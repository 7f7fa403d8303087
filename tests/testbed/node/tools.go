//go:build tools

// The node's container runtime, built by ../build-node.sh from the module
// versions pinned in go.mod and go.sum.
package node

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
