package ic

import (
	"context"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/host"
)

// ErrNotFound is a KVP get of a key the pool does not hold (the guest's
// StatusNoMoreItems).
var ErrNotFound = errors.New("ic: no such KVP key")

// MaxEnumerate bounds the entries KVPServer.List asks for: a guest that
// answers every index would otherwise keep it going.
const MaxEnumerate = 1024

// KV is one KVP entry.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// KVPServer is the KVP (data exchange) VSP for one guest: get, set,
// delete and enumerate on every pool, one request at a time.
type KVPServer struct{ *core }

// NewKVPServer offers a KVP channel to guest g and starts it.
func NewKVPServer(g *host.Guest, cfg Config) (*KVPServer, error) {
	return newKVPServer(g, cfg, nil, false, true)
}

// RestoreKVPServer continues a KVP server a predecessor saved.
func RestoreKVPServer(g *host.Guest, cfg Config, chunks [][]byte) (*KVPServer, error) {
	return newKVPServer(g, cfg, chunks, true, true)
}

// RestorePausedKVPServer is RestoreKVPServer without Start.
func RestorePausedKVPServer(g *host.Guest, cfg Config, chunks [][]byte) (*KVPServer, error) {
	return newKVPServer(g, cfg, chunks, true, false)
}

func newKVPServer(g *host.Guest, cfg Config, chunks [][]byte, restore, start bool) (*KVPServer, error) {
	s := &KVPServer{core: newCore(ServiceKVP, cfg)}
	s.core.check = s.checkAnswer
	if err := s.core.start(g, chunks, restore, start); err != nil {
		return nil, err
	}
	return s, nil
}

// checkAnswer: the answer must be to the operation and pool asked, and
// parse. Under core.mu.
func (s *KVPServer) checkAnswer(p *pending, m *Message) error {
	if len(m.Body) < 2 || len(p.payload) < offBody+2 {
		return malformed("KVP answer of %d bytes", len(m.Body))
	}
	if m.Body[0] != p.payload[offBody] || m.Body[1] != p.payload[offBody+1] {
		return fmt.Errorf("KVP answer for %s in pool %d to %s in pool %d", OpName(m.Body[0]), m.Body[1], OpName(p.payload[offBody]), p.payload[offBody+1])
	}
	if m.Header.Status == StatusOK {
		if _, err := UnmarshalKVP(m.Body, true); err != nil {
			return err
		}
	}
	return nil
}

func (s *KVPServer) do(ctx context.Context, k *KVP) (*KVP, uint32, error) {
	body, err := k.Marshal()
	if err != nil {
		return nil, 0, err
	}
	m, err := s.request(ctx, MsgKVP, 0, body)
	if err != nil {
		return nil, 0, err
	}
	if m.Header.Status != StatusOK {
		return nil, m.Header.Status, nil
	}
	r, err := UnmarshalKVP(m.Body, true)
	return r, StatusOK, err
}

func statusErr(op string, st uint32) error {
	return fmt.Errorf("ic: KVP %s: the guest answered %s", op, StatusName(st))
}

// Get reads key from pool in the guest.
func (s *KVPServer) Get(ctx context.Context, pool uint8, key string) (string, error) {
	r, st, err := s.do(ctx, &KVP{Op: KVPGet, Pool: pool, ValueType: TypeString, Key: key})
	switch {
	case err != nil:
		return "", err
	case st == StatusNoMoreItems:
		return "", ErrNotFound
	case st != StatusOK:
		return "", statusErr("get", st)
	}
	return r.Value, nil
}

// Set writes key = value (a string) into pool in the guest.
func (s *KVPServer) Set(ctx context.Context, pool uint8, key, value string) error {
	_, st, err := s.do(ctx, &KVP{Op: KVPSet, Pool: pool, ValueType: TypeString, Key: key, Value: value})
	if err == nil && st != StatusOK {
		err = statusErr("set", st)
	}
	return err
}

// Delete removes key from pool in the guest.
func (s *KVPServer) Delete(ctx context.Context, pool uint8, key string) error {
	_, st, err := s.do(ctx, &KVP{Op: KVPDelete, Pool: pool, Key: key})
	if err == nil && st != StatusOK {
		err = statusErr("delete", st)
	}
	return err
}

// List enumerates pool: index 0, 1, 2… until the guest answers a status
// other than success, at most MaxEnumerate entries.
func (s *KVPServer) List(ctx context.Context, pool uint8) ([]KV, error) {
	var out []KV
	for i := range uint32(MaxEnumerate) {
		r, st, err := s.do(ctx, &KVP{Op: KVPEnumerate, Pool: pool, Index: i})
		if err != nil {
			return out, err
		}
		if st != StatusOK {
			return out, nil
		}
		out = append(out, KV{Key: r.Key, Value: r.Value})
	}
	return out, nil
}
