package hosting

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// TestMain makes this test binary a program that embeds a Daemon, as far
// as the pre-flight's probe goes: it answers with AnswerProbe.
func TestMain(m *testing.M) {
	if ok, err := AnswerProbe(os.Args[1:], os.Stdout); ok {
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if socket := os.Getenv(carryRoleVar); socket != "" {
		os.Exit(carryRole(socket))
	}
	os.Exit(m.Run())
}

// TestAnswerProbe: the pre-flight's probe of a program that calls
// AnswerProbe first reads what this build reads; other arguments get no
// answer.
func TestAnswerProbe(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got, err := probeBinary(context.Background(), exe)
	if want := savedstate.Supported(); err != nil || !slices.Equal(got.Kinds, want.Kinds) || !slices.Equal(got.Formats, want.Formats) {
		t.Fatalf("probe of a program with AnswerProbe: %+v, %v; want %+v", got, err, want)
	}
	var b bytes.Buffer
	if ok, err := AnswerProbe([]string{"host", "--socket", "x"}, &b); ok || err != nil || b.Len() != 0 {
		t.Fatalf("AnswerProbe of other arguments: %v, %v, %q", ok, err, b.String())
	}
}
