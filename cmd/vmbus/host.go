package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/transport"
)

// newHostCmd is `vmbus host --socket PATH [--device echo ...]`: the host
// daemon. It runs until SIGINT or SIGTERM, then rescinds every channel,
// waits briefly for the guests to release them and removes the socket.
func newHostCmd() *cobra.Command {
	var socket string
	var devices []string
	cmd := &cobra.Command{
		Use:   "host --socket PATH [--device echo ...]",
		Short: "Run the VMBus host daemon, offering devices to guests",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				return usageErrorf("host: --socket is required")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			var devs []host.Device
			for _, d := range devices {
				switch d {
				case "echo":
					devs = append(devs, echo.New(log))
				default:
					return usageErrorf("host: unknown device %q (want echo)", d)
				}
			}
			l, err := transport.Listen(socket)
			if err != nil {
				return failuref("host: %v", err)
			}
			h := host.New(host.Config{Devices: devs, Logger: log})
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- h.Serve(l) }()
			log.Info("host listening", "socket", socket, "devices", len(devs))
			select {
			case <-ctx.Done():
			case err := <-served:
				h.Close()
				return failuref("host: %v", err)
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown", "err", err)
			}
			<-served
			os.Remove(socket) //nolint:errcheck // Serve's listener close removes it already
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path to listen on")
	cmd.Flags().StringSliceVar(&devices, "device", nil, "device to offer (echo); repeatable")
	return cmd
}
