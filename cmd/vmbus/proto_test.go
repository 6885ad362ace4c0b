package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// runCaptured runs the CLI with os.Stdout and os.Stderr redirected, so it
// works whichever way run wires its writers. Not for parallel tests.
func runCaptured(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	capture := func(f **os.File) (restore func() string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *f
		*f = w
		done := make(chan string)
		go func() {
			var b bytes.Buffer
			_, _ = io.Copy(&b, r)
			r.Close()
			done <- b.String()
		}()
		return func() string {
			*f = old
			w.Close()
			return <-done
		}
	}
	restoreOut := capture(&os.Stdout)
	restoreErr := capture(&os.Stderr)
	code = run(args)
	return code, restoreOut(), restoreErr()
}

// An OfferChannel for channel 1: network interface type, pipe-free, monitor 0.
const offerHex = "01000000 00000000" +
	"635161f83edfc546913ff2d2f965ed0e" + // interface type
	"00112233445566778899aabbccddeeff" + // instance (wire order)
	"0000000000000000 0000000000000000" + // reserved
	"0100 0000" + // flags, mmio
	"" // user data etc. appended in the test

func offer() string {
	s := strings.ReplaceAll(offerHex, " ", "")
	s += strings.Repeat("00", 120)         // user defined
	s += "0000" + "0000"                   // subchannel index, mmio optional
	s += "01000000" + "00" + "01" + "0000" // channel id 1, monitor 0, allocated
	s += "01200000"                        // connection id 0x2001
	return s
}

func TestProtoDecodeHuman(t *testing.T) {
	code, out, errOut := runCaptured(t, "proto", "decode", offer())
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"OfferChannel (type 1, 196 bytes)",
		"interface_type                 f8615163-df3e-46c5-913f-f2d2f965ed0e",
		"flags                          0x1 (enumerate-device-interface)",
		"channel_id                     1\n",
		"monitor_allocated              true",
		"connection_id                  8193 (0x2001)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestProtoDecodeJSON(t *testing.T) {
	// A Copper VersionResponse, pasted as a spaced hex dump over several args.
	code, out, errOut := runCaptured(t, "proto", "decode", "--json", "0f000000 00000000", "01 00 0000 04000000", "24000000")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got struct {
		Type   string `json:"type"`
		TypeID int    `json:"type_id"`
		Size   int    `json:"size"`
		Fields struct {
			VersionSupported bool   `json:"version_supported"`
			ConnID           uint32 `json:"version_or_connection_id"`
			HasFeatures      bool   `json:"has_features"`
			Features         uint32 `json:"supported_features"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if got.Type != "VersionResponse" || got.TypeID != 15 || got.Size != 20 || !got.Fields.VersionSupported ||
		got.Fields.ConnID != 4 || !got.Fields.HasFeatures || got.Fields.Features != 0x24 {
		t.Fatalf("%+v", got)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("not one JSON line: %q", out)
	}
}

func TestProtoDecodeRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"bad hex", []string{"proto", "decode", "0g"}, "bad hex"},
		{"odd digits", []string{"proto", "decode", "030"}, "bad hex"},
		{"short", []string{"proto", "decode", "0f000000 00000000 01"}, "VersionResponse message of 9 bytes: message too short"},
		{"unknown type", []string{"proto", "decode", "1e000000 00000000"}, "MessageType(30) message of 8 bytes: unknown message type"},
		{"wrong form", []string{"proto", "decode", "0f000000 00000000 0100000004000000 0000"}, "want 16, 20 or 40"},
		{"too long", []string{"proto", "decode", strings.Repeat("00", 241)}, "longer than 240 bytes"},
		{"no args", []string{"proto", "decode"}, "requires at least 1 arg"},
		{"no subcommand", []string{"proto"}, "want a subcommand: decode"},
		{"unknown subcommand", []string{"proto", "encode"}, `unknown subcommand "encode"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCaptured(t, c.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("stdout %q, stderr %q; want one line with %q", out, errOut, c.want)
			}
		})
	}
}
