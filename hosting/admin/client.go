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
	"syscall"
	"time"
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

// dial connects to the socket, again after a refusal or a missing file
// until ctx ends: a servicing host's successor listens anew.
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", c.path)
		if err == nil || !(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StatusError is an answer other than 200: the API's status and reason.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string { return e.Reason }

// Do sends method path with body (JSON, nil for none) and decodes the
// answer into out. An answer other than 200 is a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
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
		return &StatusError{Code: resp.StatusCode, Reason: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
