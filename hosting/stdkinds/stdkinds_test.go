package stdkinds

import (
	"testing"

	"github.com/govmbus/govmbus/device/echo"
)

// TestEchoInstance: the first echo device keeps the instance a host with
// one always offered; the others follow it.
func TestEchoInstance(t *testing.T) {
	if EchoInstance(1) != echo.InterfaceInstance {
		t.Errorf("EchoInstance(1) = %v, want %v", EchoInstance(1), echo.InterfaceInstance)
	}
	if got := EchoInstance(10).String(); got != "00000000-0000-0000-0000-00000000000a" {
		t.Errorf("EchoInstance(10) = %s", got)
	}
}
