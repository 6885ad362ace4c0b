package hosting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hvsock"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/transport"
)

// Mode is how Service hands a daemon over to its successor.
type Mode int

const (
	// Exec re-executes the daemon's program in place (same process id),
	// handing over every descriptor across the execve.
	Exec Mode = iota
	// Spawn starts the successor as a new process while the channels
	// still run, and hands over to it over a socket once it is ready:
	// its start-up is no part of the blackout.
	Spawn
)

func (m Mode) String() string {
	if m == Spawn {
		return "spawn"
	}
	return "exec"
}

// Config configures a Daemon.
type Config struct {
	// Socket is the Unix socket path the daemon listens on; a saved
	// state is of the daemon on this path.
	Socket string
	// KeepSocket leaves the socket's path in place when the daemon
	// stops (Shutdown), for a socket that is not the daemon's to remove:
	// one ServeFile was given (systemd's socket activation).
	KeepSocket bool
	// Kinds are the device kinds Devices may name.
	Kinds *Registry
	// Devices are the devices offered to every guest, one channel each,
	// as Name or Name=ARG of a kind in Kinds. A successor may be given
	// another list (an upgrade): the saved channels go to its devices by
	// value (the k-th "echo" takes the k-th saved "echo"'s), a device
	// the predecessor did not serve is offered anew to each guest, and
	// one it no longer serves is rescinded. So a running program adds or
	// drops a device by ServiceTo into a daemon with the changed list:
	// the guests keep their other channels, for one in-process
	// servicing's blackout.
	Devices []string
	// Logger takes the daemon's log, every Event included; nil
	// discards.
	Logger *slog.Logger
	// Events, if set, is called with every event, on the goroutine that
	// made it (the one calling Serve, Service, Adopt...), before it is
	// logged. It must not block for long: a servicing's event waits for
	// it inside the blackout.
	Events func(Event)
	// StateFile, if set, keeps the last servicing's saved state, for
	// vmbus state inspect.
	StateFile string
	// Servicing is how Service hands over.
	Servicing Mode
	// RTBlackout runs each blackout at real-time priority
	// (servicing.Boost).
	RTBlackout bool
	// Supervisor, with Spawn, is the supervisor this process and each
	// successor announce themselves to (nil: none).
	Supervisor *servicing.Supervisor
	// Hangup, with Exec, is the caller's channel for SIGHUP: the daemon
	// ignores SIGHUP from just before the exec (the new image asks for
	// it again; a SIGHUP before that would kill it) and, if the exec
	// fails, delivers SIGHUP to Hangup again. Nil: SIGHUP is left as it
	// is.
	Hangup chan<- os.Signal
	// OnGuest, if set, is called for each guest the daemon serves, with
	// its devices: a new one once they are offered (on the guest's
	// control-plane goroutine), a restored one as a successor takes it
	// over (Adopt, AdoptSpawned, ServiceTo). g.ID names it (the same
	// across servicings), g.Done closes when it is gone. It may be
	// called for several guests at once, and must not block.
	OnGuest func(g *host.Guest)
	// Carry, if set, is asked by each servicing, once everything is
	// saved and just before the handover, for files of the program's own
	// that its successor is to get, by name (letters, digits, '-', '_'
	// and '.'; at most 64 files): a VMM's descriptors, and its state in a
	// memfd. The successor has them from Carried. The files stay the
	// program's: the servicing neither closes nor keeps them, and they
	// must stay open until it returns or replaces the process. An error
	// fails the servicing, which restores in this process.
	Carry func() (map[string]*os.File, error)
	// Capture, if its Path is set, records the bus from the start
	// (Serve), and each successor appends to the same file (Adopt,
	// AdoptSpawned, ServiceTo: give it the same Capture).
	Capture CaptureConfig
	// Stall is how the daemon judges its channels once a second
	// (channel.CheckStall): each stall is logged when it starts and when
	// it ends, and with Unstick a lost signal is signalled again. A
	// successor must be given its own.
	Stall channel.StallConfig
	// Poll is the poll budget of every device's server channel
	// (channel.Channel.SetPoll); 0 never polls.
	Poll time.Duration
	// Limits bound what each guest can make the host hold (host.Limits;
	// zero fields take their defaults).
	Limits host.Limits
	// Relays are hvsock services relayed to local sockets, each as
	// SERVICE=unix:PATH or SERVICE=tcp:ADDR (hvsock.ParseRoute): each
	// guest connection to SERVICE becomes a new connection to the local
	// socket (hvsock.Relay). Without any, every guest's TL connect is
	// refused.
	Relays []string
	// Connects are local Unix sockets relayed into host-initiated
	// hvsock connections, each as unix:PATH=SERVICE
	// (hvsock.ParseConnect): each connection to PATH becomes a
	// connection to SERVICE on the guest connected longest (the lowest
	// id), closed if there is none or it does not accept. A successor
	// takes the listeners over.
	Connects []string
	// Args are the successor's arguments (argv, the program's name
	// first); nil is os.Args. The successor runs this process's
	// executable.
	Args []string
}

// Daemon is a running host: the bus, its listener and the devices it
// offers every guest, and the servicing that hands them all to a
// successor without the guests noticing more than a pause. Its methods
// run on one goroutine (the daemon's), but Channels, which is safe for
// concurrent use.
type Daemon struct {
	cfg     Config
	devs    *devices
	log     *slog.Logger
	h       *host.Host
	l       *transport.Listener
	served  chan error    // the running Serve's result
	ended   chan struct{} // closed once the running Serve returned
	count   uint32        // servicings so far
	spawned bool          // started by a spawned servicing
	capMu   sync.Mutex    // guards capt (StartCapture, StopCapture: any goroutine)
	capt    captureState
	closed  bool
	failed  *ServicingFailed    // the last emitted, for ServiceTo's error
	carried map[string]*os.File // Carried
	hv      *hvsock.Server      // the guests' hvsock connections; nil without Relays
	relays  []*hvsock.Relay     // one per Config.Relays

	subMu  sync.Mutex // guards subs (Subscribe: any goroutine)
	subs   []subscriber
	nextID uint64
}

// subscriber is one Subscribe's function, by its id.
type subscriber struct {
	id uint64
	f  func(Event)
}

// New checks cfg and opens its devices; the daemon serves once Serve, or
// one of the Adopt methods, is called. An error that wraps ErrDevice is a
// device or relay value that is wrong, one that wraps ErrConfig another
// value (no socket, the servicing mode, the poll budget).
func New(cfg Config) (*Daemon, error) {
	if cfg.Socket == "" {
		return nil, fmt.Errorf("%w: no socket", ErrConfig)
	}
	if cfg.Servicing != Exec && cfg.Servicing != Spawn {
		return nil, fmt.Errorf("%w: servicing mode %d: want Exec or Spawn", ErrConfig, cfg.Servicing)
	}
	if cfg.Poll < 0 || cfg.Poll > channel.MaxPoll {
		return nil, fmt.Errorf("%w: poll budget %v: want 0 to %v", ErrConfig, cfg.Poll, channel.MaxPoll)
	}
	if cfg.Kinds == nil {
		cfg.Kinds = NewRegistry()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Shorthands expanded: the saved state and its successor compare
	// devices one by one, whichever way they were written.
	values := cfg.Kinds.expand(cfg.Devices)
	specs, names, err := cfg.Kinds.open(values, log)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log}
	d.capt.cfg = cfg.Capture
	d.devs = &devices{specs: specs, names: names, values: values, log: log, poll: cfg.Poll, onNew: cfg.OnGuest, guests: make(map[*host.Guest][]Device)}
	if err := d.openRelays(); err != nil {
		d.devs.close()
		return nil, err
	}
	return d, nil
}

// emit delivers e to the subscriber and the log.
func (d *Daemon) emit(e Event) {
	if f, ok := e.(*ServicingFailed); ok {
		d.failed = f // for ServiceTo's error
	}
	if d.cfg.Events != nil {
		d.cfg.Events(e)
	}
	d.subMu.Lock()
	subs := d.subs // never changed in place: Subscribe and cancel copy
	d.subMu.Unlock()
	for _, s := range subs {
		s.f(e)
	}
	d.captureEvent(e)
	logEvent(d.log, e)
}

// Subscribe calls f with every event the daemon makes from now on, as
// Config.Events is called (after it and the earlier subscribers, on the
// goroutine that made the event: f must not block for long), until cancel
// is called. A call already under way when cancel returns may still end
// after it. It is safe for concurrent use. admin.Listen subscribes so.
func (d *Daemon) Subscribe(f func(Event)) (cancel func()) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	id := d.nextID
	d.nextID++
	d.subs = append(slices.Clip(d.subs), subscriber{id, f})
	return func() {
		d.subMu.Lock()
		defer d.subMu.Unlock()
		d.subs = slices.DeleteFunc(slices.Clone(d.subs), func(s subscriber) bool { return s.id == id })
	}
}

func (d *Daemon) config() host.Config {
	cfg := host.Config{Logger: d.log, OnGuest: d.devs.offer, Limits: d.cfg.Limits}
	if d.hv != nil {
		cfg.OnConnect = d.hv.OnConnect
	}
	return cfg
}

// Serve listens on the socket and serves, from a fresh start: it
// returns once the daemon accepts guests (Listening), or with the error
// that kept it from listening. A Config.StateFile that cannot be written
// is found here (ErrConfig), not at the first servicing, which would
// fail on it; a successor (Adopt) does not look: it must not fail to
// take its guests over for the want of a copy of their state. An error
// once the socket is bound (the capture, a connect relay's path) closes
// the daemon: what it bound is removed.
func (d *Daemon) Serve() error {
	return d.serveOn(func() (*transport.Listener, error) { return transport.Listen(d.cfg.Socket) })
}

// ServeFile is Serve on a listening SOCK_SEQPACKET Unix socket the
// program already has (systemd's socket activation, or one it made with
// rights of its own) instead of one bound at Config.Socket, which must
// still name the socket's path: the saved state is of it. ServeFile takes
// a duplicate of f (the caller still owns f). With Config.KeepSocket the
// daemon and its successors leave the path in place when they stop.
func (d *Daemon) ServeFile(f *os.File) error {
	return d.serveOn(func() (*transport.Listener, error) { return transport.ListenerFromFile(f) })
}

// serveOn is Serve and ServeFile: listen gives the listener.
func (d *Daemon) serveOn(listen func() (*transport.Listener, error)) error {
	if d.h != nil || d.closed {
		return errors.New("hosting: Serve: the daemon has served already (a Daemon serves once; a servicing's successor is a new one)")
	}
	if d.cfg.StateFile != "" {
		if err := checkStateFile(d.cfg.StateFile); err != nil {
			return fmt.Errorf("host: %w: state file: %w", ErrConfig, err)
		}
	}
	l, err := listen()
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	d.h = host.New(d.config())
	err = d.openCapture(d.h, false)
	if err == nil {
		err = d.listenConnects()
	}
	if err != nil {
		// Nothing is served: what was bound goes (the connect relays'
		// paths among it, which a next start would find in use), and
		// the daemon with it.
		l.Close()
		d.Close()
		return fmt.Errorf("host: %w", err)
	}
	d.serve(l)
	d.emit(&Listening{Socket: d.cfg.Socket, Devices: len(d.devs.specs)})
	if err := d.cfg.Supervisor.Announce(); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	return nil
}

// serve starts accepting on l.
func (d *Daemon) serve(l *transport.Listener) {
	d.l = l
	served, ended := make(chan error, 1), make(chan struct{})
	d.served, d.ended = served, ended
	h := d.h
	go func() {
		defer close(ended)
		stop, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			d.watchStalls(stop)
		}()
		err := h.Serve(l)
		close(stop)
		<-watched
		served <- err
	}()
}

// Done delivers the error that ended the daemon's accepting of guests,
// which does not end otherwise (host.ErrClosed after Close). It delivers
// it once, to one receiver: the channel is not closed, so a program with
// several watchers passes it on itself. A servicing replaces what Done
// returns: call it again after each.
func (d *Daemon) Done() <-chan error { return d.served }

// Count is the number of servicings of this host since it first started,
// as the saved states carried it on.
func (d *Daemon) Count() uint32 { return d.count }

// Shutdown stops the daemon gracefully: every channel is rescinded and
// the guests are given until ctx ends to release them; then every device
// is closed and the socket removed. A ctx that ends first is no error of
// Shutdown's: the guests that did not answer are disconnected.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if d.closed || d.h == nil {
		if !d.closed {
			d.closeRelays()
		}
		return nil
	}
	d.closed = true
	d.closeRelays()
	err := d.h.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil
	}
	<-d.ended
	d.devs.wait()
	d.devs.close()
	d.closeCapture()
	if !d.cfg.KeepSocket {
		os.Remove(d.cfg.Socket) //nolint:errcheck // Serve's listener close removes it already
	}
	return err
}

// Close stops the daemon at once: the guests are disconnected, every
// device closed.
func (d *Daemon) Close() {
	if d.closed {
		return
	}
	d.closed = true
	d.closeRelays()
	if d.h != nil {
		d.h.Close()
		if d.ended != nil {
			<-d.ended
		}
	}
	d.devs.wait()
	d.devs.close()
	d.closeCapture()
}

// ChannelInfo is one device's server channel on one guest.
type ChannelInfo struct {
	Guest   uint64 // the guest's id
	Device  string // the device's kind (its group: blk for blk-ro)
	Channel *channel.Channel
}

// Channels lists every device channel of every guest now served, by guest
// id, then in device order. It is safe for concurrent use (metrics read
// it at scrape time).
func (d *Daemon) Channels() []ChannelInfo {
	var out []ChannelInfo
	for _, gs := range d.devs.snapshot() {
		for j, s := range gs.servers {
			if s != nil {
				out = append(out, ChannelInfo{Guest: gs.g.ID(), Device: d.devs.names[j], Channel: s.Channel()})
			}
		}
	}
	return out
}

// DeviceInfo is one device's server on one guest.
type DeviceInfo struct {
	Guest  uint64 // the guest's id
	Device string // the device's kind (its group: blk for blk-ro)
	Server Device // what the kind's Spec made: a VSP's own type behind it
}

// Devices lists every device server of every guest now served, as
// Channels does; the admin API finds a guest's integration components
// through it. It is safe for concurrent use.
func (d *Daemon) Devices() []DeviceInfo {
	var out []DeviceInfo
	for _, gs := range d.devs.snapshot() {
		for j, s := range gs.servers {
			if s != nil {
				out = append(out, DeviceInfo{Guest: gs.g.ID(), Device: d.devs.names[j], Server: s})
			}
		}
	}
	return out
}

// Adopt continues the host an exec'd predecessor handed over
// (servicing.Inherited): it takes over h's descriptors (closing them on
// error) and serves.
func (d *Daemon) Adopt(h servicing.Handover) error {
	d.takeCarried(h.FDs)
	return d.adoptPhases(h.State, nil, h.FDs, inheritedPhases(h.Paused), true)
}

// checkStateFile makes sure that writeFileAtomic can write path: it is
// not a directory, and a file can be made beside it.
func checkStateFile(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vmbus-state-*")
	if err != nil {
		return err
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// writeFileAtomic replaces path with data, so a reader sees the previous
// state or this one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vmbus-state-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
