package sds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// credentialDir serves the secrets a Gateway names by credentialName from
// files, in the layout of Kubernetes TLS secrets mounted as a directory:
// DIR/NAME/tls.crt and tls.key for the certificate, DIR/NAME/ca.crt for
// the client CA; "NAME-cacert" (Istio's name for the CA of a MUTUAL
// server) reads DIR/NAME-cacert/ca.crt, else DIR/NAME/ca.crt. Files are
// re-read when they change (checked at most once per second), so renewed
// certificates reach new handshakes.
type credentialDir struct {
	dir string

	mu    sync.Mutex
	certs map[string]*cached[*tls.Certificate]
	roots map[string]*cached[*x509.CertPool]
}

type cached[T any] struct {
	value   T
	mtime   time.Time
	checked time.Time
}

// recheck bounds how often files are stat'ed.
const recheck = time.Second

func newCredentialDir(dir string) *credentialDir {
	return &credentialDir{dir: dir, certs: map[string]*cached[*tls.Certificate]{}, roots: map[string]*cached[*x509.CertPool]{}}
}

// validName keeps secret names inside the directory.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("sds: invalid credential name %q", name)
	}
	return nil
}

func (d *credentialDir) certificate(name string) (*tls.Certificate, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	crt, key := filepath.Join(d.dir, name, "tls.crt"), filepath.Join(d.dir, name, "tls.key")
	return load(d, d.certs, name, crt, func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			return nil, fmt.Errorf("sds: credential %q: %w", name, err)
		}
		return &c, nil
	})
}

func (d *credentialDir) pool(name string) (*x509.CertPool, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	file := filepath.Join(d.dir, name, "ca.crt")
	if base, ok := strings.CutSuffix(name, "-cacert"); ok {
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			file = filepath.Join(d.dir, base, "ca.crt")
		}
	}
	return load(d, d.roots, name, file, func() (*x509.CertPool, error) {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("sds: credential %q: %w", name, err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sds: credential %q: %s holds no PEM certificate", name, file)
		}
		return p, nil
	})
}

// load returns the cached value of name, re-reading it with read when
// file's modification time changed.
func load[T any](d *credentialDir, m map[string]*cached[T], name, file string, read func() (T, error)) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	c := m[name]
	if c != nil && now.Sub(c.checked) < recheck {
		return c.value, nil
	}
	var zero T
	st, err := os.Stat(file)
	if err != nil {
		return zero, fmt.Errorf("sds: credential %q: %w", name, err)
	}
	if c != nil && st.ModTime().Equal(c.mtime) {
		c.checked = now
		return c.value, nil
	}
	v, err := read()
	if err != nil {
		return zero, err
	}
	m[name] = &cached[T]{value: v, mtime: st.ModTime(), checked: now}
	return v, nil
}
