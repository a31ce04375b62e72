// Package accesslog writes weft-proxy's access log: one JSON object per
// HTTP request or TCP connection, with the fields of Envoy's default
// format as Istio's accessLogEncoding: JSON emits them.
//
// Logging never blocks the data path: entries go through a bounded queue
// to a single writer goroutine, and an entry that finds the queue full is
// dropped and counted.
package accesslog

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// DefaultQueue is the number of entries buffered before dropping.
const DefaultQueue = 4096

// Entry is one access log line. Absent values are JSON null, as in
// Envoy's JSON format; durations are milliseconds.
type Entry struct {
	StartTime                    string  `json:"start_time"`
	Method                       *string `json:"method"`
	Path                         *string `json:"path"`
	Protocol                     *string `json:"protocol"`
	ResponseCode                 int     `json:"response_code"`
	ResponseFlags                string  `json:"response_flags"`
	ResponseCodeDetails          *string `json:"response_code_details"`
	ConnectionTerminationDetails *string `json:"connection_termination_details"`
	UpstreamTransportFailure     *string `json:"upstream_transport_failure_reason"`
	BytesReceived                int64   `json:"bytes_received"`
	BytesSent                    int64   `json:"bytes_sent"`
	Duration                     int64   `json:"duration"`
	UpstreamServiceTime          *string `json:"upstream_service_time"`
	XForwardedFor                *string `json:"x_forwarded_for"`
	UserAgent                    *string `json:"user_agent"`
	RequestID                    *string `json:"request_id"`
	Authority                    *string `json:"authority"`
	UpstreamHost                 *string `json:"upstream_host"`
	UpstreamCluster              *string `json:"upstream_cluster"`
	UpstreamLocalAddress         *string `json:"upstream_local_address"`
	DownstreamLocalAddress       *string `json:"downstream_local_address"`
	DownstreamRemoteAddress      *string `json:"downstream_remote_address"`
	RequestedServerName          *string `json:"requested_server_name"`
	RouteName                    *string `json:"route_name"`
}

// Logger formats and writes entries. It implements httpproxy.Observer and
// the listener manager's TCP observer. Run owns the writer.
type Logger struct {
	out     io.Writer
	queue   chan Entry
	dropped atomic.Int64
	// tcpStart records when each tcp_proxy connection opened, keyed by
	// its ConnInfo (unique per connection).
	tcpStart sync.Map
	done     chan struct{}
}

// New returns a logger writing to out with a queue of size entries
// (DefaultQueue when size <= 0). Entries are written once Run runs.
func New(out io.Writer, size int) *Logger {
	if size <= 0 {
		size = DefaultQueue
	}
	return &Logger{out: out, queue: make(chan Entry, size), done: make(chan struct{})}
}

// Dropped returns how many entries were dropped because the queue was full.
func (l *Logger) Dropped() int64 { return l.dropped.Load() }

// Run writes queued entries until ctx is done, then writes what is still
// queued and returns. Output is buffered and flushed whenever the queue
// is empty.
func (l *Logger) Run(ctx context.Context) {
	defer close(l.done)
	bw := bufio.NewWriterSize(l.out, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for {
		select {
		case e := <-l.queue:
			enc.Encode(&e)
			if len(l.queue) == 0 {
				bw.Flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-l.queue:
					enc.Encode(&e)
				default:
					bw.Flush()
					return
				}
			}
		}
	}
}

// Done is closed when Run has returned.
func (l *Logger) Done() <-chan struct{} { return l.done }

// Log queues e, or drops and counts it when the queue is full.
func (l *Logger) Log(e Entry) {
	select {
	case l.queue <- e:
	default:
		l.dropped.Add(1)
	}
}

// Observe implements httpproxy.Observer.
func (l *Logger) Observe(in *httpproxy.Info) { l.Log(HTTPEntry(in)) }

// TCPOpened records the start of a tcp_proxy connection.
func (l *Logger) TCPOpened(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo) {
	if conn != nil {
		l.tcpStart.Store(conn, time.Now())
	}
}

// TCPClosed logs a finished tcp_proxy connection; sent and received are
// bytes to and from the downstream.
func (l *Logger) TCPClosed(cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, flags string, sent, received int64) {
	start := time.Now()
	if conn != nil {
		if v, ok := l.tcpStart.LoadAndDelete(conn); ok {
			start = v.(time.Time)
		}
	}
	l.Log(TCPEntry(start, time.Since(start), cluster, host, conn, flags, sent, received))
}

// HTTPEntry builds the entry of one finished request. in.Request, when
// set, supplies the request headers.
func HTTPEntry(in *httpproxy.Info) Entry {
	e := Entry{
		StartTime:     formatTime(in.Start),
		Method:        str(in.Method),
		Protocol:      str(protocol(in.Protocol)),
		ResponseCode:  in.Status,
		ResponseFlags: flags(in.Flags),
		BytesReceived: in.BytesIn,
		BytesSent:     in.BytesOut,
		Duration:      in.Duration.Milliseconds(),
		Authority:     str(in.Authority),
		RouteName:     str(in.Route),
		Path:          str(in.Path),
	}
	e.ResponseCodeDetails = str(details(in))
	if in.UpstreamServiceTime > 0 {
		e.UpstreamServiceTime = str(strconv.FormatInt(in.UpstreamServiceTime.Milliseconds(), 10))
	}
	if r := in.Request; r != nil {
		if p := r.Header.Get("X-Envoy-Original-Path"); p != "" {
			e.Path = str(p)
		} else if r.URL != nil {
			e.Path = str(r.URL.RequestURI())
		}
		e.XForwardedFor = header(r.Header, "X-Forwarded-For")
		e.UserAgent = header(r.Header, "User-Agent")
		e.RequestID = header(r.Header, "X-Request-Id")
	}
	if in.Upstream != nil || in.Cluster != "" {
		if in.Upstream != nil {
			e.UpstreamHost = str(in.Upstream.Addr)
		}
		e.UpstreamCluster = str(in.Cluster)
	}
	if strContains(in.Flags, httpproxy.FlagConnectFailure) {
		e.UpstreamTransportFailure = str("connection_failure")
	}
	connFields(&e, in.Conn)
	return e
}

// TCPEntry builds the entry of one finished tcp_proxy connection.
func TCPEntry(start time.Time, d time.Duration, cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, fl string, sent, received int64) Entry {
	e := Entry{
		StartTime:       formatTime(start),
		ResponseFlags:   flags(fl),
		BytesReceived:   received,
		BytesSent:       sent,
		Duration:        d.Milliseconds(),
		UpstreamCluster: str(cluster),
	}
	if host != nil {
		e.UpstreamHost = str(host.Addr)
	}
	if fl == httpproxy.FlagConnectFailure {
		e.UpstreamTransportFailure = str("connection_failure")
	}
	connFields(&e, conn)
	return e
}

func connFields(e *Entry, c *httpproxy.ConnInfo) {
	if c == nil {
		return
	}
	e.DownstreamLocalAddress = str(c.LocalAddr)
	e.DownstreamRemoteAddress = str(c.RemoteAddr)
	e.RequestedServerName = str(c.ServerName)
}

// details is Envoy's %RESPONSE_CODE_DETAILS% for the request.
func details(in *httpproxy.Info) string {
	if in.Details != "" {
		return in.Details
	}
	switch f := firstFlag(in.Flags); f {
	case "":
		if in.Upstream != nil {
			return "via_upstream"
		}
		return ""
	case httpproxy.FlagNoRoute:
		return "route_not_found"
	case httpproxy.FlagNoHealthy:
		return "no_healthy_upstream"
	case httpproxy.FlagNoCluster:
		return "cluster_not_found"
	case httpproxy.FlagConnectFailure:
		return "upstream_reset_before_response_started{connection_failure}"
	case httpproxy.FlagOverflow:
		return "upstream_reset_before_response_started{overflow}"
	case httpproxy.FlagReset:
		return "upstream_reset_after_response_started{connection_termination}"
	case httpproxy.FlagTimeout:
		return "upstream_response_timeout"
	case httpproxy.FlagFaultAbort:
		return "fault_filter_abort"
	case httpproxy.FlagDownstreamCancel:
		return "downstream_remote_disconnect"
	case httpproxy.FlagStreamIdle:
		return "stream_idle_timeout"
	case httpproxy.FlagFaultDelay:
		if in.Upstream != nil {
			return "via_upstream"
		}
	}
	return ""
}

func firstFlag(f string) string {
	for i := 0; i < len(f); i++ {
		if f[i] == ',' {
			return f[:i]
		}
	}
	return f
}

func strContains(list, flag string) bool {
	for list != "" {
		f := firstFlag(list)
		if f == flag {
			return true
		}
		if len(f) == len(list) {
			return false
		}
		list = list[len(f)+1:]
	}
	return false
}

// flags is %RESPONSE_FLAGS%: "-" when none.
func flags(f string) string {
	if f == "" {
		return "-"
	}
	return f
}

// protocol is %PROTOCOL%: Envoy says HTTP/2 where Go says HTTP/2.0.
func protocol(p string) string {
	if p == "HTTP/2.0" {
		return "HTTP/2"
	}
	return p
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func header(h http.Header, name string) *string { return str(h.Get(name)) }

// str returns nil for "" (JSON null) and &s otherwise.
func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
