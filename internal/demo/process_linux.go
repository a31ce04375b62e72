package demo

import "syscall"

// childSysProcAttr puts a child in its own process group and asks the
// kernel to kill it if weft itself dies without stopping it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
