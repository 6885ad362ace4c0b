package stdkinds

import (
	"log/slog"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
)

// The integration components (device/ic, docs/ICS.md), one kind each:
// `--device heartbeat`, `shutdown`, `timesync`, `kvp`, and `--device ic`
// for all four. Each is offered once, with Hyper-V's interface and
// instance (a guest has one of each).
var (
	Heartbeat = icKind("heartbeat", ic.ServiceHeartbeat)
	Shutdown  = icKind("shutdown", ic.ServiceShutdown)
	TimeSync  = icKind("timesync", ic.ServiceTimeSync)
	KVP       = icKind("kvp", ic.ServiceKVP)
	// IC is the shorthand for the four, in the order above.
	IC = hosting.Kind{Name: "ic", Expand: []string{"heartbeat", "shutdown", "timesync", "kvp"}}
)

func icKind(name string, svc ic.Service) hosting.Kind {
	return hosting.Kind{Name: name, Max: 1, Open: func(_ string, _ int, log *slog.Logger) (hosting.Spec, error) {
		return icSpec{svc: svc, cfg: ic.Config{Logger: log}}, nil
	}}
}

// icSpec is one service, offered to every guest.
type icSpec struct {
	svc ic.Service
	cfg ic.Config
}

func (s icSpec) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceType: s.svc.InterfaceType(), InterfaceInstance: s.svc.InterfaceInstance()}
}

func (s icSpec) New(g *host.Guest) (hosting.Device, error) { return s.open(g, nil, false) }

func (s icSpec) Restore(g *host.Guest, chunks [][]byte) (hosting.Device, error) {
	return s.open(g, chunks, true)
}

func (s icSpec) open(g *host.Guest, chunks [][]byte, restore bool) (hosting.Device, error) {
	switch s.svc {
	case ic.ServiceHeartbeat:
		cfg := ic.HeartbeatConfig{Config: s.cfg}
		if restore {
			return device(ic.RestorePausedHeartbeatServer(g, cfg, chunks))
		}
		return device(ic.NewHeartbeatServer(g, cfg))
	case ic.ServiceShutdown:
		if restore {
			return device(ic.RestorePausedShutdownServer(g, s.cfg, chunks))
		}
		return device(ic.NewShutdownServer(g, s.cfg))
	case ic.ServiceTimeSync:
		cfg := ic.TimeSyncConfig{Config: s.cfg}
		if restore {
			return device(ic.RestorePausedTimeSyncServer(g, cfg, chunks))
		}
		return device(ic.NewTimeSyncServer(g, cfg))
	default:
		if restore {
			return device(ic.RestorePausedKVPServer(g, s.cfg, chunks))
		}
		return device(ic.NewKVPServer(g, s.cfg))
	}
}

func (icSpec) Close() error { return nil }
