package ic

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// Pool files: one per pool, named as the Linux daemon names them
// (.kvp_pool_N), each a sequence of records of a 512-byte key and a
// 2048-byte value, UTF-8, zero-padded: the layout hv_kvp_daemon uses, so
// a tool that reads those reads these.
const (
	fileKeySize   = 512
	fileValueSize = 2048
	fileRecord    = fileKeySize + fileValueSize
	// MaxKVPEntries bounds each pool: a host cannot make a guest hold
	// more (a set beyond fails).
	MaxKVPEntries = 1024
)

// kvpStore is the guest's pools, in memory and, with a directory, in
// files rewritten whole on each change.
type kvpStore struct {
	dir   string
	mu    sync.Mutex
	pools [Pools][]KV
}

func openKVPStore(dir string) (*kvpStore, error) {
	s := &kvpStore{dir: dir}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for p := range uint8(Pools) {
		b, err := os.ReadFile(s.path(p))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(b)%fileRecord != 0 || len(b)/fileRecord > MaxKVPEntries {
			return nil, fmt.Errorf("ic: KVP pool file %s of %d bytes: not whole records, or more than %d", s.path(p), len(b), MaxKVPEntries)
		}
		for r := b; len(r) > 0; r = r[fileRecord:] {
			k := string(bytes.TrimRight(r[:fileKeySize], "\x00"))
			v := string(bytes.TrimRight(r[fileKeySize:fileRecord], "\x00"))
			if k != "" {
				s.pools[p] = append(s.pools[p], KV{k, v})
			}
		}
	}
	return s, nil
}

func (s *kvpStore) path(p uint8) string {
	return filepath.Join(s.dir, fmt.Sprintf(".kvp_pool_%d", p))
}

// writeLocked rewrites pool p's file: a new file renamed over the old,
// so that a crash leaves one or the other. Must hold mu.
func (s *kvpStore) writeLocked(p uint8) error {
	if s.dir == "" {
		return nil
	}
	b := make([]byte, 0, len(s.pools[p])*fileRecord)
	for _, kv := range s.pools[p] {
		rec := make([]byte, fileRecord)
		copy(rec, kv.Key)
		copy(rec[fileKeySize:], kv.Value)
		b = append(b, rec...)
	}
	tmp := s.path(p) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(p))
}

// autoPool is pool 2 as the guest generates it (Linux: indexes 0-9).
func autoPool() []KV {
	host, _ := os.Hostname()
	return []KV{
		{"FullyQualifiedDomainName", host},
		{"IntegrationServicesVersion", "govmbus"},
		{"OSName", runtime.GOOS},
		{"ProcessorArchitecture", runtime.GOARCH},
	}
}

func (s *kvpStore) entries(p uint8) []KV {
	if p == PoolAuto {
		return autoPool()
	}
	return s.pools[p]
}

func (s *kvpStore) get(p uint8, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.entries(p), func(kv KV) bool { return kv.Key == key })
	if i < 0 {
		return "", false
	}
	return s.entries(p)[i].Value, true
}

func (s *kvpStore) at(p uint8, i uint32) (KV, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries(p)
	if uint64(i) >= uint64(len(e)) {
		return KV{}, false
	}
	return e[i], true
}

// set fails for the generated pool, a key or value too long for a file
// record, and a full pool.
func (s *kvpStore) set(p uint8, key, value string) error {
	if p == PoolAuto || key == "" || len(key) >= fileKeySize || len(value) >= fileValueSize {
		return fmt.Errorf("ic: KVP set refused: pool %s, key of %d bytes, value of %d", PoolName(p), len(key), len(value))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.pools[p], func(kv KV) bool { return kv.Key == key }); i >= 0 {
		s.pools[p][i].Value = value
	} else if len(s.pools[p]) >= MaxKVPEntries {
		return fmt.Errorf("ic: KVP pool %s holds %d entries already", PoolName(p), MaxKVPEntries)
	} else {
		s.pools[p] = append(s.pools[p], KV{key, value})
	}
	return s.writeLocked(p)
}

func (s *kvpStore) delete(p uint8, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.pools[p], func(kv KV) bool { return kv.Key == key })
	if p == PoolAuto || i < 0 {
		return fmt.Errorf("ic: KVP delete: no key %q in pool %s", key, PoolName(p))
	}
	s.pools[p] = slices.Delete(s.pools[p], i, i+1)
	return s.writeLocked(p)
}

// kvpAnswer serves one KVP request as Linux's daemon does: failures and
// misses answer StatusNoMoreItems.
func (c *Client) kvpAnswer(req []byte, m *Message) []byte {
	k, err := UnmarshalKVP(m.Body, false)
	if err != nil {
		// Linux answers nothing it cannot read on KVP.
		c.event(Event{Service: "kvp", Kind: "dropped", Detail: err.Error()})
		return nil
	}
	status := StatusOK
	var key, value string
	switch k.Op {
	case KVPGet:
		var ok bool
		if value, ok = c.kvp.get(k.Pool, k.Key); !ok {
			status = StatusNoMoreItems
		}
		key = k.Key
	case KVPSet:
		if err := c.kvp.set(k.Pool, k.Key, k.Value); err != nil {
			status = StatusNoMoreItems
		}
		key, value = k.Key, k.Value
	case KVPDelete:
		if err := c.kvp.delete(k.Pool, k.Key); err != nil {
			status = StatusNoMoreItems
		}
		key = k.Key
	case KVPEnumerate:
		kv, ok := c.kvp.at(k.Pool, k.Index)
		if !ok {
			status = StatusNoMoreItems
		}
		key, value = kv.Key, kv.Value
	}
	c.event(Event{Service: "kvp", Kind: "kvp", Detail: fmt.Sprintf("%s %s %q=%q", OpName(k.Op), PoolName(k.Pool), key, value), Status: StatusName(status)})
	return KVPReply(req, k, status, key, value)
}
