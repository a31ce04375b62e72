package listener

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
)

func TestCheckBind(t *testing.T) {
	m := NewManager(nil, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { m.Stop(t.Context()) })

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var be *BindError
	err = m.CheckBind(&Listener{Name: "taken", Addr: busy.Addr().String(), BindToPort: true})
	if !errors.As(err, &be) || be.Listener != "taken" || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("port in use: %v", err)
	}
	// 192.0.2.1 (TEST-NET-1) is not an address of this host.
	err = m.CheckBind(&Listener{Name: "remote", Addr: "192.0.2.1:8080", BindToPort: true})
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "listener remote: cannot bind '192.0.2.1:8080'") {
		t.Errorf("non-local address: %v", err)
	}
	if err := m.CheckBind(&Listener{Name: "virtual", Addr: busy.Addr().String(), BindToPort: false}); err != nil {
		t.Errorf("bind_to_port false: %v", err)
	}

	// An address the manager serves itself is not probed.
	ours := &Listener{Name: "ours", Addr: "127.0.0.1:0", BindToPort: true}
	if err := m.Apply([]*Listener{ours}); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckBind(ours); err != nil {
		t.Errorf("listener already bound by the manager: %v", err)
	}
}
