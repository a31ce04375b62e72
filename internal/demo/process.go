//go:build unix

package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// child is one process of the demo, in a process group of its own so that
// a terminal's Ctrl-C reaches only weft, which then stops the children in
// order, and so that stopping a child also stops anything it started.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit status; read only after done is closed
}

// startChild starts binary with args and extra environment, appending its
// output to logDir/name.log.
func startChild(name, binary string, args, env []string, logDir string) (*child, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", name, binary, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL if it has
// not exited after grace. It returns once the process has been reaped.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
	// Anything the child left in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// exitError describes how a child ended, pointing at its log.
func (c *child) exitError() error {
	status := "exited"
	if c.err != nil {
		status = c.err.Error()
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && ee.ExitCode() >= 0 {
		status = fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	return fmt.Errorf("%s stopped unexpectedly (%s); see %s", c.name, status, c.logPath)
}

// findBinary looks for name in dir (when set), then next to the running
// executable, then on PATH.
func findBinary(name, dir string) (string, error) {
	var tried []string
	check := func(p string) bool {
		tried = append(tried, p)
		st, err := os.Stat(p)
		return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
	}
	if dir != "" {
		if p := filepath.Join(dir, name); check(p) {
			return p, nil
		}
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			if p := filepath.Join(filepath.Dir(exe), name); check(p) {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("cannot find the %s binary (looked in %s); build it with \"make build\" (binaries go to bin/) or put it on PATH", name, joinComma(tried))
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
