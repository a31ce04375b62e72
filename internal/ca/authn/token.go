package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

// TokenPrefix starts every token a TokenStore issues, so a leaked token is
// recognisable (and greppable) as a Weft bootstrap token.
const TokenPrefix = "weft_bt_"

// tokenFileVersion is the format version of the token file.
const tokenFileVersion = 1

// TokenStore holds per-workload bootstrap tokens: each maps to one
// identity. Only a SHA-256 hash of each token is kept, in a JSON file
// (mode 0600) so that one process (`weft demo`) can issue tokens that
// another (weftd) accepts: Authenticate re-reads the file when it changed.
// Tokens have no expiry; Revoke removes them.
//
// A TokenStore is safe for concurrent use within a process. Across
// processes, writes are whole-file atomic renames: two processes issuing at
// the same moment can lose one issue, so let one process write.
type TokenStore struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]tokenEntry // by hex SHA-256 of the token
	stamp   fileStamp             // of the file when last read or written
}

type tokenEntry struct {
	Hash     string    `json:"sha256"`
	Identity string    `json:"identity"`
	Issued   time.Time `json:"issued"`
	id       spiffe.ID
}

type tokenFile struct {
	Version int          `json:"version"`
	Tokens  []tokenEntry `json:"tokens"`
}

// fileStamp identifies one version of the token file. Writers replace
// the file by rename, so a new inode (os.SameFile) marks every change;
// size and modification time catch in-place edits.
type fileStamp struct {
	info fs.FileInfo
}

func (a fileStamp) same(b fs.FileInfo) bool {
	return a.info != nil && b != nil && os.SameFile(a.info, b) && a.info.Size() == b.Size() && a.info.ModTime().Equal(b.ModTime())
}

// OpenTokenStore opens the token file at path; a missing file is an empty
// store (created on the first Issue). An empty path gives an in-memory
// store.
func OpenTokenStore(path string) (*TokenStore, error) {
	s := &TokenStore{path: path, now: time.Now, entries: map[string]tokenEntry{}}
	if path == "" {
		return s, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(true); err != nil {
		return nil, err
	}
	return s, nil
}

// Issue creates a new token for id and persists its hash. The token is
// returned once and cannot be recovered from the store.
func (s *TokenStore) Issue(id spiffe.ID) (string, error) {
	if err := id.Validate(); err != nil {
		return "", fmt.Errorf("authn: issue token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("authn: issue token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(false); err != nil {
		return "", err
	}
	h := hashToken(token)
	s.entries[h] = tokenEntry{Hash: h, Identity: id.String(), Issued: s.now().UTC(), id: id}
	if err := s.saveLocked(); err != nil {
		delete(s.entries, h)
		return "", err
	}
	return token, nil
}

// Revoke removes a token. It reports whether the token was known.
func (s *TokenStore) Revoke(token string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(false); err != nil {
		return false, err
	}
	h := hashToken(token)
	e, ok := s.entries[h]
	if !ok {
		return false, nil
	}
	delete(s.entries, h)
	if err := s.saveLocked(); err != nil {
		s.entries[h] = e
		return false, err
	}
	return true, nil
}

// RevokeIdentity removes every token of id and returns how many there were.
func (s *TokenStore) RevokeIdentity(id spiffe.ID) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(false); err != nil {
		return 0, err
	}
	removed := map[string]tokenEntry{}
	for h, e := range s.entries {
		if e.id == id {
			removed[h] = e
			delete(s.entries, h)
		}
	}
	if len(removed) == 0 {
		return 0, nil
	}
	if err := s.saveLocked(); err != nil {
		for h, e := range removed {
			s.entries[h] = e
		}
		return 0, err
	}
	return len(removed), nil
}

// Lookup returns the identity of a token, re-reading the file first if
// another process changed it.
func (s *TokenStore) Lookup(token string) (spiffe.ID, bool, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return spiffe.ID{}, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(false); err != nil {
		return spiffe.ID{}, false, err
	}
	e, ok := s.entries[hashToken(token)]
	return e.id, ok, nil
}

// Authenticate implements Authenticator with the bearer token.
func (s *TokenStore) Authenticate(_ context.Context, cred Credentials) (spiffe.ID, error) {
	if cred.BearerToken == "" {
		return spiffe.ID{}, fmt.Errorf("%w: no bearer token (want metadata \"authorization: Bearer <token>\")", ErrUnauthenticated)
	}
	id, ok, err := s.Lookup(cred.BearerToken)
	if err != nil {
		return spiffe.ID{}, err
	}
	if !ok {
		return spiffe.ID{}, fmt.Errorf("%w: unknown or revoked bootstrap token", ErrUnauthenticated)
	}
	return id, nil
}

// Len returns the number of valid tokens.
func (s *TokenStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// hashToken returns the hex SHA-256 of a token. Tokens carry 256 random
// bits, so an unsalted fast hash is enough: guessing is not feasible.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// reloadLocked reads the file if it changed since last read. With
// initial, a missing file is fine; later, a file that disappeared empties
// the store.
func (s *TokenStore) reloadLocked(initial bool) error {
	if s.path == "" {
		return nil
	}
	st, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		if s.stamp.info != nil || initial {
			s.entries = map[string]tokenEntry{}
			s.stamp = fileStamp{}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("authn: token file: %w", err)
	}
	if s.stamp.same(st) {
		return nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("authn: token file: %w", err)
	}
	entries, err := parseTokenFile(s.path, data)
	if err != nil {
		return err
	}
	s.entries, s.stamp = entries, fileStamp{info: st}
	return nil
}

func parseTokenFile(path string, data []byte) (map[string]tokenEntry, error) {
	var f tokenFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("authn: %s: %w", path, err)
	}
	if f.Version != tokenFileVersion {
		return nil, fmt.Errorf("authn: %s: version %d, want %d", path, f.Version, tokenFileVersion)
	}
	entries := make(map[string]tokenEntry, len(f.Tokens))
	for i, e := range f.Tokens {
		if b, err := hex.DecodeString(e.Hash); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("authn: %s: tokens[%d].sha256: not a hex SHA-256", path, i)
		}
		id, err := spiffe.Parse(e.Identity)
		if err != nil {
			return nil, fmt.Errorf("authn: %s: tokens[%d].identity: %v", path, i, err)
		}
		e.id = id
		entries[e.Hash] = e
	}
	return entries, nil
}

// saveLocked writes the store atomically with mode 0600.
func (s *TokenStore) saveLocked() error {
	if s.path == "" {
		return nil
	}
	f := tokenFile{Version: tokenFileVersion, Tokens: make([]tokenEntry, 0, len(s.entries))}
	for _, e := range s.entries {
		f.Tokens = append(f.Tokens, e)
	}
	sort.Slice(f.Tokens, func(i, j int) bool {
		if f.Tokens[i].Identity != f.Tokens[j].Identity {
			return f.Tokens[i].Identity < f.Tokens[j].Identity
		}
		return f.Tokens[i].Hash < f.Tokens[j].Hash
	})
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("authn: encode token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("authn: token file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("authn: token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), s.path)
	}
	if werr != nil {
		return fmt.Errorf("authn: write token file: %w", werr)
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("authn: token file: %w", err)
	}
	s.stamp = fileStamp{info: st}
	return nil
}
