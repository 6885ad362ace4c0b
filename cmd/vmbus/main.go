// Command vmbus is the one command line of govmbus: the host daemon, guest
// tools, the demo, benchmarks and decoders for rings, control messages and
// saved state.
//
// Exit status: 0 success, 1 the job failed, 2 bad usage or bad input. Errors
// are one line on stderr that names what was wrong.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line args and returns the process exit status.
// It is separate from main so tests can drive the CLI in-process.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "vmbus: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Anything cobra itself rejects (unknown command or flag, wrong number
	// of arguments) is bad usage.
	return exitUsage
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vmbus",
		Short:         "Hyper-V VMBus channels in Go: host, guest, rings, control messages, saved state",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErrorf("%v", err)
	})
	root.AddCommand(
	// One line per command group; each group lives in its own file.
	)
	return root
}
