package guest

import (
	"context"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/protocol"
)

// CreateGpadl shares ranges of guest memory with the host as a GPADL of
// channel channelID: it picks a fresh id, sends the GpadlHeader and as many
// GpadlBody messages as the range buffer needs, and waits for GpadlCreated.
// A failure status is a *StatusError.
func (cl *Client) CreateGpadl(ctx context.Context, channelID uint32, ranges []gpa.Range) (uint32, error) {
	for _, r := range ranges {
		if err := cl.mem.CheckRange(r); err != nil {
			return 0, err
		}
	}
	cl.mu.Lock()
	id := cl.nextGpadl
	cl.nextGpadl++
	cl.mu.Unlock()
	msgs, err := protocol.NewGpadlMessages(channelID, id, ranges)
	if err != nil {
		return 0, err
	}
	k := waitKey{protocol.TypeGpadlCreated, id}
	w, err := cl.expect(k)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if err := cl.send(m); err != nil {
			cl.forget(k)
			return 0, err
		}
	}
	m, err := cl.await(ctx, k, w)
	if err != nil {
		return 0, err
	}
	gc := m.(*protocol.GpadlCreated)
	if gc.Status != 0 {
		return 0, &StatusError{Op: "create GPADL", Status: gc.Status}
	}
	if gc.ChannelID != channelID {
		return 0, Protocolf("GpadlCreated names channel %d, want %d", gc.ChannelID, channelID)
	}
	cl.mu.Lock()
	cl.gpadls[id] = channelID
	cl.mu.Unlock()
	return id, nil
}

// ErrNoGpadl is TeardownGpadl's error for a GPADL this client did not
// make on that channel, or has torn down: the host would drop the
// teardown unanswered.
var ErrNoGpadl = errors.New("guest: no such GPADL")

// TeardownGpadl asks the host to drop a GPADL and waits for GpadlTorndown,
// after which the pages are the guest's alone again. The host answers only
// once no device uses the GPADL any more. A GPADL this client did not
// make on channelID (CreateGpadl), or has torn down, is refused at once
// (ErrNoGpadl): Hyper-V drops such a teardown, and the wait would last
// as long as ctx.
func (cl *Client) TeardownGpadl(ctx context.Context, channelID, gpadlID uint32) error {
	cl.mu.Lock()
	ch, ok := cl.gpadls[gpadlID]
	cl.mu.Unlock()
	if !ok || ch != channelID {
		return fmt.Errorf("%w: %#x on channel %d", ErrNoGpadl, gpadlID, channelID)
	}
	k := waitKey{protocol.TypeGpadlTorndown, gpadlID}
	w, err := cl.expect(k)
	if err != nil {
		return err
	}
	if err := cl.send(&protocol.GpadlTeardown{ChannelID: channelID, GpadlID: gpadlID}); err != nil {
		cl.forget(k)
		return err
	}
	if _, err = cl.await(ctx, k, w); err != nil {
		return err
	}
	cl.mu.Lock()
	delete(cl.gpadls, gpadlID)
	cl.mu.Unlock()
	return nil
}
