package ring_test

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/ring"
)

// A writer and a reader on one ring in plain memory. In real use the region
// is shared memory (guest pages mapped by both sides) and the two endpoints
// live in different processes; Commit's result says when to signal the
// other side.
func Example() {
	region := make([]byte, ring.ControlSize+4096)
	if err := ring.Format(region, true); err != nil {
		panic(err)
	}
	w, _ := ring.NewWriter(region)
	r, _ := ring.NewReader(region)

	// Two packets in one batch: one index store, at most one signal.
	w.WriteInBand(1, ring.FlagCompletionRequested, []byte("hello, "), []byte("host"))
	w.WriteInBand(2, 0, []byte("second"))
	fmt.Println("signal reader:", w.Commit())

	var p ring.Packet
	for {
		err := r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			break
		}
		if err != nil {
			panic(err) // a *ring.CorruptError: the peer broke a rule
		}
		fmt.Printf("txid %d completion requested %v: %q\n", p.TransactionID, p.CompletionRequested(), p.Payload()[:p.PayloadLen()])
	}
	fmt.Println("signal writer:", r.Commit())
	// Output:
	// signal reader: true
	// txid 1 completion requested true: "hello, host\x00\x00\x00\x00\x00"
	// txid 2 completion requested false: "second\x00\x00"
	// signal writer: false
}
