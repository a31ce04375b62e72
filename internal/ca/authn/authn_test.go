package authn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/ca/spiffe"
)

var (
	reviews = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "reviews"}
	ratings = spiffe.ID{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "ratings"}
)

func authenticate(s *TokenStore, token string) (spiffe.ID, error) {
	return s.Authenticate(context.Background(), Credentials{BearerToken: token})
}

func TestTokenStoreIssueLookupRevokePersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tokens.json")
	s, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := s.Issue(reviews)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := s.Issue(ratings)
	if err != nil {
		t.Fatal(err)
	}
	if t1 == t2 || !strings.HasPrefix(t1, TokenPrefix) || len(t1) < len(TokenPrefix)+40 {
		t.Fatalf("tokens %q %q", t1, t2)
	}
	if id, err := authenticate(s, t1); err != nil || id != reviews {
		t.Fatalf("t1 → %v, %v", id, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), t1) || strings.Contains(string(data), strings.TrimPrefix(t1, TokenPrefix)) {
		t.Fatal("token file stores the token itself, not its hash")
	}

	// Another instance (another process) sees the tokens and a revocation.
	s2, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := authenticate(s2, t2); err != nil || id != ratings {
		t.Fatalf("reopened store: t2 → %v, %v", id, err)
	}
	if ok, err := s2.Revoke(t1); !ok || err != nil {
		t.Fatalf("Revoke: %v %v", ok, err)
	}
	if _, err := authenticate(s, t1); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token (seen by first instance): %v", err)
	}
	if ok, _ := s2.Revoke(t1); ok {
		t.Error("second revocation reported the token as known")
	}
	if n, err := s.RevokeIdentity(ratings); n != 1 || err != nil {
		t.Fatalf("RevokeIdentity: %d %v", n, err)
	}
	if _, err := authenticate(s2, t2); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("token of revoked identity: %v", err)
	}
	if s.Len() != 0 {
		t.Errorf("Len %d after revoking everything", s.Len())
	}
}

func TestTokenStoreRejects(t *testing.T) {
	s, err := OpenTokenStore("")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Issue(reviews)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "weft_bt_", tok + "x", strings.TrimPrefix(tok, TokenPrefix), strings.ToUpper(tok)} {
		if _, err := authenticate(s, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("token %q: %v, want ErrUnauthenticated", bad, err)
		}
	}
	if _, err := s.Issue(spiffe.ID{TrustDomain: "cluster.local", Namespace: "a/b", ServiceAccount: "c"}); err == nil {
		t.Error("issued a token for an invalid identity")
	}
}

func TestTokenFileErrors(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":     "{",
		"version":      `{"version": 7, "tokens": []}`,
		"bad hash":     `{"version": 1, "tokens": [{"sha256": "abc", "identity": "spiffe://cluster.local/ns/a/sa/b"}]}`,
		"bad identity": `{"version": 1, "tokens": [{"sha256": "` + strings.Repeat("ab", 32) + `", "identity": "spiffe://cluster.local/ns/a"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			os.WriteFile(path, []byte(content), 0o600)
			_, err := OpenTokenStore(path)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s", err, path)
			}
		})
	}
}

type fixed struct {
	id  spiffe.ID
	err error
}

func (f fixed) Authenticate(context.Context, Credentials) (spiffe.ID, error) { return f.id, f.err }

func TestChain(t *testing.T) {
	rejected := fixed{err: ErrUnauthenticated}
	if id, err := (Chain{rejected, fixed{id: reviews}}).Authenticate(context.Background(), Credentials{}); err != nil || id != reviews {
		t.Errorf("second authenticator not tried: %v %v", id, err)
	}
	broken := errors.New("kube API down")
	if _, err := (Chain{fixed{err: broken}, fixed{id: reviews}}).Authenticate(context.Background(), Credentials{}); !errors.Is(err, broken) {
		t.Errorf("internal error not returned: %v", err)
	}
	if _, err := (Chain{rejected, rejected}).Authenticate(context.Background(), Credentials{}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("all rejected: %v", err)
	}
	if _, err := (Chain{}).Authenticate(context.Background(), Credentials{}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("empty chain: %v", err)
	}
}
