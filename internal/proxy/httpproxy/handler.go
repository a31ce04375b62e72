package httpproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/proxy/pathnorm"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/telemetry/peermeta"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// maxReplayBody is the largest request body buffered so that the request
// can be retried or mirrored (Envoy's per-connection buffer limit).
const maxReplayBody = 1 << 20

// Handler is one http_connection_manager. It is immutable.
type Handler struct {
	// RouteName is the RDS route configuration to use, unless Static is set.
	RouteName string
	Static    *router.Table
	Resolver  Resolver
	// Observer, when set, receives every request's Info.
	Observer Observer
	// WebSocket allows Upgrade: websocket unless a route disables it.
	WebSocket bool
	// StreamIdleTimeout bounds silence on a request (Envoy default 5m).
	StreamIdleTimeout time.Duration
	// ForwardProxy accepts absolute-form targets and rejects a Host header
	// that disagrees with them.
	ForwardProxy bool
	// Stats are this connection manager's counters (may be shared).
	Stats *Stats
	// ForwardClientCert handles x-forwarded-client-cert (mTLS peers).
	ForwardClientCert ForwardClientCert
	// PathNormalization is applied before filters and routing.
	PathNormalization pathnorm.Options
	// Filters run before routing (jwt_authn, rbac).
	Filters []Filter
	// StripAnyHostPort removes the port from the authority before
	// filters and routing (strip_any_host_port; Istio's gateways).
	StripAnyHostPort bool
	// Tracer, when set, traces every request (see Tracer).
	Tracer Tracer
	// Forwarding is the X-Forwarded-For and internal-request handling.
	Forwarding Forwarding
	// PeerExchange, when set, is Istio's peer metadata exchange: on an
	// Inbound connection manager it reads and strips the client's
	// headers and answers with ours; otherwise it sends ours to mesh
	// upstreams and reads and strips theirs from responses.
	PeerExchange *peermeta.Exchange
	// Inbound is set on the connection managers of inbound listeners.
	Inbound bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// ServeHTTP handles one downstream request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := statePool.Get().(*requestState)
	info, rw := &st.info, &st.rw
	*info = Info{Start: time.Now(), Method: r.Method, Authority: r.Host, Path: r.URL.Path, Protocol: r.Proto, Conn: ConnInfoFrom(r.Context()), Request: r,
		GRPC: strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")}
	if r.ContentLength > 0 {
		info.BytesIn = r.ContentLength
	}
	*rw = responseWriter{ResponseWriter: w}
	var span Span
	if h.Tracer != nil {
		span = h.Tracer.Start(r)
	}
	h.serve(rw, r, info)
	info.Status = rw.status
	if info.Status == 0 {
		info.Status = http.StatusOK
	}
	info.BytesOut = rw.bytes
	info.Duration = time.Since(info.Start)
	if h.Stats != nil {
		h.Stats.record(info)
	}
	if h.Observer != nil {
		h.Observer.Observe(info)
	}
	if span != nil {
		span.End(info)
	}
	// Observers must not retain info (see Observer), so the state is
	// reused; a panicking request simply does not return it.
	*info, *rw = Info{}, responseWriter{}
	statePool.Put(st)
}

// requestState is the per-request bookkeeping, pooled to save
// allocations on the hot path.
type requestState struct {
	info Info
	rw   responseWriter
}

var statePool = sync.Pool{New: func() any { return new(requestState) }}

// Shared X-Forwarded-Proto values; header maps only ever replace them.
var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

func (h *Handler) table() *router.Table {
	if h.Static != nil {
		return h.Static
	}
	return h.Resolver.RouteTable(h.RouteName)
}

func (h *Handler) serve(w *responseWriter, r *http.Request, info *Info) {
	if r.Method == http.MethodConnect {
		localReply(w, info, http.StatusMethodNotAllowed, "", "CONNECT not supported\n")
		return
	}
	if !toOriginForm(r) {
		localReply(w, info, http.StatusBadRequest, "", "Bad Request")
		return
	}
	info.ClientAddress = h.Forwarding.apply(r, info.Conn)
	if h.PeerExchange != nil && h.Inbound {
		var respond bool
		if info.DownstreamPeer, respond = h.PeerExchange.Downstream(r.Header); respond {
			w.peer = h.PeerExchange // every response carries ours, local replies too (Envoy encodes them through the filters)
		}
	}
	if !h.decodeFilters(w, r, info) {
		return
	}
	tab := h.table()
	if tab == nil {
		localReply(w, info, http.StatusNotFound, FlagNoRoute, "")
		return
	}
	_, route := tab.Match(r)
	if route == nil {
		localReply(w, info, http.StatusNotFound, FlagNoRoute, "")
		return
	}
	info.Route = route.Name

	var cors *router.Cors
	if route.Cors != nil {
		if origin := r.Header.Get("Origin"); origin != "" && route.Cors.AllowOrigin(origin) {
			cors = route.Cors
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				hdr := w.Header()
				hdr.Set("Access-Control-Allow-Origin", origin)
				if cors.Methods != "" {
					hdr.Set("Access-Control-Allow-Methods", cors.Methods)
				}
				if cors.Headers != "" {
					hdr.Set("Access-Control-Allow-Headers", cors.Headers)
				}
				if cors.MaxAge != "" {
					hdr.Set("Access-Control-Max-Age", cors.MaxAge)
				}
				if cors.AllowCredentials {
					hdr.Set("Access-Control-Allow-Credentials", "true")
				}
				w.WriteHeader(http.StatusOK)
				return
			}
		}
	}

	if f := route.Fault; f != nil {
		if f.Delay > 0 && f.DelayFraction.Hit() {
			info.Flags = FlagFaultDelay
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				info.Flags = FlagDownstreamCancel
				return
			}
		}
		if f.AbortStatus > 0 && f.AbortFraction.Hit() {
			localReply(w, info, f.AbortStatus, FlagFaultAbort, "fault filter abort")
			return
		}
	}

	switch route.Action {
	case router.ActionRedirect:
		h.redirect(w, r, route, info)
		return
	case router.ActionDirect:
		route.ResponseHeaders.Apply(w.Header())
		if len(route.Direct.Body) > 0 {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(route.Direct.Body)))
		}
		w.WriteHeader(route.Direct.Status)
		w.Write(route.Direct.Body)
		return
	}

	clusterName, wi := route.SelectCluster()
	info.Cluster = clusterName
	cl := h.Resolver.Cluster(clusterName)
	if cl == nil {
		localReply(w, info, http.StatusServiceUnavailable, FlagNoCluster, "")
		return
	}
	h.forward(w, r, route, wi, cl, cors, info)
}

func (h *Handler) redirect(w *responseWriter, r *http.Request, route *router.Route, info *Info) {
	rd := route.Redirect
	code := rd.Code
	if code == 0 {
		code = http.StatusMovedPermanently
	}
	route.ResponseHeaders.Apply(w.Header())
	w.Header().Set("Location", redirectLocation(rd, r, route))
	w.WriteHeader(code)
}

// matchedPrefix is the route's prefix (for prefix_rewrite), "" otherwise.
func rewritePrefix(path string, route *router.Route, repl string) string {
	p := route.MatchedPrefix()
	if p == "" || len(path) < len(p) {
		return path
	}
	return repl + path[len(p):]
}

// attemptResult classifies one upstream attempt.
type attemptResult struct {
	resp    *http.Response
	err     error
	flag    string
	status  int // status to report if err != nil
	connect bool
	timeout bool
	// principal is the SPIFFE ID of the upstream's verified certificate
	// ("" in plain text).
	principal string
}

func (h *Handler) forward(w *responseWriter, r *http.Request, route *router.Route, wi int, cl *upstream.Cluster, cors *router.Cors, info *Info) {
	ctx := r.Context()
	// The connection manager's stream duration limit (max_stream_duration
	// or the grpc-timeout it allows), counted from the stream's start, and
	// the router's timeout (the route's, or for gRPC with max_grpc_timeout
	// the grpc-timeout header's).
	timeout := route.Timeout
	var streamCtx context.Context
	if route.StreamDuration != nil || route.GRPCTimeout != nil && info.GRPC {
		grpcTimeout := r.Header.Get("Grpc-Timeout")
		if d := route.StreamTimeout(grpcTimeout); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, info.Start.Add(d))
			defer cancel()
			streamCtx = ctx
		}
		timeout = route.RouterTimeout(info.GRPC && isGRPC(r), grpcTimeout)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Idle timeout: the route's, else the connection manager's stream idle
	// timeout when no route timeout bounds the request already.
	idle := route.IdleTimeout
	if idle == 0 && timeout == 0 {
		idle = h.StreamIdleTimeout
	}
	var iw *idleWatch
	if idle > 0 && upgradeType(r.Header) == "" {
		ctx, iw = newIdleWatch(ctx, idle)
		defer iw.stop()
	}
	upgrade := upgradeType(r.Header)
	if upgrade != "" {
		allowed := h.WebSocket
		if route.UpgradeWebSocket != nil {
			allowed = *route.UpgradeWebSocket
		}
		if !strings.EqualFold(upgrade, "websocket") || !allowed || r.ProtoMajor != 1 {
			localReply(w, info, http.StatusForbidden, "", "upgrade not allowed\n")
			return
		}
	}

	// Build the outbound request once; attempts only change URL host.
	out := r.WithContext(ctx)
	out.RequestURI = ""
	out.Header = r.Header
	out.Close = false
	removeHopByHop(out.Header)
	if upgrade != "" {
		out.Header.Set("Connection", "Upgrade")
		out.Header.Set("Upgrade", upgrade)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	u := &w.url
	*u = *r.URL
	u.Scheme = "http"
	u.Opaque = ""
	u.User = nil
	if route.PrefixRewrite != "" {
		u.Path = rewritePrefix(u.Path, route, route.PrefixRewrite)
		u.RawPath = ""
	} else if route.RegexRewrite != nil {
		u.Path = route.RegexRewrite.ReplaceAllString(u.Path, route.RegexSubst)
		u.RawPath = ""
	}
	out.URL = u
	if route.HostRewrite != "" {
		out.Host = route.HostRewrite
	}
	if out.Header.Get("X-Request-Id") == "" {
		out.Header["X-Request-Id"] = newRequestIDValue()
	}
	if _, ok := out.Header["X-Forwarded-Proto"]; !ok {
		if r.TLS != nil {
			out.Header["X-Forwarded-Proto"] = protoHTTPS
		} else {
			out.Header["X-Forwarded-Proto"] = protoHTTP
		}
	}
	h.ForwardClientCert.Apply(out.Header, info.Conn)
	route.RequestHeaders.Apply(out.Header)
	if wi >= 0 {
		route.Weighted[wi].RequestHeaders.Apply(out.Header)
	}
	if hv := out.Header.Get("Host"); hv != "" { // :authority set by a header rule
		out.Host = hv
		out.Header.Del("Host")
	}

	// Make the body replayable when retries or mirrors may need it.
	retry := route.Retry
	var replay []byte
	needReplay := (retry != nil && retry.NumRetries > 0) || len(route.Mirrors) > 0
	if out.Body != nil && needReplay {
		if r.ContentLength > 0 && r.ContentLength <= maxReplayBody {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
			if err != nil {
				localReply(w, info, http.StatusBadRequest, FlagDownstreamCancel, "")
				return
			}
			replay = b
			info.BytesIn = int64(len(b))
		} else if r.ContentLength > maxReplayBody {
			retry = nil // too large to buffer: cannot be replayed
		}
	}
	if iw != nil && out.Body != nil && replay == nil {
		out.Body = &idleReadCloser{idleReader: idleReader{r: out.Body, w: iw}, c: out.Body}
	}
	// A body of unknown length (chunked, or HTTP/2 without
	// content-length such as gRPC) is recorded while the first attempt
	// streams it; a retry is possible once it was read to the end within
	// the buffer limit (Envoy's buffering for retries).
	var tee *teeBody
	if retry != nil && out.Body != nil && replay == nil {
		tee = &teeBody{src: out.Body}
		out.Body = tee
	}
	for _, m := range route.Mirrors {
		if m.Fraction.Hit() && (out.Body == nil || replay != nil) {
			h.mirror(out, replay, m.Cluster)
		}
	}

	origDst := ""
	if ci := info.Conn; ci != nil {
		origDst = ci.OriginalDst
	}
	if cl.Kind == upstream.KindOriginalDst && cl.OrigDstHeader() {
		if v := r.Header.Get("X-Envoy-Original-Dst-Host"); v != "" {
			origDst = v
		}
	}
	hash, hasHash := requestHash(route, r)

	var triedBuf [4]*upstream.Host
	tried := triedBuf[:0]
	maxAttempts := 1
	if retry != nil {
		maxAttempts += retry.NumRetries
	}
	var res attemptResult
	retrying := false
	retryFlag := "" // why a retriable outcome was not retried
	for attempt := 1; ; attempt++ {
		info.Attempts = attempt
		var pickSkip func(*upstream.Host) bool
		if retry != nil && retry.PreviousHosts && len(tried) > 0 {
			prev := append([]*upstream.Host(nil), tried...)
			pickSkip = func(x *upstream.Host) bool {
				for _, t := range prev {
					if t == x {
						return true
					}
				}
				return false
			}
		}
		host := cl.Pick(origDst, hash, hasHash, pickSkip)
		if host == nil {
			if retrying {
				cl.ReleaseRetry()
			}
			localReply(w, info, http.StatusServiceUnavailable, FlagNoHealthy, "no healthy upstream")
			return
		}
		info.Upstream = host
		tried = append(tried, host)
		if h.PeerExchange != nil && !h.Inbound {
			h.PeerExchange.Propagate(out.Header, cl, host)
		}
		if tee != nil && attempt > 1 {
			replay = tee.recorded()
		}
		if replay != nil {
			b := replay // a copy, so that replay itself does not escape
			out.Body = io.NopCloser(bytes.NewReader(b))
			out.ContentLength = int64(len(b))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
		sent := time.Now()
		res = h.attempt(ctx, cl, host, out, route, &info.UpstreamLocalAddress, &w.upstreamBody)
		info.UpstreamServiceTime = time.Since(sent)
		info.UpstreamPrincipal = res.principal
		if retrying {
			cl.ReleaseRetry()
			retrying = false
		}
		if res.flag == FlagOverflow {
			break
		}
		if !shouldRetry(retry, &res) || ctx.Err() != nil || out.Body != nil && replay == nil && tee.recorded() == nil {
			break
		}
		// A retriable outcome with no retry left is flagged as Envoy's
		// router does (RetryStatus NoRetryLimitExceeded: URX, NoOverflow:
		// UO), after the attempt's own flag.
		if attempt >= maxAttempts {
			retryFlag = FlagRetryExhausted
			break
		}
		if !cl.AcquireRetry() {
			retryFlag = FlagOverflow
			break
		}
		retrying = true
		if res.resp != nil {
			io.Copy(io.Discard, io.LimitReader(res.resp.Body, 64<<10))
			res.resp.Body.Close()
		}
		if !sleepBackoff(ctx, retry, attempt) {
			cl.ReleaseRetry()
			retrying = false
			break
		}
	}
	if res.err != nil {
		flag, status, body := res.flag, res.status, ""
		switch {
		case iw != nil && iw.fired.Load() && r.Context().Err() == nil:
			flag, status, body = FlagStreamIdle, http.StatusGatewayTimeout, "stream timeout"
		case streamCtx != nil && streamCtx.Err() != nil && r.Context().Err() == nil:
			// Envoy's onStreamMaxDurationReached: 504, for gRPC
			// DEADLINE_EXCEEDED.
			if info.GRPC && isGRPC(r) {
				grpcLocalReply(w, info, grpcDeadlineExceeded, FlagDurationTimeout, "downstream duration timeout")
				return
			}
			flag, status, body = FlagDurationTimeout, http.StatusGatewayTimeout, "downstream duration timeout"
		case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
			flag, status, body = FlagTimeout, http.StatusGatewayTimeout, "upstream request timeout"
			cl.Stats.RqTimeout.Add(1)
		case r.Context().Err() != nil:
			flag, status = FlagDownstreamCancel, 499
		case flag == FlagOverflow:
			body = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
		case flag == FlagConnectFailure:
			body = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
		case flag == FlagTimeout:
			body = "upstream request timeout"
		default:
			body = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
		}
		if flag != FlagDownstreamCancel && flag != FlagStreamIdle && flag != FlagDurationTimeout {
			flag = appendFlag(flag, retryFlag)
		}
		localReply(w, info, status, flag, body)
		return
	}
	info.Flags = appendFlag(info.Flags, retryFlag)
	resp := res.resp
	defer resp.Body.Close()
	if upgrade != "" && resp.StatusCode == http.StatusSwitchingProtocols {
		h.switchProtocols(w, resp, info)
		return
	}
	hdr := w.Header()
	removeHopByHop(resp.Header)
	if h.PeerExchange != nil && !h.Inbound {
		info.UpstreamPeer = h.PeerExchange.Upstream(resp.Header)
	}
	for k, vs := range resp.Header {
		hdr[k] = vs
	}
	// Envoy's router reports how long the upstream took to answer.
	hdr["X-Envoy-Upstream-Service-Time"] = serviceTimeValue(info.UpstreamServiceTime)
	route.ResponseHeaders.Apply(hdr)
	if wi >= 0 {
		route.Weighted[wi].ResponseHeaders.Apply(hdr)
	}
	if cors != nil {
		hdr.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		if cors.ExposeHeaders != "" {
			hdr.Set("Access-Control-Expose-Headers", cors.ExposeHeaders)
		}
		if cors.AllowCredentials {
			hdr.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		hdr["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	bp := bufPool.Get().(*[]byte)
	streaming := resp.ContentLength < 0 || isStreaming(resp.Header)
	var body io.Reader = resp.Body
	if iw != nil {
		body = iw.reader(resp.Body)
	}
	_, err := copyBody(w, body, *bp, streaming)
	bufPool.Put(bp)
	if err != nil && !errors.Is(err, io.EOF) {
		if streamCtx != nil && streamCtx.Err() != nil && r.Context().Err() == nil {
			info.Flags = appendFlag(info.Flags, FlagDurationTimeout)
		} else {
			info.Flags = appendFlag(info.Flags, FlagReset)
		}
		// Abort the downstream response so the client sees the reset.
		panic(http.ErrAbortHandler)
	}
	for k, vs := range resp.Trailer {
		hdr[http.TrailerPrefix+k] = vs
	}
	if info.GRPC {
		info.GRPCStatus = resp.Header.Get("Grpc-Status")
		if info.GRPCStatus == "" {
			info.GRPCStatus = resp.Trailer.Get("Grpc-Status")
		}
	}
}

// attempt sends one try to host and classifies the outcome.
// The response body is wrapped in rb, which must not be in use (the
// previous attempt's body is closed).
func (h *Handler) attempt(ctx context.Context, cl *upstream.Cluster, host *upstream.Host, out *http.Request, route *router.Route, local *net.Addr, rb *releasingBody) attemptResult {
	release, err := cl.Acquire(ctx)
	if err != nil {
		if errors.Is(err, upstream.ErrOverflow) {
			return attemptResult{err: err, flag: FlagOverflow, status: http.StatusServiceUnavailable}
		}
		return attemptResult{err: err, flag: FlagReset, status: http.StatusServiceUnavailable}
	}
	tryCtx := ctx
	var cancel context.CancelFunc
	req := out
	out.URL.Host = host.Addr // out is ours; attempts are sequential
	if route.Retry != nil && route.Retry.PerTryTimeout > 0 {
		tryCtx, cancel = context.WithTimeout(ctx, route.Retry.PerTryTimeout)
		req = out.WithContext(tryCtx)
	}
	var principal string
	if cl.Secured() {
		// Istio's client-side destination_principal is the upstream
		// certificate's URI SAN (upstream.uri_san_peer_certificate).
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { principal = upstream.PeerPrincipal(i.Conn) },
		}))
	}
	host.Active.Add(1)
	*local = nil
	resp, err := cl.RoundTripLocal(req, local)
	host.Active.Add(-1)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		release()
		var ce *upstream.ConnectError
		switch {
		case errors.As(err, &ce):
			cl.Record(host, 0)
			return attemptResult{err: err, flag: FlagConnectFailure, status: http.StatusServiceUnavailable, connect: true, principal: principal}
		case tryCtx.Err() != nil && ctx.Err() == nil:
			cl.Record(host, 504)
			cl.Stats.RqTimeout.Add(1)
			return attemptResult{err: err, flag: FlagTimeout, status: http.StatusGatewayTimeout, timeout: true, principal: principal}
		default:
			cl.Record(host, 0)
			return attemptResult{err: err, flag: FlagReset, status: http.StatusServiceUnavailable, principal: principal}
		}
	}
	cl.Record(host, resp.StatusCode)
	// Release the breaker slot and per-try timer when the body is done.
	*rb = releasingBody{ReadCloser: resp.Body, release: release, cancel: cancel}
	resp.Body = rb
	return attemptResult{resp: resp, status: resp.StatusCode, principal: principal}
}

// teeBody passes a request body through to the first attempt and
// records it, up to maxReplayBody, for retries.
type teeBody struct {
	src      io.ReadCloser
	mu       sync.Mutex // guards buf and over; the transport may read concurrently with recorded
	buf      []byte
	over     bool
	complete atomic.Bool // src reached EOF within the limit; buf is final
}

func (t *teeBody) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.complete.Load() {
		return 0, io.EOF
	}
	n, err := t.src.Read(p)
	if !t.over {
		if len(t.buf)+n > maxReplayBody {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.over {
		t.complete.Store(true)
	}
	return n, err
}

func (t *teeBody) Close() error { return t.src.Close() }

// recorded returns the whole body once it was read to the end within
// the limit, else nil. It is safe on a nil teeBody.
func (t *teeBody) recorded() []byte {
	if t == nil || !t.complete.Load() {
		return nil
	}
	if t.buf == nil {
		return []byte{}
	}
	return t.buf
}

type releasingBody struct {
	io.ReadCloser
	release func()
	cancel  context.CancelFunc
	once    sync.Once
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.release()
		if b.cancel != nil {
			b.cancel()
		}
	})
	return err
}

func shouldRetry(p *router.RetryPolicy, res *attemptResult) bool {
	if p == nil {
		return false
	}
	if res.err != nil {
		switch {
		case res.connect:
			return p.OnConnectFailure || p.On5xx || p.OnGatewayError || p.OnReset
		case res.timeout:
			return p.On5xx || p.OnGatewayError
		default: // reset
			return p.OnReset || p.On5xx || p.OnGatewayError || p.OnRefusedStream
		}
	}
	if p.GRPCCodes != 0 {
		// As Envoy, only a gRPC status in the response headers (a
		// trailers-only response) is retried: once a body has started
		// to flow the attempt is committed.
		if v := res.resp.Header.Get("Grpc-Status"); v != "" {
			if c, err := strconv.Atoi(v); err == nil && p.RetriesGRPC(c) {
				return true
			}
		}
	}
	s := res.resp.StatusCode
	switch {
	case p.On5xx && s >= 500:
		return true
	case p.OnGatewayError && (s == 502 || s == 503 || s == 504):
		return true
	case p.OnRetriable4xx && s == 409:
		return true
	case p.OnRetriableStatus:
		for _, c := range p.RetriableStatusCodes {
			if c == s {
				return true
			}
		}
	}
	return false
}

// sleepBackoff waits Envoy's fully jittered exponential backoff.
func sleepBackoff(ctx context.Context, p *router.RetryPolicy, attempt int) bool {
	ceil := p.BackoffBase << min(attempt-1, 16)
	if ceil > p.BackoffMax || ceil <= 0 {
		ceil = p.BackoffMax
	}
	if ceil <= 0 {
		return true
	}
	t := time.NewTimer(rand.N(ceil))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// mirror sends a fire-and-forget copy of out to cluster with the host
// suffixed "-shadow", as Envoy does.
func (h *Handler) mirror(out *http.Request, body []byte, cluster string) {
	cl := h.Resolver.Cluster(cluster)
	if cl == nil {
		return
	}
	m := out.Clone(context.Background())
	host, port, err := net.SplitHostPort(m.Host)
	if err == nil {
		m.Host = net.JoinHostPort(host+"-shadow", port)
	} else {
		m.Host += "-shadow"
	}
	if body != nil {
		m.Body = io.NopCloser(bytes.NewReader(body))
		m.ContentLength = int64(len(body))
	} else {
		m.Body = nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hst := cl.Pick("", 0, false, nil)
		if hst == nil {
			return
		}
		if h.PeerExchange != nil && !h.Inbound {
			// The shadow carries the peer metadata like the original
			// (Istio's exchange runs before the router copies it).
			h.PeerExchange.Propagate(m.Header, cl, hst)
		}
		release, err := cl.Acquire(ctx)
		if err != nil {
			return
		}
		defer release()
		u := *m.URL
		u.Host = hst.Addr
		m.URL = &u
		resp, err := cl.RoundTrip(m.WithContext(ctx))
		if err != nil {
			cl.Record(hst, 0)
			return
		}
		cl.Record(hst, resp.StatusCode)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
}

func requestHash(route *router.Route, r *http.Request) (uint64, bool) {
	for _, p := range route.HashPolicy {
		var key string
		switch {
		case p.Header != "":
			key = r.Header.Get(p.Header)
		case p.Cookie != "":
			if c, err := r.Cookie(p.Cookie); err == nil {
				key = c.Value
			}
		case p.QueryParam != "":
			key = r.URL.Query().Get(p.QueryParam)
		case p.SourceIP:
			if ci := ConnInfoFrom(r.Context()); ci != nil {
				key, _, _ = net.SplitHostPort(ci.RemoteAddr)
			} else {
				key, _, _ = net.SplitHostPort(r.RemoteAddr)
			}
		}
		if key != "" {
			return upstream.HashString(key), true
		}
	}
	return 0, false
}

// switchProtocols completes an Upgrade: it hijacks the downstream
// connection and copies bytes both ways until either side closes.
func (h *Handler) switchProtocols(w *responseWriter, resp *http.Response, info *Info) {
	body := resp.Body
	if rb, ok := body.(*releasingBody); ok {
		defer rb.Close()
		body = rb.ReadCloser
	}
	up, ok := body.(io.ReadWriteCloser)
	if !ok {
		localReply(w, info, http.StatusBadGateway, "", "")
		return
	}
	rc := http.NewResponseController(w.ResponseWriter)
	conn, brw, err := rc.Hijack()
	if err != nil {
		localReply(w, info, http.StatusInternalServerError, "", "")
		return
	}
	defer conn.Close()
	defer up.Close()
	w.status = resp.StatusCode
	resp.Header.Del("Content-Length")
	if h.PeerExchange != nil && !h.Inbound {
		info.UpstreamPeer = h.PeerExchange.Upstream(resp.Header)
	}
	if w.peer != nil {
		w.peer.Respond(resp.Header)
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(&head)
	head.WriteString("\r\n")
	if _, err := conn.Write(head.Bytes()); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			up.Write(b)
		}
		io.Copy(up, conn)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(conn, up)
		done <- struct{}{}
	}()
	<-done
}

func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// hopHeaders are removed when forwarding (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for _, sf := range strings.Split(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	te := h.Get("Te")
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if httpguts.HeaderValuesContainsToken([]string{te}, "trailers") {
		h["Te"] = []string{"trailers"} // gRPC needs it end to end
	}
}

func isStreaming(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, "application/grpc")
}

func copyBody(w *responseWriter, body io.Reader, buf []byte, flush bool) (int64, error) {
	var total int64
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, io.EOF // downstream gone: nothing more to do
			}
			total += int64(n)
			if flush {
				w.Flush()
			}
		}
		if err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

func localReply(w *responseWriter, info *Info, status int, flag, body string) {
	if info.GRPC && status != 499 && info.Request != nil && isGRPC(info.Request) {
		grpcLocalReply(w, info, grpcStatusForHTTP(status), flag, strings.TrimSuffix(body, "\n"))
		return
	}
	info.Flags = appendFlag(info.Flags, flag)
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	if body != "" {
		hdr.Set("Content-Type", "text/plain")
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if status == 499 {
		w.status = status
		return // the client is gone
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func appendFlag(flags, f string) string {
	switch {
	case f == "":
		return flags
	case flags == "":
		return f
	}
	return flags + "," + f
}

// requestIDValue is a header value holding a request id, allocated as
// one object.
type requestIDValue struct {
	s [36]byte
	v [1]string
}

// newRequestIDValue returns a new request id as a header value, in one
// allocation (the string's bytes live in the same object and are never
// written again).
func newRequestIDValue() []string {
	id := new(requestIDValue)
	putRequestID(&id.s)
	id.v[0] = unsafe.String(&id.s[0], len(id.s))
	return id.v[:]
}

// serviceTimes are the header values of x-envoy-upstream-service-time
// below one second, shared read-only (a header map only ever replaces
// them: len == cap, so an append copies).
var serviceTimes = func() [][]string {
	v := make([][]string, 1000)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

// serviceTimeValue is the x-envoy-upstream-service-time value for d.
func serviceTimeValue(d time.Duration) []string {
	if ms := d.Milliseconds(); ms >= 0 && ms < int64(len(serviceTimes)) {
		return serviceTimes[ms]
	}
	return []string{strconv.FormatInt(d.Milliseconds(), 10)}
}

// putRequestID writes a random (version 4) UUID into s.
func putRequestID(s *[36]byte) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
}

// responseWriter records status and bytes. It also holds per-request
// values of forward that would otherwise be allocated for each request
// (the state is pooled): the outbound URL and the upstream body wrapper.
// Neither is used after ServeHTTP returns.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64

	url          url.URL
	upstreamBody releasingBody
	// peer, when set, adds this proxy's peer metadata to the final
	// response headers (inbound, the client sent its own).
	peer *peermeta.Exchange
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 || code < 200 {
		if code >= 200 {
			w.status = code
			if w.peer != nil {
				w.peer.Respond(w.Header())
			}
		}
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		if w.peer != nil {
			w.peer.Respond(w.Header())
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
