package stdkinds

import (
	"encoding/binary"
	"log/slog"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/protocol"
)

// MaxEcho bounds the echo devices of a daemon: each costs every guest a
// pair of rings and the host a server per guest.
const MaxEcho = 64

// Echo is the echo device (device/echo), `--device echo`: it answers
// every packet. Each one more is one more channel, on the next instance.
var Echo = hosting.Kind{
	Name: "echo",
	Max:  MaxEcho,
	Open: func(_ string, n int, _ *slog.Logger) (hosting.Spec, error) {
		return echoSpec{cfg: echo.ServerConfig{Instance: EchoInstance(n)}}, nil
	},
}

// EchoInstance is the instance of the n-th echo channel, counting from 1:
// 00000000-0000-0000-0000-00000000000n. The first is echo.InterfaceInstance,
// so a host with one echo device offers what it always did.
func EchoInstance(n int) protocol.GUID {
	var g protocol.GUID
	binary.BigEndian.PutUint32(g[12:], uint32(n))
	return g
}

type echoSpec struct{ cfg echo.ServerConfig }

func (s echoSpec) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceType: echo.InterfaceType, InterfaceInstance: s.cfg.Instance}
}

func (s echoSpec) New(g *host.Guest) (hosting.Device, error) { return device(echo.NewServer(g, s.cfg)) }

func (s echoSpec) Restore(g *host.Guest, chunks [][]byte) (hosting.Device, error) {
	return device(echo.RestorePausedServer(g, s.cfg, chunks))
}

func (echoSpec) Close() error { return nil }
