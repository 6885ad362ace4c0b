package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/transport"
)

// newHostCmd is `vmbus host --socket PATH [--device echo|blk=FILE ...]`:
// the host daemon. It runs until SIGINT or SIGTERM, then rescinds every
// channel, waits briefly for the guests to release them and removes the
// socket.
func newHostCmd() *cobra.Command {
	var socket string
	var devices []string
	cmd := &cobra.Command{
		Use:   "host --socket PATH [--device echo|blk=FILE|blk-ro=FILE ...]",
		Short: "Run the VMBus host daemon, offering devices to guests",
		Long: `Run the VMBus host daemon. Every guest that connects is offered each
--device as its own channel, served through the KMCL channel API:
  echo          answers every packet (device/echo)
  blk=FILE      serves FILE as a disk (device/blk, docs/BLK.md)
  blk-ro=FILE   serves FILE as a read-only disk`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				return usageErrorf("host: --socket is required")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			devs, err := parseDevices(devices, log)
			if err != nil {
				return err
			}
			defer devs.close()
			l, err := transport.Listen(socket)
			if err != nil {
				return failuref("host: %v", err)
			}
			h := host.New(host.Config{Logger: log, OnGuest: devs.offer})
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- h.Serve(l) }()
			log.Info("host listening", "socket", socket, "devices", len(devs.specs))
			select {
			case <-ctx.Done():
			case err := <-served:
				h.Close()
				devs.wait()
				return failuref("host: %v", err)
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown", "err", err)
			}
			<-served
			devs.wait()
			os.Remove(socket) //nolint:errcheck // Serve's listener close removes it already
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path to listen on")
	cmd.Flags().StringSliceVar(&devices, "device", nil, "device to offer: echo, blk=FILE, blk-ro=FILE; repeatable")
	return cmd
}

// deviceSpec is one --device.
type deviceSpec struct {
	kind string // "echo" or "blk"
	file *os.File
	size int64
	ro   bool
}

// hostDevices offers the --device list to each guest and closes the
// guest's servers when it leaves.
type hostDevices struct {
	specs []deviceSpec
	log   *slog.Logger
	wg    sync.WaitGroup
}

// parseDevices checks the --device values and opens the disk files; a bad
// value or an unopenable file is bad input (exit 2).
func parseDevices(values []string, log *slog.Logger) (*hostDevices, error) {
	d := &hostDevices{log: log}
	blks := 0
	for _, v := range values {
		kind, file, hasFile := strings.Cut(v, "=")
		switch {
		case v == "echo":
			d.specs = append(d.specs, deviceSpec{kind: "echo"})
			continue
		case (kind == "blk" || kind == "blk-ro") && hasFile && file != "":
		default:
			d.close()
			return nil, usageErrorf("host: unknown device %q (want echo, blk=FILE or blk-ro=FILE)", v)
		}
		if blks++; blks > 1 {
			d.close()
			return nil, usageErrorf("host: one blk device at most")
		}
		ro := kind == "blk-ro"
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile(file, flag, 0)
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
				err = fmt.Errorf("%s is not a regular file", file)
			}
			if err == nil {
				d.specs = append(d.specs, deviceSpec{kind: "blk", file: f, size: st.Size(), ro: ro})
				continue
			}
			f.Close()
		}
		d.close()
		return nil, usageErrorf("host: device %s: %v", v, err)
	}
	return d, nil
}

// offer is host.Config.OnGuest: one server per device for guest g, closed
// once g is gone.
func (d *hostDevices) offer(g *host.Guest) {
	var closers []func() error
	for _, s := range d.specs {
		var err error
		switch s.kind {
		case "echo":
			var srv *echo.Server
			if srv, err = echo.NewServer(g, echo.ServerConfig{}); err == nil {
				closers = append(closers, srv.Close)
			}
		case "blk":
			var srv *blk.Server
			if srv, err = blk.NewServer(g, s.file, blk.ServerConfig{Size: s.size, ReadOnly: s.ro, Logger: d.log}); err == nil {
				closers = append(closers, srv.Close)
			}
		}
		if err != nil {
			d.log.Warn("offer", "guest", g.ID(), "device", s.kind, "err", err)
		}
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-g.Done()
		for _, c := range closers {
			c() //nolint:errcheck // the guest is gone; nothing to tell
		}
	}()
}

// wait waits until every guest's servers are closed.
func (d *hostDevices) wait() { d.wg.Wait() }

func (d *hostDevices) close() {
	for _, s := range d.specs {
		if s.file != nil {
			s.file.Close()
		}
	}
}
