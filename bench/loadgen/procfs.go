package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on
// every Linux architecture Go supports; reading it would take cgo (sysconf).
const clockTicks = 100

// procPath returns /proc/<pid>/<file>, with pid 0 meaning this process.
func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// readRSSKB returns VmRSS of process pid (0: this process) in KiB.
func readRSSKB(pid int) (int64, error) {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in %s", procPath(pid, "status"))
}

// readCPU returns the CPU time (user + system) process pid (0: this process) has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces: split after
	// the last ')'. utime and stime are fields 14 and 15, i.e. 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed " + procPath(pid, "stat"))
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, errors.New("short " + procPath(pid, "stat"))
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed " + procPath(pid, "stat"))
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// readMachineBusy returns the CPU time all CPUs of the machine have spent busy (every
// state of the first line of /proc/stat but idle and iowait).
func readMachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var busy int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, errors.New("malformed /proc/stat")
		}
		// user nice system idle iowait irq softirq steal guest guest_nice; guest time
		// is already counted in user and nice.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// cpuMeter measures the CPU used by the server (when its pid is known), by this process
// and by the whole machine between start and stop.
type cpuMeter struct {
	pid                           int
	server0, self0, machine0      time.Duration
	serverOK, machineOK           bool
	serverUsed, selfUsed, machine time.Duration
	wall                          time.Duration
	start                         time.Time
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, start: time.Now()}
	if pid > 0 {
		if d, err := readCPU(pid); err == nil {
			m.server0, m.serverOK = d, true
		}
	}
	m.self0, _ = readCPU(0)
	if d, err := readMachineBusy(); err == nil {
		m.machine0, m.machineOK = d, true
	}
	return m
}

func (m *cpuMeter) stop() {
	m.wall = time.Since(m.start)
	if m.serverOK {
		if d, err := readCPU(m.pid); err == nil {
			m.serverUsed = d - m.server0
		} else {
			m.serverOK = false
		}
	}
	if d, err := readCPU(0); err == nil {
		m.selfUsed = d - m.self0
	}
	if m.machineOK {
		if d, err := readMachineBusy(); err == nil {
			m.machine = d - m.machine0
		} else {
			m.machineOK = false
		}
	}
}

// otherCores returns the CPU the rest of the machine used meanwhile, in cores: kernel
// work charged to neither process, and any other program running. Much above 0.2 means
// something else competed for the CPUs and the run's figures are suspect.
func (m *cpuMeter) otherCores() float64 {
	if !m.machineOK || !m.serverOK || m.wall <= 0 {
		return 0
	}
	return (m.machine - m.serverUsed - m.selfUsed).Seconds() / m.wall.Seconds()
}
