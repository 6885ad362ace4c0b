package channel

import (
	"time"

	"github.com/govmbus/govmbus/gpa"
)

// SendSynchronousRequest sends payload (with external data if ext is not
// empty; padded to a multiple of 8 bytes as Send's) and waits for the
// peer's completion, copying it into resp (KMCL
// VmbChannelSendSynchronousRequest). It returns the completion's length
// and:
//   - nil (StatusSuccess) when the completion arrived;
//   - StatusBufferTooSmall when it was longer than resp (resp holds the
//     start of it; a nil resp discards the completion's bytes instead);
//   - StatusCancelled when timeout passed first (timeout > 0);
//   - StatusDeviceRemoved when the channel closed first;
//   - StatusBufferOverflow when timeout is 0 and the packet does not fit
//     in the ring now, or the channel is paused (it is not queued; the
//     wait for the completion has no limit then).
//
// A negative timeout (NoTimeout) waits for ring space and for the
// completion without limit. It must not be called from ProcessPacket on
// the receive goroutine, nor from Started.
//
// On a server channel it never waits for the guest: KMCL's page lets the
// root call it only with a zero timeout and without
// SendWaitForCompletion, so a host thread cannot hang on a guest that
// never answers. There the packet goes into the ring now or not at all
// (StatusBufferOverflow), no completion is asked for, and the result is
// 0 bytes; any other timeout, SendWaitForCompletion or external data
// (which needs a completion) fail with StatusInvalidParameter.
func (c *Channel) SendSynchronousRequest(payload []byte, ext []gpa.Range, flags SendFlags, resp []byte, timeout time.Duration) (int, error) {
	if c.server && (timeout != 0 || flags&SendWaitForCompletion != 0 || len(ext) > 0) {
		return 0, fail(StatusInvalidParameter, "SendSynchronousRequest on a server: only a zero timeout, without waiting for a completion")
	}
	p, err := c.syncPacket()
	if err != nil {
		return 0, err
	}
	p.resp = resp
	if !c.server {
		flags |= SendWaitForCompletion
	}
	if err := p.send(payload, ext, flags, timeout == 0); err != nil {
		c.putSync(p)
		return 0, err
	}
	if timeout > 0 {
		// Reset on a stopped or fired timer is safe, and no stale tick
		// is received after it, since Go 1.23 (go.mod says 1.26).
		if p.timer == nil {
			p.timer = time.NewTimer(timeout)
		} else {
			p.timer.Reset(timeout)
		}
		t := p.timer
		select {
		case <-p.done:
			t.Stop()
		case <-t.C:
			c.sendMu.Lock()
			if p.state != outIdle {
				p.abandoned = true // recycled when it completes
				c.sendMu.Unlock()
				return 0, StatusCancelled
			}
			c.sendMu.Unlock()
			<-p.done
		}
	} else {
		<-p.done
	}
	n, st := p.respN, p.status
	c.putSync(p)
	if st != StatusSuccess {
		return n, st
	}
	return n, nil
}

// syncPacket takes a packet for SendSynchronousRequest.
func (c *Channel) syncPacket() (*OutPacket, error) {
	c.sendMu.Lock()
	if n := len(c.syncFree); n > 0 {
		p := c.syncFree[n-1]
		c.syncFree = c.syncFree[:n-1]
		c.sendMu.Unlock()
		return p, nil
	}
	c.sendMu.Unlock()
	p, err := c.AllocatePacket()
	if err != nil {
		return nil, err
	}
	p.completion = syncDone
	return p, nil
}

func (c *Channel) putSync(p *OutPacket) {
	p.resp = nil
	c.sendMu.Lock()
	c.syncFree = append(c.syncFree, p)
	c.sendMu.Unlock()
}

// syncDone is the completion routine of SendSynchronousRequest's packets.
func syncDone(p *OutPacket, status Status, payload []byte) {
	c := p.c
	c.sendMu.Lock()
	if p.abandoned {
		p.abandoned = false
		p.resp = nil
		c.syncFree = append(c.syncFree, p)
		c.sendMu.Unlock()
		return
	}
	c.sendMu.Unlock()
	p.respN = copy(p.resp, payload)
	p.status = status
	if status == StatusSuccess && p.resp != nil && len(payload) > len(p.resp) {
		p.respN = len(payload)
		p.status = StatusBufferTooSmall
	}
	p.done <- struct{}{}
}
