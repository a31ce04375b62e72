package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// process is a child process the harness started and must stop.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
	log  string
}

// command prefixes argv with taskset (pinning it to cpu; cpu < 0 leaves
// it unpinned) and nice (when niceness is not 0). Both exec the program,
// so the pid stays the program's.
func command(niceness, cpu int, argv ...string) []string {
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", fmt.Sprint(cpu)}, argv...)
	}
	if niceness != 0 {
		argv = append([]string{"nice", "-n", fmt.Sprint(niceness)}, argv...)
	}
	return argv
}

// start runs path pinned to cpu with the harness's niceness, logging to
// dir/<name>.log.
func (e *env) start(name, dir string, cpu int, path string, args, env []string) (*process, error) {
	argv := command(e.cfg.niceness, cpu, append([]string{path}, args...)...)
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id (taskset execs the program, keeping the pid).
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group it leads, then SIGKILL after 5 s.
func (p *process) stop() {
	if ok, _ := p.exited(); ok {
		return
	}
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *process) tail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 600 {
		data = data[len(data)-600:]
	}
	return string(data)
}

// waitFor polls check until it succeeds, the process exits, or timeout.
func (p *process) waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if ok, werr := p.exited(); ok {
			return fmt.Errorf("%s exited (%v): %s", p.name, werr, p.tail())
		}
		if err = check(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v; log: %s", p.name, timeout, err, p.tail())
}

// httpOK checks that url answers 200.
func httpOK(url string) func() error {
	c := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tcpOpen checks that addr accepts connections.
func tcpOpen(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// freePort returns a loopback host:port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// output runs a command and returns its combined output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), fmt.Errorf("%s: %v: %s", name, err, out)
		}
		return string(out), err
	}
	return string(out), nil
}
