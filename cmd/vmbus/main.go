package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line args and returns the process exit status.
func run(args []string) int { return runWith(args, os.Stdout, os.Stderr) }

// runWith is run with the output streams given, so tests can drive the CLI
// in-process.
func runWith(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "vmbus: %v\n", err)
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
	// help for a command that does not exist is bad usage, as the
	// command itself would be (cobra's own says so and succeeds).
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				return usageErrorf("help: unknown command %q", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageErrorf("%v", err)
	})
	// One line per command group; each group lives in its own file.
	root.AddCommand(
		newRingCmd(),
		newBenchCmd(),
		newProtoCmd(),
		newHostCmd(),
		newGuestCmd(),
		newStateCmd(),
		newDemoCmd(),
		newSoakCmd(),
		newICCmd(),
		newAdminCmd(),
		newCaptureCmd(),
		newTopCmd(),
	)
	return root
}

// groupCmd is a command that only holds subcommands. Run without one, or
// with one it does not know, it is bad usage (exit 2) rather than cobra's
// default of printing help and succeeding.
func groupCmd(use, short, long string, children ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			if len(args) == 0 {
				return usageErrorf("%s: want a subcommand: %s", cmd.Name(), strings.Join(names, ", "))
			}
			return usageErrorf("%s: unknown subcommand %q (want %s)", cmd.Name(), args[0], strings.Join(names, ", "))
		},
	}
	cmd.AddCommand(children...)
	return cmd
}

// exactArgs is cobra.ExactArgs with an error that names what is missing,
// reported as bad usage.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == n:
		case len(args) == 0:
			return usageErrorf("%s: want %s, got none", cmd.Name(), names)
		default:
			return usageErrorf("%s: want %s, got %q", cmd.Name(), names, args)
		}
		return nil
	}
}

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// notSocket is a usage error if path exists and is not a socket: a
// connect to it would only say "connection refused". A path that does not
// exist is left to the connect, whose error says so.
func notSocket(what, path string) error {
	if st, err := os.Stat(path); err == nil && st.Mode().Type() != fs.ModeSocket {
		return usageErrorf("%s %s: it exists and is not a socket", what, path)
	}
	return nil
}
