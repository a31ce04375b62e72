package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Config describes a load run.
type Config struct {
	// Target is the xDS server's address (host:port).
	Target string
	// Clients is the number of simulated proxies.
	Clients int
	// Delta selects the incremental protocol.
	Delta bool
	// Node returns the node of client i (default Node).
	Node func(i int) *core.Node
	// Settle is how long no client may receive anything for a phase
	// (initial configuration, or the change) to count as finished
	// (default 1 s).
	Settle time.Duration
	// Timeout bounds each phase (default 2 min).
	Timeout time.Duration
	// DialOptions are added to each client's connection options.
	DialOptions []grpc.DialOption
	// Settled, if set, is called when a phase ("initial", "change") has
	// settled, with the clients still connected (to take a heap profile,
	// say).
	Settled func(phase string)
}

// Result is the outcome of a load run.
type Result struct {
	Clients int
	// Initial is the time until every client had its first configuration
	// (all four types acknowledged), from the start of the run.
	Initial time.Duration
	// Updated is the number of clients that received the change.
	Updated int
	// P50, P99 and Max are the times from the change until a client
	// acknowledged its last response of the change.
	P50, P99, Max time.Duration
	// Responses counts the responses received because of the change, by
	// type short name.
	Responses map[string]int64
}

// String formats the result on a few lines.
func (r *Result) String() string {
	return fmt.Sprintf("clients %d, initial config to all in %v\nchange: %d/%d clients updated, convergence p50 %v p99 %v max %v\nresponses after change: cds %d eds %d lds %d rds %d",
		r.Clients, r.Initial.Round(time.Millisecond), r.Updated, r.Clients,
		r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond),
		r.Responses["cds"], r.Responses["eds"], r.Responses["lds"], r.Responses["rds"])
}

// tracker follows one client's responses.
type tracker struct {
	last  atomic.Int64 // unix nanos of the last ACK or NACK sent
	ready atomic.Bool  // has CDS, EDS, LDS and RDS at least once
}

// Run connects cfg.Clients simulated clients, waits until all have their
// initial configuration, calls change (which must change the
// configuration every client sees) and measures until every client has
// acknowledged the result. The clients disconnect when Run returns.
func Run(ctx context.Context, cfg Config, change func(context.Context) error) (*Result, error) {
	if cfg.Clients <= 0 {
		return nil, errors.New("loadtest: Clients must be positive")
	}
	if cfg.Node == nil {
		cfg.Node = Node
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		lastAny  atomic.Int64
		counting atomic.Bool
		countsMu sync.Mutex
		counts   = map[string]int64{}
		errMu    sync.Mutex
		runErr   error
		wg       sync.WaitGroup
	)
	clientErr := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return runErr
	}
	trackers := make([]*tracker, cfg.Clients)
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, cfg.DialOptions...)
	begin := time.Now()
	for i := range cfg.Clients {
		tr := &tracker{}
		trackers[i] = tr
		conn, err := grpc.NewClient(cfg.Target, opts...)
		if err != nil {
			return nil, err
		}
		c := &Client{Node: cfg.Node(i), Delta: cfg.Delta, Discard: true} // the runner reads events only
		c.OnResponse = func(ev Response) {
			now := ev.Time.UnixNano()
			tr.last.Store(now)
			lastAny.Store(now)
			if counting.Load() {
				countsMu.Lock()
				counts[typeName(ev.TypeURL)]++
				countsMu.Unlock()
			}
			if !tr.ready.Load() && c.Count(resource.ClusterType) > 0 && c.Count(resource.EndpointType) > 0 &&
				c.Count(resource.ListenerType) > 0 && c.Count(resource.RouteType) > 0 {
				tr.ready.Store(true)
			}
		}
		wg.Go(func() {
			defer conn.Close()
			if err := c.Run(ctx, conn); err != nil {
				errMu.Lock()
				if runErr == nil {
					runErr = fmt.Errorf("client %s: %w", c.Node.GetId(), err)
				}
				errMu.Unlock()
				cancel()
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	// settled waits until cond holds and nothing arrived for Settle.
	settled := func(cond func() bool) error {
		deadline := time.Now().Add(cfg.Timeout)
		for {
			if ctx.Err() != nil {
				if err := clientErr(); err != nil {
					return err
				}
				return ctx.Err()
			}
			if cond() && time.Since(time.Unix(0, lastAny.Load())) >= cfg.Settle {
				return nil
			}
			if time.Now().After(deadline) {
				return errors.New("loadtest: timed out")
			}
			time.Sleep(cfg.Settle / 20)
		}
	}
	res := &Result{Clients: cfg.Clients}
	var readyAt time.Time
	if err := settled(func() bool {
		for _, tr := range trackers {
			if !tr.ready.Load() {
				return false
			}
		}
		if readyAt.IsZero() {
			readyAt = time.Now()
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("initial configuration: %w", err)
	}
	res.Initial = readyAt.Sub(begin)
	if cfg.Settled != nil {
		cfg.Settled("initial")
	}

	counting.Store(true)
	t0 := time.Now()
	if err := change(ctx); err != nil {
		return nil, fmt.Errorf("change: %w", err)
	}
	updated := func() int {
		n := 0
		for _, tr := range trackers {
			if tr.last.Load() > t0.UnixNano() {
				n++
			}
		}
		return n
	}
	err := settled(func() bool { return updated() == cfg.Clients })
	if err == nil && cfg.Settled != nil {
		cfg.Settled("change")
	}
	if cerr := clientErr(); err != nil && cerr != nil {
		return nil, cerr
	}
	var lat []time.Duration
	for _, tr := range trackers {
		if l := tr.last.Load(); l > t0.UnixNano() {
			lat = append(lat, time.Duration(l-t0.UnixNano()))
		}
	}
	slices.Sort(lat)
	res.Updated = len(lat)
	if len(lat) > 0 {
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		res.Max = lat[len(lat)-1]
	}
	countsMu.Lock()
	res.Responses = counts
	countsMu.Unlock()
	return res, err
}

func typeName(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.SecretType:
		return "sds"
	}
	return typeURL
}
