package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/internal/sockpath"
)

// Client calls an admin API on its socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient is a client of the API at socket path.
func NewClient(path string) *Client {
	c := &Client{path: path}
	c.hc = &http.Client{Transport: &http.Transport{DialContext: c.dial, DisableKeepAlives: true}}
	return c
}

// reconnectFor bounds how long dial tries again a socket that refuses: a
// servicing host's successor listens anew within its blackout, far inside
// it (its socket replaces the predecessor's file, so the path is there
// all along). A path that is missing or no socket is said at once: no
// host runs there, or none with --admin. A variable for tests.
var reconnectFor = 5 * time.Second

// dial connects to the socket, again after a refusal for up to
// reconnectFor (a servicing host's successor listens anew).
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	until := time.Now().Add(reconnectFor)
	for {
		conn, err := d.DialContext(ctx, "unix", c.path)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || !sockpath.IsSocket(c.path) || time.Now().After(until) {
			return nil, c.unreachable(err)
		}
		select {
		case <-ctx.Done():
			return nil, c.unreachable(err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unreachable is the error for a socket nobody answers on, naming it.
func (c *Client) unreachable(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err // the socket's path is said below, once
	}
	return fmt.Errorf("no host answers on %s (one started with --admin %s): %w", c.path, c.path, err)
}

// StatusError is an answer other than 200: the API's status and reason.
type StatusError struct {
	Code   int
	Reason string
	Retry  bool // 503 for a servicing: sending the request again is safe (Error.Retry)
}

func (e *StatusError) Error() string { return e.Reason }

// Do sends method path with body (JSON, nil for none) and decodes the
// answer into out. An answer other than 200 is a *StatusError.
//
// A host being serviced answers 503 with Retry, or (in the instant of its
// handover) ends the connection unanswered; Do then sends the request
// again, for as long as it retries a refused connection and within ctx:
// one that Retry names, or one that ended unanswered if it is Idempotent.
// The host answers every request it carried out before it hands over
// (Server.Observe), so one that ended unanswered was not carried out;
// a request that is not idempotent is still not sent again, because a
// host that crashed gives no such promise.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	until := time.Now().Add(reconnectFor)
	for {
		err := c.do(ctx, method, path, b, out)
		var se *StatusError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &se) && se.Retry:
		case unanswered(err) && Idempotent(method, path):
		case unanswered(err):
			return fmt.Errorf("the host ended the connection before it answered (a servicing?): %w", err)
		default:
			return err
		}
		if time.Now().After(until) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unanswered says whether err is a connection that ended before its
// answer: reset, closed (EOF), or closed before the request was written
// (EPIPE).
func unanswered(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// do is one try of Do, with the body's bytes.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the made-up URL: the path is in the cause
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return &StatusError{Code: resp.StatusCode, Reason: e.Error, Retry: e.Retry && resp.StatusCode == http.StatusServiceUnavailable}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
