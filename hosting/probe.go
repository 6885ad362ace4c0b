package hosting

import (
	"io"
	"slices"

	"github.com/govmbus/govmbus/savedstate"
)

// ProbeArgs are the arguments with which an exec servicing's pre-flight
// runs the binary it is about to exec, when that binary is not the one
// running (an upgrade), to ask which saved-state kinds it reads
// (docs/SAVED_STATE.md, Compatibility). `vmbus host --state-kinds` is the
// answer of govmbus's own command line; a program that embeds a Daemon
// answers with AnswerProbe. A binary that does not answer is taken to read
// the first release's kinds only.
var ProbeArgs = []string{"host", "--state-kinds"}

// AnswerProbe answers the pre-flight's probe: if args (os.Args[1:]) are
// ProbeArgs, it writes what this build reads to w (os.Stdout) and returns
// true, and the program should exit 0 at once; otherwise it does nothing
// and returns false. Call it first thing in main, before flags are parsed
// and before anything starts: the probe must not start a second daemon.
func AnswerProbe(args []string, w io.Writer) (bool, error) {
	if !slices.Equal(args, ProbeArgs) {
		return false, nil
	}
	_, err := w.Write(savedstate.Supported().AppendText(nil, true))
	return true, err
}
