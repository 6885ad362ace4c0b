//go:build !(linux && amd64)

package servicing

import (
	"errors"
	"time"
)

// startKeeper is only implemented on linux/amd64; elsewhere the exec
// tears down the old address space itself.
func startKeeper(time.Duration) (*keeper, error) { return nil, errors.ErrUnsupported }
