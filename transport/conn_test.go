package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guestmem"
)

func TestPipeMessages(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	send(t, guest, "initiate contact")
	if got := recvString(t, host); got != "initiate contact" {
		t.Fatalf("host got %q", got)
	}
	send(t, host, "version response")
	if got := recvString(t, guest); got != "version response" {
		t.Fatalf("guest got %q", got)
	}
	big := bytes.Repeat([]byte{0x5A}, MaxMessageSize)
	if err := guest.Send(big); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxMessageSize)
	if n, err := host.Recv(testCtx(t), buf); err != nil || !bytes.Equal(buf[:n], big) {
		t.Fatalf("max message: %d, %v", n, err)
	}
	for _, n := range []int{0, MaxMessageSize + 1} {
		if err := guest.Send(make([]byte, n)); !errors.Is(err, ErrMessageSize) {
			t.Errorf("Send of %d bytes: %v", n, err)
		}
	}
	// Order is kept across many messages.
	for i := 0; i < 100; i++ {
		send(t, guest, fmt.Sprint(i))
	}
	for i := 0; i < 100; i++ {
		if got := recvString(t, host); got != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
}

func TestRecvShortBuffer(t *testing.T) {
	host, guest := pipe(t)
	send(t, guest, "0123456789")
	send(t, guest, "next")
	buf := make([]byte, 4)
	n, err := host.Recv(testCtx(t), buf)
	if n != 4 || err != io.ErrShortBuffer || string(buf) != "0123" {
		t.Fatalf("got %d %q, %v", n, buf[:n], err)
	}
	if got := recvString(t, host); got != "next" {
		t.Fatalf("then %q", got)
	}
}

func TestMemoryHandover(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	gm, err := guestmem.New(16 * guestmem.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	copy(gm.Bytes()[5*guestmem.PageSize:], "guest wrote this")
	if err := guest.SendMemory(gm); err != nil {
		t.Fatal(err)
	}
	if err := guest.SendMemory(gm); err == nil {
		t.Fatal("second SendMemory accepted")
	}
	if _, err := host.TakeMemory(); !errors.Is(err, ErrNotReceived) {
		t.Fatalf("TakeMemory before Recv: %v", err)
	}
	send(t, guest, "contact")
	recvString(t, host)
	hm, err := host.TakeMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer hm.Close()
	if hm.Size() != gm.Size() {
		t.Fatalf("host sees %d bytes", hm.Size())
	}
	b, _ := hm.View(5*guestmem.PageSize, 16)
	if string(b) != "guest wrote this" {
		t.Fatalf("host reads %q", b)
	}
	copy(hm.Bytes()[9*guestmem.PageSize:], "host answer")
	if !bytes.HasPrefix(gm.Bytes()[9*guestmem.PageSize:], []byte("host answer")) {
		t.Fatal("guest does not see the host's write")
	}
	if _, err := host.TakeMemory(); !errors.Is(err, ErrNotReceived) {
		t.Fatalf("second TakeMemory: %v", err)
	}
}

func TestUntakenHandoversClosedWithConn(t *testing.T) {
	checkLeaks(t)
	host, guest, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	gm, _ := guestmem.New(guestmem.PageSize)
	ev, _ := NewEvent()
	guest.SendMemory(gm)
	guest.SendEvent(3, ToHost, ev)
	guest.SendEvent(3, ToHost, ev) // replaces the first, which is closed
	send(t, guest, "x")
	recvString(t, host)
	gm.Close()
	ev.Close()
	host.Close()
	guest.Close()
}

func TestEventHandoverAndSignals(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	toHost, _ := NewEvent()
	toGuest, _ := NewEvent()
	defer toHost.Close()
	defer toGuest.Close()
	if err := guest.SendEvent(1, ToHost, toHost); err != nil {
		t.Fatal(err)
	}
	if err := guest.SendEvent(1, ToGuest, toGuest); err != nil {
		t.Fatal(err)
	}
	send(t, guest, "open channel 1")
	recvString(t, host)
	hToHost, err := host.TakeEvent(1, ToHost)
	if err != nil {
		t.Fatal(err)
	}
	defer hToHost.Close()
	hToGuest, err := host.TakeEvent(1, ToGuest)
	if err != nil {
		t.Fatal(err)
	}
	defer hToGuest.Close()
	if _, err := host.TakeEvent(1, ToHost); !errors.Is(err, ErrNotReceived) {
		t.Fatalf("second TakeEvent: %v", err)
	}
	if _, err := host.TakeEvent(2, ToHost); !errors.Is(err, ErrNotReceived) {
		t.Fatalf("TakeEvent of another channel: %v", err)
	}

	ctx := testCtx(t)
	for i := 0; i < 100; i++ {
		if err := toHost.Signal(); err != nil {
			t.Fatal(err)
		}
		if err := hToHost.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := hToGuest.Signal(); err != nil {
			t.Fatal(err)
		}
		if err := toGuest.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Signals before a Wait coalesce into one wake-up.
	toHost.Signal()
	toHost.Signal()
	if err := hToHost.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := hToHost.Wait(short); err != context.DeadlineExceeded {
		t.Fatalf("Wait after coalesced signals: %v", err)
	}
}

func TestEventWaitCancelAndClose(t *testing.T) {
	checkLeaks(t)
	e, err := NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Wait(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled Wait: %v", err)
	}
	// The cancellation leaves no deadline behind.
	e.Signal()
	if err := e.Wait(testCtx(t)); err != nil {
		t.Fatalf("Wait after a cancelled one: %v", err)
	}
	if err := e.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait with a done context: %v", err)
	}
	go func() { done <- e.Wait(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	e.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait across Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := e.Signal(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Signal after Close: %v", err)
	}
}

func TestEventAllocs(t *testing.T) {
	e, _ := NewEvent()
	defer e.Close()
	ctx := context.Background()
	if a := testing.AllocsPerRun(100, func() {
		e.Signal()
		e.Wait(ctx)
	}); a != 0 {
		t.Fatalf("%v allocations per signal and wait", a)
	}
}

func TestRecvCancel(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := host.Recv(ctx, make([]byte, MaxMessageSize)); err != context.DeadlineExceeded {
		t.Fatalf("Recv with nothing to read: %v", err)
	}
	// The connection is still good.
	send(t, guest, "later")
	if got := recvString(t, host); got != "later" {
		t.Fatalf("got %q", got)
	}
}

func TestCloseWakesRecv(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	send(t, guest, "hello") // so the hello is already checked
	recvString(t, host)
	done := make(chan error)
	go func() {
		_, err := host.Recv(context.Background(), make([]byte, MaxMessageSize))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := host.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv across Close: %v", err)
	}
	if err := host.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := host.Recv(testCtx(t), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := host.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	// The guest sees its peer gone.
	if _, err := guest.Recv(testCtx(t), nil); !errors.Is(err, ErrPeerClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("guest Recv: %v", err)
	}
}

func TestPeerCloseDrainsFirst(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	send(t, guest, "last words")
	guest.Close()
	if got := recvString(t, host); got != "last words" {
		t.Fatalf("got %q", got)
	}
	for i := 0; i < 2; i++ {
		if _, err := host.Recv(testCtx(t), nil); !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("Recv %d after peer close: %v", i, err)
		}
	}
	if err := host.Send([]byte("anyone?")); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("Send to a closed peer: %v", err)
	}
}

func TestUnixSocketManyGuests(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr() != path {
		t.Fatalf("Addr %q", l.Addr())
	}
	const guests = 4
	var wg sync.WaitGroup
	// Host: each accepted guest is served by its own goroutine and must
	// see only its own messages.
	wg.Go(func() {
		var serve sync.WaitGroup
		for i := 0; i < guests; i++ {
			c, err := l.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			serve.Go(func() {
				defer c.Close()
				buf := make([]byte, MaxMessageSize)
				for {
					n, err := c.Recv(context.Background(), buf)
					if errors.Is(err, ErrPeerClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					if err := c.Send(append([]byte("echo "), buf[:n]...)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		serve.Wait()
	})
	for g := 0; g < guests; g++ {
		wg.Go(func() {
			c, err := Dial(testCtx(t), path)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, MaxMessageSize)
			for i := 0; i < 20; i++ {
				msg := fmt.Sprintf("guest %d message %d", g, i)
				if err := c.Send([]byte(msg)); err != nil {
					t.Error(err)
					return
				}
				n, err := c.Recv(testCtx(t), buf)
				if err != nil || string(buf[:n]) != "echo "+msg {
					t.Errorf("guest %d got %q, %v", g, buf[:n], err)
					return
				}
			}
		})
	}
	wg.Wait()

	done := make(chan error)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept across Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := Dial(testCtx(t), path); err == nil {
		t.Fatal("Dial after the listener closed")
	}
}

func TestDialWaitsForHello(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Nobody accepts, so no hello comes.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, path); err != context.DeadlineExceeded {
		t.Fatalf("Dial without an Accept: %v", err)
	}
}

func TestSilentGuestDoesNotBlockAccept(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A client that connects and never says hello.
	silent, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(ctx, nil); err != context.DeadlineExceeded {
		t.Fatalf("Recv from a silent guest: %v", err)
	}
	// A real guest is accepted meanwhile.
	served := make(chan struct{})
	go func() {
		defer close(served)
		c2, err := l.Accept()
		if err == nil {
			send(t, c2, "welcome")
			c2.Recv(testCtx(t), nil)
			c2.Close()
		}
	}()
	g, err := Dial(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	if got := recvString(t, g); got != "welcome" {
		t.Fatalf("got %q", got)
	}
	g.Close()
	<-served
	// The silent one leaves; its host end learns it.
	silent.Close()
	if _, err := c.Recv(testCtx(t), nil); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("Recv from a departed guest: %v", err)
	}
}

// TestServicingHandover rebuilds the host's listener, connection, memory
// and events from duplicated descriptors, as a re-executed host would from
// inherited ones, and checks the guest notices nothing.
func TestServicingHandover(t *testing.T) {
	checkLeaks(t)
	path := filepath.Join(t.TempDir(), "vmbus.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	guest, err := Dial(testCtx(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	host := <-accepted

	gm, _ := guestmem.New(4 * guestmem.PageSize)
	defer gm.Close()
	ev, _ := NewEvent()
	defer ev.Close()
	guest.SendMemory(gm)
	guest.SendEvent(9, ToHost, ev)
	send(t, guest, "before")
	recvString(t, host)
	hm, err := host.TakeMemory()
	if err != nil {
		t.Fatal(err)
	}
	hev, err := host.TakeEvent(9, ToHost)
	if err != nil {
		t.Fatal(err)
	}

	// The predecessor hands over everything and goes away.
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := host.File()
	if err != nil {
		t.Fatal(err)
	}
	mf, err := hm.File()
	if err != nil {
		t.Fatal(err)
	}
	ef, err := hev.File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	host.Close()
	hm.Close()
	hev.Close()

	send(t, guest, "during")
	ev.Signal()

	// The successor.
	l2, err := ListenerFromFile(lf)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	host2, err := FromFile(cf, Host)
	if err != nil {
		t.Fatal(err)
	}
	defer host2.Close()
	hm2, err := guestmem.FromFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	defer hm2.Close()
	hev2, err := EventFromFile(ef)
	if err != nil {
		t.Fatal(err)
	}
	defer hev2.Close()
	for _, f := range []interface{ Close() error }{lf, cf, mf, ef} {
		f.Close()
	}

	if got := recvString(t, host2); got != "during" {
		t.Fatalf("successor got %q", got)
	}
	if err := hev2.Wait(testCtx(t)); err != nil {
		t.Fatalf("signal sent during the handover: %v", err)
	}
	copy(gm.Bytes(), "still shared")
	if !bytes.HasPrefix(hm2.Bytes(), []byte("still shared")) {
		t.Fatal("successor's memory is not the guest's")
	}
	send(t, host2, "after")
	if got := recvString(t, guest); got != "after" {
		t.Fatalf("guest got %q", got)
	}
	// The socket path survived the predecessor's Close.
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l2.Accept()
		if err == nil {
			// Stay until the guest has gone, so its Dial cannot race
			// with this end closing.
			c.Recv(testCtx(t), nil)
			c.Close()
		}
	}()
	g2, err := Dial(testCtx(t), path)
	if err != nil {
		t.Fatalf("Dial the successor: %v", err)
	}
	g2.Close()
	<-served
	if _, err := FromFile(mf, Host); err == nil {
		t.Fatal("FromFile of a closed file")
	}
}

func TestConcurrentSenders(t *testing.T) {
	checkLeaks(t)
	host, guest := pipe(t)
	const senders, each = 4, 200
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				if err := guest.Send([]byte(fmt.Sprintf("%d:%d", s, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, senders)
	buf := make([]byte, MaxMessageSize)
	for i := 0; i < senders*each; i++ {
		n, err := host.Recv(testCtx(t), buf)
		if err != nil {
			t.Fatal(err)
		}
		var s, k int
		fmt.Sscanf(string(buf[:n]), "%d:%d", &s, &k)
		if k != next[s] {
			t.Fatalf("sender %d: got %d, want %d", s, k, next[s])
		}
		next[s]++
	}
	wg.Wait()
}
