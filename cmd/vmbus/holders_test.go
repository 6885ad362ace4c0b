package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logEndTimeout bounds the wait for a host's log to end once every
// process of the host was sent SIGKILL: the kernel closes a killed
// process's descriptors within milliseconds, so a log still open after
// this is held by a process the test did not know of.
const logEndTimeout = 15 * time.Second

// awaitLogEnd waits for read (closed when the log pipe r reaches its end)
// after the host's processes were killed. If the log stays open, it
// names each process that still holds the pipe's write end, with what
// it is doing, kills it, and fails the test, instead of hanging the
// package until go test's timeout.
func awaitLogEnd(t *testing.T, read <-chan struct{}, r any) {
	t.Helper()
	select {
	case <-read:
		return
	case <-time.After(logEndTimeout):
	}
	holders := pipeHolders(r)
	for _, h := range holders {
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
	select {
	case <-read:
	case <-time.After(logEndTimeout):
	}
	var b strings.Builder
	for _, h := range holders {
		fmt.Fprintf(&b, "\n  %s", h)
	}
	t.Errorf("the host's log was still open %v after its processes were killed; held by %d process(es):%s", logEndTimeout, len(holders), b.String())
}

// holder is a process that has a pipe open.
type holder struct {
	pid                     int
	name, state, ppid, pgid string
	cmdline, wchan, env     string
}

func (h holder) String() string {
	return fmt.Sprintf("pid %d (%s) state %s ppid %s pgid %s wchan %s cmdline %q env %s",
		h.pid, h.name, h.state, h.ppid, h.pgid, h.wchan, h.cmdline, h.env)
}

// pipeHolders lists the processes other than this one that have the pipe
// of r (an *os.File) open.
func pipeHolders(r any) []holder {
	f, ok := r.(interface{ Fd() uintptr })
	if !ok {
		return nil
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || !strings.HasPrefix(target, "pipe:") {
		return nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []holder
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && l == target {
				out = append(out, describe(pid))
				break
			}
		}
	}
	return out
}

// describe reads what /proc says of pid.
func describe(pid int) holder {
	h := holder{pid: pid}
	dir := fmt.Sprintf("/proc/%d/", pid)
	if b, err := os.ReadFile(dir + "stat"); err == nil {
		s := string(b)
		if i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')'); i >= 0 && j > i {
			h.name = s[i+1 : j]
			if f := strings.Fields(s[j+1:]); len(f) > 3 {
				h.state, h.ppid, h.pgid = f[0], f[1], f[2]
			}
		}
	}
	if b, err := os.ReadFile(dir + "cmdline"); err == nil {
		h.cmdline = strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
	}
	if b, err := os.ReadFile(dir + "wchan"); err == nil {
		h.wchan = string(b)
	}
	if b, err := os.ReadFile(dir + "environ"); err == nil {
		var govmbus []string
		for _, kv := range strings.Split(string(b), "\x00") {
			if strings.HasPrefix(kv, "GOVMBUS_") {
				govmbus = append(govmbus, kv)
			}
		}
		h.env = strings.Join(govmbus, ",")
	}
	return h
}
