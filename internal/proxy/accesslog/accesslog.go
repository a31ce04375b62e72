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
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// DefaultQueue is the number of entries buffered before dropping.
const DefaultQueue = 4096

// Entry is one access log line, with the fields of Istio's JSON access
// log format (%START_TIME%, %REQ(:METHOD)%, %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%,
// %PROTOCOL%, %RESPONSE_CODE%, %RESPONSE_FLAGS%, %RESPONSE_CODE_DETAILS%,
// %CONNECTION_TERMINATION_DETAILS%, %UPSTREAM_TRANSPORT_FAILURE_REASON%,
// %BYTES_RECEIVED%, %BYTES_SENT%, %DURATION%,
// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%, %REQ(X-FORWARDED-FOR)%,
// %REQ(USER-AGENT)%, %REQ(X-REQUEST-ID)%, %REQ(:AUTHORITY)%,
// %UPSTREAM_HOST%, %UPSTREAM_CLUSTER%, %UPSTREAM_LOCAL_ADDRESS%,
// %DOWNSTREAM_LOCAL_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS%,
// %REQUESTED_SERVER_NAME%, %ROUTE_NAME%).
//
// ConnectionTerminationDetails is set only by a network filter that
// closes the connection (Envoy: RBAC network deny); an HTTP request or a
// proxied TCP connection has none, so it is null, as in Envoy. An empty string is written as JSON null,
// as Envoy's JSON format writes absent values; durations are
// milliseconds. Entries are built on the request path without
// allocating pointers; AppendJSON encodes them on the writer goroutine.
type Entry struct {
	StartTime                    time.Time
	Method                       string
	Path                         string
	Protocol                     string
	ResponseCode                 int
	ResponseFlags                string
	ResponseCodeDetails          string
	ConnectionTerminationDetails string
	UpstreamTransportFailure     string
	BytesReceived                int64
	BytesSent                    int64
	Duration                     time.Duration
	UpstreamServiceTime          time.Duration // 0: absent
	XForwardedFor                string
	UserAgent                    string
	RequestID                    string
	Authority                    string
	UpstreamHost                 string
	UpstreamCluster              string
	UpstreamLocalAddress         string
	DownstreamLocalAddress       string
	DownstreamRemoteAddress      string
	RequestedServerName          string
	RouteName                    string
}

// AppendJSON appends e as one JSON object (no newline) to b.
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"start_time":"`...)
	b = e.StartTime.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '"')
	b = appendStr(b, "method", e.Method)
	b = appendStr(b, "path", e.Path)
	b = appendStr(b, "protocol", e.Protocol)
	b = appendInt(b, "response_code", int64(e.ResponseCode))
	b = appendStr(b, "response_flags", flags(e.ResponseFlags))
	b = appendStr(b, "response_code_details", e.ResponseCodeDetails)
	b = appendStr(b, "connection_termination_details", e.ConnectionTerminationDetails)
	b = appendStr(b, "upstream_transport_failure_reason", e.UpstreamTransportFailure)
	b = appendInt(b, "bytes_received", e.BytesReceived)
	b = appendInt(b, "bytes_sent", e.BytesSent)
	b = appendInt(b, "duration", e.Duration.Milliseconds())
	if e.UpstreamServiceTime > 0 {
		// A header value in Envoy's format, hence a string.
		b = append(b, `,"upstream_service_time":"`...)
		b = strconv.AppendInt(b, e.UpstreamServiceTime.Milliseconds(), 10)
		b = append(b, '"')
	} else {
		b = appendStr(b, "upstream_service_time", "")
	}
	b = appendStr(b, "x_forwarded_for", e.XForwardedFor)
	b = appendStr(b, "user_agent", e.UserAgent)
	b = appendStr(b, "request_id", e.RequestID)
	b = appendStr(b, "authority", e.Authority)
	b = appendStr(b, "upstream_host", e.UpstreamHost)
	b = appendStr(b, "upstream_cluster", e.UpstreamCluster)
	b = appendStr(b, "upstream_local_address", e.UpstreamLocalAddress)
	b = appendStr(b, "downstream_local_address", e.DownstreamLocalAddress)
	b = appendStr(b, "downstream_remote_address", e.DownstreamRemoteAddress)
	b = appendStr(b, "requested_server_name", e.RequestedServerName)
	b = appendStr(b, "route_name", e.RouteName)
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler.
func (e Entry) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

// appendStr appends ,"key":"v" with JSON escaping, or null for "".
func appendStr(b []byte, key, v string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	if v == "" {
		return append(b, "null"...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

const hex = "0123456789abcdef"

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
	var line []byte
	write := func(e *Entry) {
		line = append(e.AppendJSON(line[:0]), '\n')
		bw.Write(line)
	}
	for {
		select {
		case e := <-l.queue:
			write(&e)
			if len(l.queue) == 0 {
				bw.Flush()
			}
		case <-ctx.Done():
			for {
				select {
				case e := <-l.queue:
					write(&e)
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
		StartTime:           in.Start,
		Method:              in.Method,
		Path:                in.Path,
		Protocol:            protocol(in.Protocol),
		ResponseCode:        in.Status,
		ResponseFlags:       in.Flags,
		ResponseCodeDetails: details(in),
		BytesReceived:       in.BytesIn,
		BytesSent:           in.BytesOut,
		Duration:            in.Duration,
		UpstreamServiceTime: in.UpstreamServiceTime,
		Authority:           in.Authority,
		UpstreamCluster:     in.Cluster,
		RouteName:           in.Route,
	}
	if r := in.Request; r != nil {
		// %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%: the request target as sent.
		if p := r.Header.Get("X-Envoy-Original-Path"); p != "" {
			e.Path = p
		} else if r.RequestURI != "" {
			e.Path = r.RequestURI
		}
		e.XForwardedFor = r.Header.Get("X-Forwarded-For")
		e.UserAgent = r.Header.Get("User-Agent")
		e.RequestID = r.Header.Get("X-Request-Id")
	}
	if in.Upstream != nil {
		e.UpstreamHost = in.Upstream.Addr
	}
	if a := in.UpstreamLocalAddress; a != nil {
		e.UpstreamLocalAddress = a.String()
	}
	if strContains(in.Flags, httpproxy.FlagConnectFailure) {
		e.UpstreamTransportFailure = "connection_failure"
	}
	connFields(&e, in.Conn)
	if in.ClientAddress != "" {
		// %DOWNSTREAM_REMOTE_ADDRESS% is the trusted client address the
		// connection manager took from X-Forwarded-For.
		e.DownstreamRemoteAddress = in.ClientAddress
	}
	return e
}

// TCPEntry builds the entry of one finished tcp_proxy connection.
func TCPEntry(start time.Time, d time.Duration, cluster string, host *upstream.Host, conn *httpproxy.ConnInfo, fl string, sent, received int64) Entry {
	e := Entry{
		StartTime:       start,
		ResponseFlags:   fl,
		BytesReceived:   received,
		BytesSent:       sent,
		Duration:        d,
		UpstreamCluster: cluster,
	}
	if host != nil {
		e.UpstreamHost = host.Addr
	}
	if fl == httpproxy.FlagConnectFailure {
		e.UpstreamTransportFailure = "connection_failure"
	}
	connFields(&e, conn)
	if conn != nil {
		e.ConnectionTerminationDetails = conn.TerminationDetails // network RBAC denial
	}
	return e
}

func connFields(e *Entry, c *httpproxy.ConnInfo) {
	if c == nil {
		return
	}
	e.DownstreamLocalAddress = c.LocalAddr
	e.DownstreamRemoteAddress = c.RemoteAddr
	e.RequestedServerName = c.ServerName
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
