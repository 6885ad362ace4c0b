package stdkinds

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
)

// Blk is the disk device (device/blk), `--device blk=FILE`: it serves the
// regular file FILE as a disk. One blk device at most, read-only or not.
var Blk = hosting.Kind{Name: "blk", Arg: "FILE", Group: "blk", Max: 1, Open: openBlk(false)}

// BlkReadOnly is `--device blk-ro=FILE`: FILE as a read-only disk.
var BlkReadOnly = hosting.Kind{Name: "blk-ro", Arg: "FILE", Group: "blk", Max: 1, Open: openBlk(true)}

func openBlk(ro bool) func(string, int, *slog.Logger) (hosting.Spec, error) {
	return func(file string, _ int, log *slog.Logger) (hosting.Spec, error) {
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(file, flag, 0)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", file)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return &blkSpec{f: f, cfg: blk.ServerConfig{Size: st.Size(), ReadOnly: ro, Logger: log}}, nil
	}
}

// blkSpec is one disk file, served to every guest (a blk.Backend may
// serve several).
type blkSpec struct {
	f   *os.File
	cfg blk.ServerConfig
}

func (s *blkSpec) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceType: blk.InterfaceType, InterfaceInstance: blk.InterfaceInstance}
}

func (s *blkSpec) New(g *host.Guest) (hosting.Device, error) {
	return device(blk.NewServer(g, s.f, s.cfg))
}

func (s *blkSpec) Restore(g *host.Guest, chunks [][]byte) (hosting.Device, error) {
	return device(blk.RestorePausedServer(g, s.f, s.cfg, chunks))
}

func (s *blkSpec) Close() error { return s.f.Close() }
