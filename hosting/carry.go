package hosting

import (
	"fmt"
	"os"
	"strings"
)

// carryPrefix marks the handover's descriptors that Config.Carry gave:
// they are the program's, not the daemon's.
const carryPrefix = "carry."

// maxCarried bounds the files one Carry may give.
const maxCarried = 64

// validCarryName says whether name may name a carried file: letters,
// digits, '-', '_' and '.', 1 to 64 of them.
func validCarryName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// askCarry asks Config.Carry for the program's files and adds their
// descriptors to files (borrowed: they stay the program's). It returns
// what Carry gave, for a successor in this process.
func (d *Daemon) askCarry(files map[string]int) (map[string]*os.File, error) {
	if d.cfg.Carry == nil {
		return nil, nil
	}
	given, err := d.cfg.Carry()
	if err != nil {
		return nil, fmt.Errorf("hosting: Config.Carry: %w", err)
	}
	if len(given) > maxCarried {
		return nil, fmt.Errorf("hosting: Config.Carry: %d files, at most %d", len(given), maxCarried)
	}
	for name, f := range given {
		if !validCarryName(name) || f == nil {
			return nil, fmt.Errorf("hosting: Config.Carry: file %q (want a name of letters, digits, '-', '_' and '.', and an open file)", name)
		}
		fd, err := fileFD(f)
		if err != nil {
			return nil, fmt.Errorf("hosting: Config.Carry: file %q: %w", name, err)
		}
		files[carryPrefix+name] = fd
	}
	return given, nil
}

// takeCarried moves the carried descriptors out of a handover's files
// into d.carried, as files the program owns.
func (d *Daemon) takeCarried(files map[string]int) {
	for name, fd := range files {
		if rest, ok := strings.CutPrefix(name, carryPrefix); ok {
			delete(files, name)
			if d.carried == nil {
				d.carried = make(map[string]*os.File)
			}
			d.carried[rest] = os.NewFile(uintptr(fd), rest)
		}
	}
}

// Carried is what the predecessor's Config.Carry gave, by name: after
// Adopt or AdoptSpawned, and in the daemon a ServiceTo served into (then
// the predecessor's very files). The files are the caller's to use and
// close; nil if nothing was carried.
func (d *Daemon) Carried() map[string]*os.File { return d.carried }
