package main

import (
	"net"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/hvsock"
)

// newGuestHVSockCmd is `vmbus guest --socket PATH hvsock dial|listen
// SERVICE`: Hyper-V sockets from the guest, stdin and stdout as the
// connection, as nc does.
func newGuestHVSockCmd(socket *string) *cobra.Command {
	var execCmd string
	cmd := &cobra.Command{
		Use:   "hvsock dial|listen SERVICE [--exec CMD]",
		Short: "Connect stdin and stdout to an hvsock service of the host (dial) or accept the host's connections (listen)",
		Long: `SERVICE is a GUID or a vsock port number. dial connects to the host's
service; at the end of stdin it half-closes, and it exits 0 once both
directions have ended (1 on a failure or a refusal). listen accepts the
host's connections to SERVICE: one, on stdin and stdout, or with --exec
each in its own "sh -c CMD" with the connection as its stdin and stdout.`,
		Args: exactArgs(2, "dial|listen and a SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			service, err := hvsock.ParseService(args[1])
			if err != nil || (args[0] != "dial" && args[0] != "listen") || (execCmd != "" && args[0] == "dial") {
				return usageErrorf("guest hvsock: want dial SERVICE or listen SERVICE [--exec CMD] (%v)", err)
			}
			cl, err := dialGuest(cmd.Context(), *socket)
			if err != nil {
				return err
			}
			defer cl.Close()
			var c net.Conn
			if args[0] == "dial" {
				c, err = hvsock.Dial(cl, service)
			} else if l, lerr := hvsock.Listen(cl, service); lerr != nil {
				err = lerr
			} else {
				defer l.Close()
				for c, err = l.Accept(); err == nil && execCmd != ""; c, err = l.Accept() {
					go hvsock.Exec(c.(hvsock.HalfConn), exec.Command("sh", "-c", execCmd)) //nolint:errcheck // the command's own
				}
			}
			if err == nil {
				// Pollable, so that a failure's Close ends a Read of stdin.
				syscall.SetNonblock(0, true) //nolint:errcheck // else a failure waits for stdin's next read
				defer syscall.SetNonblock(0, false)
				err = hvsock.Splice(c.(hvsock.HalfConn), hvsock.Join(os.NewFile(0, "stdin"), os.Stdout))
			}
			if err != nil {
				return failuref("guest hvsock: %v", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&execCmd, "exec", "", "with listen: run sh -c CMD for each connection, on its stdin and stdout")
	return cmd
}
