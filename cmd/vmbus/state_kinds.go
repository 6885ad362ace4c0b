package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/govmbus/govmbus/savedstate"
)

// kindJSON is one record kind as the JSON output shows it.
type kindJSON struct {
	Kind string `json:"kind"` // 0xNNNN
	Name string `json:"name"`
}

func kindsJSON(kinds []savedstate.Kind) []kindJSON {
	out := make([]kindJSON, len(kinds))
	for i, k := range kinds {
		out[i] = kindJSON{Kind: fmt.Sprintf("%#04x", uint16(k)), Name: savedstate.KindName(k)}
	}
	return out
}

// printStateKinds is `vmbus host --state-kinds [--json]`: what this build
// reads. The text form is savedstate.Support's, which a servicing host
// parses; --json is for people and scripts.
func printStateKinds(w io.Writer, asJSON bool) error {
	s := savedstate.Supported()
	if !asJSON {
		_, err := w.Write(s.AppendText(nil, true))
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Formats []uint16   `json:"formats"`
		Kinds   []kindJSON `json:"kinds"`
	}{s.Formats, kindsJSON(s.Kinds)})
}
