package hvsock

import (
	"fmt"
	"os"
	"os/exec"
)

// Exec runs cmd with c as its stdin and stdout (Splice: c's FIN is the
// end of its stdin, the end of its stdout c's CloseWrite) and returns
// once the command and both directions have ended. Its stderr is this
// process's.
func Exec(c HalfConn, cmd *exec.Cmd) error {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		c.Close() //nolint:errcheck // nothing was relayed
		return fmt.Errorf("hvsock: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		in.Close()
		c.Close() //nolint:errcheck // nothing was relayed
		return fmt.Errorf("hvsock: %w", err)
	}
	err = Splice(c, Join(out, in))
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	return err
}
