package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/weftmesh/weft/examples/sampleserver"
)

// DefaultListen is the address every service listens on unless told otherwise:
// bookinfo's port 9080 on all interfaces.
const DefaultListen = ":9080"

// Command is one bookinfo service as chosen on the command line:
// "bookinfo productpage|details|reviews|ratings [flags]".
type Command struct {
	// Service is productpage, details, reviews or ratings.
	Service string
	// Listen is the address to serve on, e.g. 127.0.0.10:9080.
	Listen string
	// Productpage configures productpage.
	Productpage ProductpageConfig
	// Reviews configures reviews.
	Reviews ReviewsConfig
}

// Usage is the command line summary.
const Usage = `usage: bookinfo <service> [flags]

services:
  productpage  --listen ADDR --details URL --reviews URL --ratings URL --timeout DURATION
  details      --listen ADDR
  reviews      --listen ADDR --version v1|v2|v3 --ratings URL --ratings-timeout DURATION
               --podname NAME --clustername NAME
  ratings      --listen ADDR

Calls to other services use the proxy in HTTP_PROXY, if set.
Run "bookinfo <service> --help" for the flags' defaults.`

// ParseCommand parses the command line arguments after the program name. It
// returns flag.ErrHelp when help was asked for; other errors name the bad
// argument. Help and flag errors are printed on output.
func ParseCommand(args []string, output io.Writer) (Command, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintln(output, Usage)
			return Command{}, flag.ErrHelp
		}
		return Command{}, errors.New("missing service: want productpage, details, reviews or ratings")
	}
	c := Command{Service: args[0]}
	fs := flag.NewFlagSet("bookinfo "+c.Service, flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Listen, "listen", DefaultListen, "address to serve on: host:port or unix:///path")
	switch c.Service {
	case "productpage":
		fs.StringVar(&c.Productpage.DetailsURL, "details", DefaultDetailsURL, "details service base URL")
		fs.StringVar(&c.Productpage.ReviewsURL, "reviews", DefaultReviewsURL, "reviews service base URL")
		fs.StringVar(&c.Productpage.RatingsURL, "ratings", DefaultRatingsURL, "ratings service base URL")
		fs.DurationVar(&c.Productpage.Timeout, "timeout", DefaultUpstreamTimeout, "timeout of each call (reviews is tried twice)")
	case "reviews":
		host, _ := os.Hostname()
		fs.StringVar(&c.Reviews.Version, "version", "v1", "v1 (no ratings), v2 (black stars) or v3 (red stars)")
		fs.StringVar(&c.Reviews.RatingsURL, "ratings", DefaultRatingsURL, "ratings service base URL")
		fs.DurationVar(&c.Reviews.RatingsTimeout, "ratings-timeout", 0, "timeout of calls to ratings (0: 10s for v2, 2.5s for v3)")
		fs.StringVar(&c.Reviews.Podname, "podname", host, "name reported as podname")
		fs.StringVar(&c.Reviews.Clustername, "clustername", "", "name reported as clustername (empty: null)")
	case "details", "ratings":
	default:
		return Command{}, fmt.Errorf("unknown service %q: want productpage, details, reviews or ratings", c.Service)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return Command{}, err
	}
	if fs.NArg() > 0 {
		return Command{}, fmt.Errorf("bookinfo %s: unexpected argument %q", c.Service, fs.Arg(0))
	}
	if _, err := c.Handler(); err != nil {
		return Command{}, err
	}
	if !strings.HasPrefix(c.Listen, "unix://") {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return Command{}, fmt.Errorf("bookinfo %s: --listen %q: want host:port or unix:///path: %w", c.Service, c.Listen, err)
		}
	}
	return c, nil
}

// Handler builds the chosen service.
func (c Command) Handler() (http.Handler, error) {
	switch c.Service {
	case "productpage":
		return NewProductpage(c.Productpage)
	case "details":
		return NewDetails(), nil
	case "reviews":
		return NewReviews(c.Reviews)
	case "ratings":
		return NewRatings(), nil
	}
	return nil, fmt.Errorf("unknown service %q", c.Service)
}

// Run serves the service on its listen address until ctx ends, logging one
// JSON line at start ("listening", with the bound address) and one per request
// on log.
func (c Command) Run(ctx context.Context, log io.Writer) error {
	h, err := c.Handler()
	if err != nil {
		return err
	}
	ln, err := sampleserver.Listen(c.Listen)
	if err != nil {
		return fmt.Errorf("bookinfo %s: %w", c.Service, err)
	}
	logger := slog.New(slog.NewJSONHandler(log, nil))
	attrs := []any{"service", c.Service, "addr", ln.Addr().String()}
	switch c.Service {
	case "productpage":
		attrs = append(attrs, "details", c.Productpage.DetailsURL, "reviews", c.Productpage.ReviewsURL,
			"ratings", c.Productpage.RatingsURL, "timeout", c.Productpage.Timeout.String())
	case "reviews":
		attrs = append(attrs, "version", c.Reviews.Version, "ratings", c.Reviews.RatingsURL)
	}
	logger.Info("listening", attrs...)
	start := time.Now()
	err = sampleserver.Run(ctx, ln, sampleserver.LogRequests(c.Service, logger, h))
	logger.Info("stopped", "service", c.Service, "uptime_s", time.Since(start).Seconds())
	return err
}
