package guestmem

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestAllocFirstFit(t *testing.T) {
	a := NewAllocator(200)
	p0, _ := a.Alloc(1)
	p1, _ := a.Alloc(100)
	p2, _ := a.Alloc(10)
	if p0 != 0 || p1 != 1 || p2 != 101 || a.FreePages() != 89 {
		t.Fatalf("got %d %d %d, %d free", p0, p1, p2, a.FreePages())
	}
	a.Free(p1, 100)
	// First fit reuses the hole, and freeing coalesces with the neighbour.
	if p, _ := a.Alloc(70); p != 1 {
		t.Fatalf("Alloc(70) = %d, want 1", p)
	}
	if _, err := a.Alloc(90); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Alloc(90): %v", err)
	}
	if p, err := a.Alloc(89); err != nil || p != 111 {
		t.Fatalf("Alloc(89) = %d, %v", p, err)
	}
	a.Free(p2, 10)
	a.Free(1, 70)
	if a.largestRun() != 110 || !a.Allocated(0) || a.Allocated(1) || a.Allocated(500) {
		t.Fatalf("largest run %d, want 110", a.largestRun())
	}
	// Fragment the hole: 49 + 60 pages free, no run of 61.
	q, _ := a.Alloc(49)
	mid, _ := a.Alloc(1)
	a.Free(q, 49)
	if mid != 50 || a.FreePages() != 109 {
		t.Fatalf("mid %d, %d free", mid, a.FreePages())
	}
	if _, err := a.Alloc(61); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("fragmented Alloc(61): %v", err)
	}
	if p, err := a.Alloc(60); err != nil || p != 51 {
		t.Fatalf("Alloc(60) = %d, %v", p, err)
	}
}

func TestAllocMisusePanics(t *testing.T) {
	a := NewAllocator(64)
	p, _ := a.Alloc(4)
	for name, f := range map[string]func(){
		"double free":   func() { a.Free(p+1, 1); a.Free(p+1, 1) },
		"free past end": func() { a.Free(63, 2) },
		"free unused":   func() { a.Free(10, 1) },
		"alloc zero":    func() { a.Alloc(0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestAllocConcurrent(t *testing.T) {
	const pages = 1000
	a := NewAllocator(pages)
	owner := make([]int32, pages)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 1; w <= 8; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			type run struct {
				pfn uint64
				n   int
			}
			var held []run
			for i := 0; i < 2000; i++ {
				if len(held) > 0 && rng.IntN(2) == 0 {
					k := rng.IntN(len(held))
					r := held[k]
					held = append(held[:k], held[k+1:]...)
					mu.Lock()
					for p := r.pfn; p < r.pfn+uint64(r.n); p++ {
						owner[p] = 0
					}
					mu.Unlock()
					a.Free(r.pfn, r.n)
					continue
				}
				n := 1 + rng.IntN(20)
				pfn, err := a.Alloc(n)
				if err != nil {
					continue
				}
				mu.Lock()
				for p := pfn; p < pfn+uint64(n); p++ {
					if owner[p] != 0 {
						t.Errorf("page %d handed out twice", p)
					}
					owner[p] = int32(w)
				}
				mu.Unlock()
				held = append(held, run{pfn, n})
			}
			for _, r := range held {
				mu.Lock()
				for p := r.pfn; p < r.pfn+uint64(r.n); p++ {
					owner[p] = 0
				}
				mu.Unlock()
				a.Free(r.pfn, r.n)
			}
		})
	}
	wg.Wait()
	if a.FreePages() != pages || a.largestRun() != pages {
		t.Fatalf("%d free after all freed", a.FreePages())
	}
}
