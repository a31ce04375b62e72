// Package weftd assembles the control plane: configuration sources, the
// mesh model store, the xDS server and the admin HTTP server, with one
// typed configuration and an explicit lifecycle.
package weftd

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is weftd's whole configuration. It is read from an optional YAML
// file and then from command-line flags, which override the file; no
// environment variables are consulted.
type Config struct {
	// ConfigDir is the directory of Istio YAML served in local mode. It is
	// read recursively and watched for changes.
	ConfigDir string `json:"configDir"`
	// ListenAddress is the address the xDS and admin servers bind to;
	// empty means all interfaces.
	ListenAddress string `json:"listenAddress"`
	// XDSPort is the plaintext xDS (ADS) gRPC port. Istio's is 15010.
	XDSPort int `json:"xdsPort"`
	// AdminPort serves /healthz, /metrics and /debug/*. Istio's is 15014.
	AdminPort int `json:"adminPort"`
	// SecureXDSPort serves Istio's certificate API
	// (IstioCertificateService) over TLS. Istio's is 15012; 0 picks a free
	// port, -1 disables the CA.
	SecureXDSPort int `json:"secureXdsPort"`
	// CA configures the certificate authority.
	CA CAConfig `json:"ca"`
	// Debounce is how long a configuration change waits for quiet before
	// a push; MaxDebounce caps the wait under constant churn.
	Debounce    Duration `json:"debounce"`
	MaxDebounce Duration `json:"maxDebounce"`
	// PushThrottle bounds how many proxies may hold a configuration they
	// have not yet acknowledged (istiod's PILOT_PUSH_THROTTLE); it keeps
	// memory flat when a change reaches thousands of proxies at once.
	PushThrottle int `json:"pushThrottle"`
	// FileDebounce is how long the file source waits after a file event
	// before re-reading.
	FileDebounce Duration `json:"fileDebounce"`
	// ShutdownTimeout bounds a clean shutdown after SIGTERM.
	ShutdownTimeout Duration `json:"shutdownTimeout"`
	// Log configures logging.
	Log LogConfig `json:"log"`
	// PathNormalization is Istio's meshConfig.pathNormalization for every
	// proxy: NONE, BASE (default), MERGE_SLASHES or
	// DECODE_AND_MERGE_SLASHES (docs/authorization.md).
	PathNormalization string `json:"pathNormalization"`
	// MemoryLimit is the Go runtime's soft memory limit for weftd: "auto"
	// (default) is 90% of the cgroup's memory.max when one is set, as
	// istiod does; "none" leaves Go's default; or a size such as 512MiB or
	// 2GiB. Near the limit the garbage collector runs more often instead
	// of letting the heap double.
	MemoryLimit string `json:"memoryLimit"`
}

// CAConfig configures weftd's certificate authority (Istio's citadel).
type CAConfig struct {
	// Dir holds the self-signed root, created on first start and reused
	// after (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem).
	// Default: $XDG_STATE_HOME/weft/ca, else ~/.local/state/weft/ca.
	Dir string `json:"dir"`
	// PluggedDir, when set, holds an existing CA in Istio's cacerts layout
	// and is used instead of Dir.
	PluggedDir string `json:"pluggedDir"`
	// TrustDomain is the SPIFFE trust domain of workload identities.
	TrustDomain string `json:"trustDomain"`
	// WorkloadTTL is the lifetime of workload certificates.
	WorkloadTTL Duration `json:"workloadTTL"`
	// TokenFile stores the bootstrap tokens workloads prove their identity
	// with in local mode (hashes only). Default: tokens.json in Dir.
	TokenFile string `json:"tokenFile"`
}

// LogConfig configures weftd's structured logs.
type LogConfig struct {
	// Format is "text" or "json".
	Format string `json:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `json:"level"`
}

// Duration is a time.Duration that reads and writes Go duration strings
// ("100ms") in YAML and JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %s", b)
	}
	*d = Duration(v)
	return nil
}

// String returns the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig returns the configuration weftd runs with when nothing is
// set.
func DefaultConfig() Config {
	return Config{
		ConfigDir:         "",
		XDSPort:           15010,
		SecureXDSPort:     15012,
		CA:                CAConfig{TrustDomain: "cluster.local", WorkloadTTL: Duration(24 * time.Hour)},
		AdminPort:         15014,
		Debounce:          Duration(100 * time.Millisecond),
		MaxDebounce:       Duration(10 * time.Second),
		PushThrottle:      100,
		FileDebounce:      Duration(100 * time.Millisecond),
		ShutdownTimeout:   Duration(5 * time.Second),
		Log:               LogConfig{Format: "text", Level: "info"},
		PathNormalization: "BASE",
		MemoryLimit:       memoryLimitAuto,
	}
}

// Validate reports every problem with the configuration, naming each field.
func (c *Config) Validate() error {
	var errs []error
	port := func(name string, p int) {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is not a port number (0-65535)", name, p))
		}
	}
	port("xdsPort", c.XDSPort)
	port("adminPort", c.AdminPort)
	if c.SecureXDSPort != -1 {
		port("secureXdsPort", c.SecureXDSPort)
	}
	if c.XDSPort != 0 && c.XDSPort == c.AdminPort {
		errs = append(errs, fmt.Errorf("adminPort: %d is also the xdsPort", c.AdminPort))
	}
	if c.SecureXDSPort > 0 && (c.SecureXDSPort == c.XDSPort || c.SecureXDSPort == c.AdminPort) {
		errs = append(errs, fmt.Errorf("secureXdsPort: %d is also used by another port", c.SecureXDSPort))
	}
	if c.CA.TrustDomain == "" || strings.ContainsAny(c.CA.TrustDomain, "/:") {
		errs = append(errs, fmt.Errorf("ca.trustDomain: %q is not a valid trust domain", c.CA.TrustDomain))
	}
	if c.CA.WorkloadTTL <= 0 {
		errs = append(errs, fmt.Errorf("ca.workloadTTL: must be positive, got %s", c.CA.WorkloadTTL))
	}
	if c.ConfigDir != "" {
		if st, err := os.Stat(c.ConfigDir); err != nil {
			errs = append(errs, fmt.Errorf("configDir: %v", err))
		} else if !st.IsDir() {
			errs = append(errs, fmt.Errorf("configDir: %s is not a directory", c.ConfigDir))
		}
	}
	for name, d := range map[string]Duration{"debounce": c.Debounce, "maxDebounce": c.MaxDebounce, "fileDebounce": c.FileDebounce, "shutdownTimeout": c.ShutdownTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", name, d))
		}
	}
	if c.PushThrottle < 1 {
		errs = append(errs, fmt.Errorf("pushThrottle: must be at least 1, got %d", c.PushThrottle))
	}
	if c.MaxDebounce < c.Debounce {
		errs = append(errs, fmt.Errorf("maxDebounce: %s is shorter than debounce %s", c.MaxDebounce, c.Debounce))
	}
	switch c.PathNormalization {
	case "", "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES":
	default:
		errs = append(errs, fmt.Errorf("pathNormalization: %q is not NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES", c.PathNormalization))
	}
	if _, err := parseMemoryLimit(c.MemoryLimit, func() ([]byte, error) { return []byte("max"), nil }); err != nil {
		errs = append(errs, fmt.Errorf("memoryLimit: %v", err))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	return errors.Join(errs...)
}

// LoadConfig builds the configuration from args (without the program
// name): defaults, then the file named by --config if any, then the other
// flags. It returns a validated configuration.
func LoadConfig(args []string) (Config, error) {
	cfg := DefaultConfig()
	// Find --config first so the file applies before the other flags.
	pre := flag.NewFlagSet("weftd", flag.ContinueOnError)
	pre.SetOutput(discard{})
	file := pre.String("config", "", "")
	registerFlags(pre, &Config{})
	_ = pre.Parse(args)
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", *file, err)
		}
	}
	fs := flag.NewFlagSet("weftd", flag.ContinueOnError)
	fs.String("config", "", "optional YAML file with weftd's configuration (flags override it)")
	registerFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return cfg, cfg.Validate()
}

func registerFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.ConfigDir, "config-dir", c.ConfigDir, "directory of Istio YAML to serve (local mode), read recursively and watched")
	fs.StringVar(&c.ListenAddress, "listen-address", c.ListenAddress, "address to bind the xDS and admin servers to (empty: all interfaces)")
	fs.IntVar(&c.XDSPort, "xds-port", c.XDSPort, "plaintext xDS (ADS) gRPC port")
	fs.IntVar(&c.AdminPort, "admin-port", c.AdminPort, "admin HTTP port (/healthz, /metrics, /debug/...)")
	fs.IntVar(&c.SecureXDSPort, "secure-xds-port", c.SecureXDSPort, "TLS port of the certificate API (IstioCertificateService); -1 disables the CA")
	fs.StringVar(&c.CA.Dir, "ca-dir", c.CA.Dir, "directory of the self-signed CA, created on first start (default $XDG_STATE_HOME/weft/ca)")
	fs.StringVar(&c.CA.PluggedDir, "cacerts-dir", c.CA.PluggedDir, "directory of a plugged-in CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)")
	fs.StringVar(&c.CA.TrustDomain, "trust-domain", c.CA.TrustDomain, "SPIFFE trust domain of workload identities")
	fs.Var(&c.CA.WorkloadTTL, "workload-cert-ttl", "lifetime of workload certificates")
	fs.StringVar(&c.CA.TokenFile, "token-file", c.CA.TokenFile, "file of bootstrap tokens for workload authentication (default tokens.json in the CA directory)")
	fs.Var(&c.Debounce, "debounce", "quiet period after a change before pushing")
	fs.Var(&c.MaxDebounce, "max-debounce", "longest a push waits under constant change")
	fs.IntVar(&c.PushThrottle, "push-throttle", c.PushThrottle, "most proxies that may hold an unacknowledged configuration at once")
	fs.Var(&c.FileDebounce, "file-debounce", "quiet period after a file event before re-reading")
	fs.Var(&c.ShutdownTimeout, "shutdown-timeout", "time allowed for a clean shutdown")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "Go soft memory limit: auto (90% of the cgroup's memory.max), none, or a size such as 512MiB")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: text or json")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn or error")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
