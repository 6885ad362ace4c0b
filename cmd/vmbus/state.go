package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/savedstate"

	// The layers that save state register their record kinds at init,
	// so that inspect decodes them.
	_ "github.com/govmbus/govmbus/channel"
	_ "github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
)

func newStateCmd() *cobra.Command {
	return groupCmd("state", "Inspect saved channel and bus state", "", newStateInspectCmd())
}

// stateJSON is `vmbus state inspect --json`.
type stateJSON struct {
	Format   uint16       `json:"format"`
	Kinds    []kindJSON   `json:"kinds"` // every kind the state uses, nested states' too
	Scope    string       `json:"scope"`
	SaveID   string       `json:"save_id"`
	Identity string       `json:"identity"`
	Records  []recordJSON `json:"records"`
	Bytes    int          `json:"bytes"`
}

type recordJSON struct {
	Seq      int    `json:"seq"`
	Kind     string `json:"kind"`
	Critical bool   `json:"critical"`
	Length   int    `json:"length"`
	Body     any    `json:"body"`
}

func newStateInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE [--json]",
		Short: "Check and print a saved state: its Begin record and every record",
		Long: `Check a saved state (docs/SAVED_STATE.md) as a restore would — magic,
versions, checksums, sequence, save id, count and digest — and print it.
Records of known kinds are decoded; others are shown as hex. First come
the format version and every record kind the state uses, those of the bus
and channel states a host state carries included: what a build must read
to restore it (compare "vmbus host --state-kinds"). A state that breaks a
rule exits 2 with one line naming the record, offset and rule.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readLimited(args[0], 256<<20)
			if err != nil {
				return usageError(err)
			}
			begin, recs, err := savedstate.Parse(data, savedstate.Limits{})
			if err != nil {
				return usageError(err)
			}
			_, used, err := hosting.StateUses(data)
			if err != nil {
				return usageError(err)
			}
			s := stateJSON{
				Format:   begin.Version,
				Kinds:    kindsJSON(used),
				Scope:    begin.Scope.String(),
				SaveID:   fmt.Sprintf("%#016x", begin.SaveID),
				Identity: hex.EncodeToString(begin.Identity),
				Bytes:    len(data),
				Records:  make([]recordJSON, 0, len(recs)),
			}
			for i, r := range recs {
				rj := recordJSON{Seq: i + 1, Kind: savedstate.KindName(r.Kind), Critical: r.Critical(), Length: len(r.Body)}
				rj.Body = hex.EncodeToString(r.Body)
				if info, ok := savedstate.LookupKind(r.Kind); ok && info.Describe != nil {
					v, err := info.Describe(r.Body)
					if err != nil {
						return usageErrorf("record %d (%s): %v", i+1, rj.Kind, err)
					}
					rj.Body = v
				}
				s.Records = append(s.Records, rj)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printState(cmd.OutOrStdout(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func printState(w io.Writer, s stateJSON) {
	fmt.Fprintf(w, "saved state: %s scope, %d bytes, %d records, save id %s\n", s.Scope, s.Bytes, len(s.Records)+2, s.SaveID)
	fmt.Fprintf(w, "identity     %s\n", s.Identity)
	kinds := make([]string, len(s.Kinds))
	for i, k := range s.Kinds {
		kinds[i] = k.Kind + " " + k.Name
	}
	fmt.Fprintf(w, "format       %d\n", s.Format)
	fmt.Fprintf(w, "kinds        %s\n", strings.Join(kinds, ", "))
	for _, r := range s.Records {
		crit := ""
		if r.Critical {
			crit = " critical"
		}
		body, err := json.Marshal(r.Body)
		if err != nil {
			body = []byte(fmt.Sprint(r.Body))
		}
		fmt.Fprintf(w, "%4d %-20s%s %d bytes %s\n", r.Seq, r.Kind, crit, r.Length, body)
	}
}

// readLimited reads a regular file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	// O_NONBLOCK: the open of a FIFO waits for a writer without it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a saved state may have", path, st.Size(), max)
	}
	return io.ReadAll(io.LimitReader(f, max))
}
