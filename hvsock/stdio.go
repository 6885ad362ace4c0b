package hvsock

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// Stdio is nc on a guest (vmbus guest hvsock): this process's stdin and
// stdout as one connection, dialed to the host's service or accepted
// from it.
type Stdio struct {
	Listen  bool          // accept the host's connections instead of dialing
	Service protocol.GUID // the service dialed or listened on
	// Exec, with Listen, runs `sh -c Exec` for each connection, with the
	// connection as its stdin and stdout (Exec), instead of taking one
	// connection on this process's stdin and stdout.
	Exec string
}

// ParseStdio reads the command line's mode (dial or listen), service
// (ParseService) and --exec; errors wrap ErrSyntax.
func ParseStdio(mode, service, execCmd string) (Stdio, error) {
	id, err := ParseService(service)
	if err != nil {
		return Stdio{}, err
	}
	if (mode != "dial" && mode != "listen") || (mode == "dial" && execCmd != "") {
		return Stdio{}, fmt.Errorf("%w: want dial SERVICE or listen SERVICE [--exec CMD]", ErrSyntax)
	}
	return Stdio{Listen: mode == "listen", Service: id, Exec: execCmd}, nil
}

// Run dials (Dial, 2 s) or listens on cl and splices the connection with
// stdin and stdout: at the end of stdin it half-closes, and it returns
// nil once both directions have ended. With Exec it serves connections
// until the listener fails, and returns once their commands have ended.
// A refusal matches ErrRefused.
func (s Stdio) Run(cl *guest.Client) error {
	var c net.Conn
	var err error
	if !s.Listen {
		c, err = Dial(cl, s.Service)
	} else if l, lerr := Listen(cl, s.Service); lerr != nil {
		err = lerr
	} else {
		defer l.Close()
		// Run returns once every command it started has ended.
		var cmds sync.WaitGroup
		defer cmds.Wait()
		for c, err = l.Accept(); err == nil && s.Exec != ""; c, err = l.Accept() {
			hc := c.(HalfConn)
			cmds.Go(func() {
				Exec(hc, exec.Command("sh", "-c", s.Exec)) //nolint:errcheck // the command's own
			})
		}
	}
	if err != nil {
		return err
	}
	// Pollable, so that a failure's Close ends a Read of stdin; on
	// failure to set it, a failure waits for stdin's next read.
	syscall.SetNonblock(0, true)        //nolint:errcheck // see above
	defer syscall.SetNonblock(0, false) //nolint:errcheck // as it was
	return Splice(c.(HalfConn), Join(os.NewFile(0, "stdin"), os.Stdout))
}
