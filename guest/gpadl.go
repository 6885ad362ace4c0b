package guest

import (
	"context"

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
	return id, nil
}

// TeardownGpadl asks the host to drop a GPADL and waits for GpadlTorndown,
// after which the pages are the guest's alone again. The host answers only
// once no device uses the GPADL any more.
func (cl *Client) TeardownGpadl(ctx context.Context, channelID, gpadlID uint32) error {
	k := waitKey{protocol.TypeGpadlTorndown, gpadlID}
	w, err := cl.expect(k)
	if err != nil {
		return err
	}
	if err := cl.send(&protocol.GpadlTeardown{ChannelID: channelID, GpadlID: gpadlID}); err != nil {
		cl.forget(k)
		return err
	}
	_, err = cl.await(ctx, k, w)
	return err
}
