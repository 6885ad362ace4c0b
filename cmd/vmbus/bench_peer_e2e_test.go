package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EBenchPeersDieWithParent: the peer process of `bench floor` and
// the echo process of `bench ring --processes 2` end with the process
// that started them, even one killed outright. Before, they were left
// running (a spinning echo process for ever), holding the parent's
// stdout, so that `vmbus bench floor | tail` did not end either.
func TestE2EBenchPeersDieWithParent(t *testing.T) {
	bin := vmbusBinary(t)
	for _, args := range [][]string{
		{"bench", "floor", "--count", "10000000"},
		{"bench", "ring", "--round-trip", "--signal", "--processes", "2", "--count", "2000000000"},
	} {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var kids []int
		for deadline := time.Now().Add(10 * time.Second); len(kids) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%v: no child process came", args)
			}
			kids = childrenOf(cmd.Process.Pid)
		}
		// Past its start: a peer still to say it is ready dies of the
		// broken pipe anyway.
		time.Sleep(500 * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			alive := false
			for _, k := range kids {
				if syscall.Kill(k, 0) == nil {
					if b, _ := os.ReadFile("/proc/" + strconv.Itoa(k) + "/stat"); !strings.Contains(string(b), ") Z ") {
						alive = true
					}
				}
			}
			if !alive {
				break
			}
			if time.Now().After(deadline) {
				for _, k := range kids {
					syscall.Kill(k, syscall.SIGKILL)
				}
				t.Fatalf("%v: child %v still running 5 s after its parent was killed", args, kids)
			}
		}
	}
}
