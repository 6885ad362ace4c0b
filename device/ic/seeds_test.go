package ic

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/govmbus/govmbus/internal/testbus"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// seedFile writes one seed in the go fuzz corpus format.
func seedFile(t *testing.T, target, name string, args ...any) {
	t.Helper()
	s := "go test fuzz v1\n"
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			s += "[]byte(" + strconv.Quote(string(v)) + ")\n"
		case bool:
			s += fmt.Sprintf("bool(%v)\n", v)
		case uint8:
			s += fmt.Sprintf("byte(%d)\n", v)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSeedCorpora writes the seed corpora with -update-seeds, and checks
// that each fuzz target has seeds: the hostile shapes the issue names
// (counts larger than the message, unknown types, odd-length UTF-16,
// missing terminators, sizes past the maximum, no common version) and
// valid messages of every kind.
func TestSeedCorpora(t *testing.T) {
	if *updateSeeds {
		writeSeeds(t)
		writeStateSeeds(t)
	}
	for _, target := range []string{"FuzzParse", "FuzzNegotiate", "FuzzShutdown", "FuzzTimeSync", "FuzzKVP", "FuzzClientAnswer", "FuzzHeartbeat", "FuzzChosen", "FuzzRestoreState"} {
		e, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
		if err != nil || len(e) < 3 {
			t.Errorf("%s: %d seeds, %v (go test -run TestSeedCorpora -update-seeds)", target, len(e), err)
		}
	}
}

func writeSeeds(t *testing.T) {
	hb := Build(Header{Framework: v30, Type: MsgHeartbeat, MsgVersion: v30, Flags: FlagsRequest}, (&Heartbeat{Sequence: 5}).Marshal())
	neg := (&Negotiate{Frameworks: hostFrameworks, Messages: []Version{v30, v40}}).Marshal()
	negMsg := Build(Header{Type: MsgNegotiate, Flags: FlagsRequest}, neg)
	sd, _ := (&Shutdown{Reason: ReasonPlanned, Flags: ShutdownRestart, Message: "bye"}).Marshal()
	sdMsg := Build(Header{Framework: v30, Type: MsgShutdown, MsgVersion: v32, Flags: FlagsRequest}, sd)
	kv, _ := (&KVP{Op: KVPSet, Pool: PoolExternal, ValueType: TypeString, Key: "key", Value: "value"}).Marshal()
	kvMsg := Build(Header{Framework: v30, Type: MsgKVP, MsgVersion: v40, Flags: FlagsRequest}, kv)
	ts := (&TimeSyncMsg{V4: true, ParentTime: 133000000000000000, ChildTime: 1, Flags: TimeFlagSync}).Marshal()
	tsMsg := Build(Header{Framework: v30, Type: MsgTimeSync, MsgVersion: v40, Flags: FlagsRequest}, ts)

	seedFile(t, "FuzzParse", "heartbeat", hb)
	seedFile(t, "FuzzParse", "negotiate", negMsg)
	bigPipe := append([]byte(nil), hb...)
	binary.LittleEndian.PutUint32(bigPipe[4:], MaxPipeData+1)
	seedFile(t, "FuzzParse", "pipe-size-past-maximum", bigPipe)
	bigMsg := append([]byte(nil), hb...)
	binary.LittleEndian.PutUint16(bigMsg[offSize:], 0xffff)
	seedFile(t, "FuzzParse", "message-size-past-payload", bigMsg)
	unknown := append([]byte(nil), hb...)
	binary.LittleEndian.PutUint16(unknown[PipeHeaderSize+4:], 99)
	seedFile(t, "FuzzParse", "unknown-type", unknown)

	seedFile(t, "FuzzNegotiate", "offer", neg)
	over := append([]byte(nil), neg...)
	binary.LittleEndian.PutUint16(over, 60)
	seedFile(t, "FuzzNegotiate", "counts-past-body", over)
	hundred := append([]byte(nil), neg...)
	binary.LittleEndian.PutUint16(hundred[2:], 101)
	seedFile(t, "FuzzNegotiate", "over-100", hundred)
	seedFile(t, "FuzzNegotiate", "no-common-version", (&Negotiate{Frameworks: []Version{{7, 7}}, Messages: []Version{{9, 9}}}).Marshal())

	seedFile(t, "FuzzShutdown", "reboot", sd)
	noNUL := append([]byte(nil), sd...)
	for i := 12; i < len(noNUL); i++ {
		noNUL[i] = 'x'
	}
	seedFile(t, "FuzzShutdown", "missing-terminator", noNUL)
	odd := append([]byte(nil), sd...)
	odd[12], odd[13], odd[14] = 'a', 0, 0 // a NUL at an odd offset
	seedFile(t, "FuzzShutdown", "odd-length", odd)

	seedFile(t, "FuzzTimeSync", "v4-sync", ts, true)
	seedFile(t, "FuzzTimeSync", "v3", (&TimeSyncMsg{ParentTime: 1 << 63, Flags: TimeFlagSample}).Marshal(), false)
	seedFile(t, "FuzzTimeSync", "short", ts[:20], true)

	seedFile(t, "FuzzKVP", "set", kv, false)
	oddKey := append([]byte(nil), kv...)
	binary.LittleEndian.PutUint32(oddKey[8:], 7)
	seedFile(t, "FuzzKVP", "odd-length-key", oddKey, false)
	noTerm := append([]byte(nil), kv...)
	binary.LittleEndian.PutUint32(noTerm[8:], 6)
	seedFile(t, "FuzzKVP", "missing-terminator", noTerm, false)
	past := append([]byte(nil), kv...)
	binary.LittleEndian.PutUint32(past[12:], 4096)
	seedFile(t, "FuzzKVP", "value-size-past-maximum", past, false)
	seedFile(t, "FuzzKVP", "answer-without-terminator", noTerm, true)
	enum, _ := (&KVP{Op: KVPEnumerate, Pool: PoolAuto, Index: 2}).Marshal()
	seedFile(t, "FuzzKVP", "enumerate", enum, false)

	seedFile(t, "FuzzClientAnswer", "negotiate", negMsg, uint8(ServiceKVP))
	seedFile(t, "FuzzClientAnswer", "heartbeat", hb, uint8(ServiceHeartbeat))
	seedFile(t, "FuzzClientAnswer", "kvp-set", kvMsg, uint8(ServiceKVP))
	seedFile(t, "FuzzClientAnswer", "timesync", tsMsg, uint8(ServiceTimeSync))
	seedFile(t, "FuzzClientAnswer", "shutdown-no-callback", sdMsg, uint8(ServiceShutdown))

	hbAnswer, _ := HeartbeatReply(hb)
	seedFile(t, "FuzzHeartbeat", "answer", hbAnswer[offBody:])
	seedFile(t, "FuzzHeartbeat", "openvmm-critical", (&Heartbeat{Sequence: 1<<64 - 1, AppState: AppStateCritical}).Marshal())
	seedFile(t, "FuzzHeartbeat", "sequence-only", hbAnswer[offBody:offBody+heartbeatMinimum])
	seedFile(t, "FuzzHeartbeat", "short", hbAnswer[offBody:offBody+heartbeatMinimum-1])

	chose := NegotiateReply(negMsg, v30, v40, true)
	seedFile(t, "FuzzChosen", "choice", chose[offBody:])
	seedFile(t, "FuzzChosen", "no-common-version", NegotiateReply(negMsg, Version{}, Version{}, false)[offBody:])
	seedFile(t, "FuzzChosen", "offer-as-answer", neg)
	seedFile(t, "FuzzChosen", "counts-without-versions", chose[offBody:offBody+negotiateFixed+4])
}

// writeStateSeeds writes states the servers saved: mid-traffic from a
// rig (the shutdown server with its request in the guest's hands), fresh,
// incompatible, and with a negotiation outstanding; and hostile ones: a
// heartbeat's state for another service, a last answer past int64.
func writeStateSeeds(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	r := newRig(t, ClientConfig{OnShutdown: func(context.Context, *Shutdown) error {
		entered <- struct{}{}
		<-release
		return nil
	}})
	r.negotiated(t)
	ctx := testbus.Context(t)
	for range 3 {
		if _, err := r.hb.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.kvp.Set(ctx, PoolGuest, "key", "value"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ts.Send(ctx, TimeFlagSync); err != nil {
		t.Fatal(err)
	}
	asked := make(chan error, 1)
	go func() {
		_, err := r.sd.Request(ctx, ShutdownRequest{Reboot: true})
		asked <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the guest never got the shutdown request")
	}
	hb := saveOf(t, r.hb.core)
	seedFile(t, "FuzzRestoreState", "heartbeat", hb, uint8(ServiceHeartbeat))
	seedFile(t, "FuzzRestoreState", "shutdown-pending", saveOf(t, r.sd.core), uint8(ServiceShutdown))
	seedFile(t, "FuzzRestoreState", "timesync", saveOf(t, r.ts.core), uint8(ServiceTimeSync))
	seedFile(t, "FuzzRestoreState", "kvp", saveOf(t, r.kvp.core), uint8(ServiceKVP))
	close(release)
	if err := <-asked; err != nil {
		t.Fatal(err)
	}

	seedFile(t, "FuzzRestoreState", "kvp-fresh", saveOf(t, bareCore(ServiceKVP)), uint8(ServiceKVP))
	in := bareCore(ServiceTimeSync)
	in.incompatible = true
	seedFile(t, "FuzzRestoreState", "timesync-incompatible", saveOf(t, in), uint8(ServiceTimeSync))
	neg := bareCore(ServiceHeartbeat)
	neg.cur = &pending{typ: MsgNegotiate, payload: Build(Header{Type: MsgNegotiate, Flags: FlagsRequest}, (&Negotiate{Frameworks: hostFrameworks, Messages: services[ServiceHeartbeat].hostMessages}).Marshal())}
	seedFile(t, "FuzzRestoreState", "heartbeat-negotiate-pending", saveOf(t, neg), uint8(ServiceHeartbeat))
	seedFile(t, "FuzzRestoreState", "heartbeat-state-for-shutdown", hb, uint8(ServiceShutdown))
	late := append([]byte(nil), hb...)
	binary.LittleEndian.PutUint64(late[len(late)-8:], 1<<63)
	seedFile(t, "FuzzRestoreState", "last-answer-past-int64", late, uint8(ServiceHeartbeat))
}
