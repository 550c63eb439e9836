package gitlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/trailfill/trailfill/internal/archive"
)

// DefaultStoreTimeout bounds the writes of one request. GitLab waits 20 s for an
// answer; a write still running then keeps going until this limit.
const DefaultStoreTimeout = 60 * time.Second

// storeConcurrency is how many events of one request (or of one backfill
// page) are written at once: a batch of thousands of events is written in
// about 1/16 of the time of its writes one after the other.
const storeConcurrency = 16

// maxRejectionsListed bounds the rejections listed in an answer (all are
// counted and logged).
const maxRejectionsListed = 100

// Receiver is the streaming destination: it verifies the token, validates the
// events and stores each one before answering. The same Receiver serves the
// local HTTP server (ServeHTTP) and the Lambda Function URL (HandleFunctionURL).
type Receiver struct {
	Store   archive.Store
	Tokens  *Tokens
	Source  string       // <source> key segment; DefaultSource if empty
	Layout  Layout       // archive layout; LayoutDefault if empty
	MaxBody int64        // request body limit in bytes; DefaultMaxBody if <= 0
	Logger  *slog.Logger // slog.Default() if nil
	// StoreTimeout bounds the writes of one request; DefaultStoreTimeout if 0.
	StoreTimeout time.Duration
	// Health makes GET /healthz answer 200 (the local server; not the Lambda).
	Health bool
}

// ReceiverOptions configure a Receiver (see NewReceiverFromOptions). Zero
// values take the defaults.
type ReceiverOptions struct {
	Store   archive.Store // required
	Tokens  *Tokens       // required, at least one token
	Source  string        // DefaultSource if empty
	Layout  Layout        // LayoutDefault if empty
	MaxBody int64         // DefaultMaxBody if <= 0
	Logger  *slog.Logger
	// StoreTimeout bounds the writes of one request (DefaultStoreTimeout if 0).
	StoreTimeout time.Duration
	// Health makes GET /healthz answer 200 (the local server; not the Lambda).
	Health bool
}

// NewReceiver checks the configuration and returns a Receiver in the default
// layout (NewReceiverFromOptions takes every option).
func NewReceiver(store archive.Store, tokens *Tokens, source string, maxBody int64, logger *slog.Logger) (*Receiver, error) {
	return NewReceiverFromOptions(ReceiverOptions{Store: store, Tokens: tokens, Source: source, MaxBody: maxBody, Logger: logger})
}

// NewReceiverFromOptions checks the options and returns a Receiver.
func NewReceiverFromOptions(o ReceiverOptions) (*Receiver, error) {
	if o.Store == nil {
		return nil, errors.New("receiver needs an archive store")
	}
	if o.Tokens == nil || o.Tokens.Len() == 0 {
		return nil, errors.New("receiver needs at least one verification token")
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if err := ValidateSource(o.Source); err != nil {
		return nil, err
	}
	layout, err := ParseLayout(string(o.Layout))
	if err != nil {
		return nil, err
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.StoreTimeout < 0 {
		return nil, fmt.Errorf("invalid store timeout %s: use a positive duration", o.StoreTimeout)
	}
	return &Receiver{Store: o.Store, Tokens: o.Tokens, Source: o.Source, Layout: layout, MaxBody: o.MaxBody,
		Logger: o.Logger, StoreTimeout: o.StoreTimeout, Health: o.Health}, nil
}

// Request is what the receiver needs of an HTTP request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is read up to the body limit. ContentLength is -1 when unknown.
	Body          io.Reader
	ContentLength int64
	Remote        string // for logs
}

// Response is the receiver's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // JSON
}

// result is the 200 and 207 answer: what one request stored, and the
// elements of a batch that were not valid events (207; also listed in a 400
// when no element was valid).
type result struct {
	Events     int         `json:"events"`
	Stored     int         `json:"stored"`
	Duplicates int         `json:"duplicates"`
	Rejected   int         `json:"rejected,omitempty"`
	Rejections []Rejection `json:"rejections,omitempty"` // the first 100
	Error      string      `json:"error,omitempty"`
}

func (r *Receiver) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Receiver) source() string {
	if r.Source == "" {
		return DefaultSource
	}
	return r.Source
}

func (r *Receiver) maxBody() int64 {
	if r.MaxBody <= 0 {
		return DefaultMaxBody
	}
	return r.MaxBody
}

func jsonResponse(status int, v any, extra ...string) Response {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
	}
	h := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return Response{Status: status, Header: h, Body: append(b, '\n')}
}

func errorResponse(status int, msg string, extra ...string) Response {
	return jsonResponse(status, map[string]string{"error": msg}, extra...)
}

// Handle is the receiver's core, shared by both front ends. It answers:
// 405 for anything but POST (GET /healthz is 200 when Health is set), 401 for a
// missing or wrong token, 413 for a body over the limit, 400 for a body that is
// not one valid event or a JSON array with at least one valid event, 500 when
// a write failed, 200 once every event of the request is stored (duplicates
// included: they are already stored), and 207 once every valid event of a
// batch (a JSON array, GitLab's batched delivery) is stored while some
// elements were not valid events: the answer lists them (index, id, reason).
// Nothing is stored unless the token is valid and the body is a well-formed
// event or array of events.
func (r *Receiver) Handle(ctx context.Context, req Request) Response {
	log := r.logger().With("method", req.Method, "path", req.Path)
	if req.Remote != "" {
		log = log.With("remote", req.Remote)
	}
	if req.Method == http.MethodGet && req.Path == "/healthz" && r.Health {
		return jsonResponse(http.StatusOK, map[string]string{"status": "ok"})
	}
	if req.Method != http.MethodPost {
		log.WarnContext(ctx, "gitlab receiver: method not allowed", "status", http.StatusMethodNotAllowed)
		return errorResponse(http.StatusMethodNotAllowed, "only POST is accepted", "Allow", http.MethodPost)
	}
	token := req.Header.Get(TokenHeader)
	if token == "" {
		log.WarnContext(ctx, "gitlab receiver: rejected request without token", "status", http.StatusUnauthorized)
		return errorResponse(http.StatusUnauthorized, "missing "+TokenHeader+" header")
	}
	dest, ok := r.Tokens.Match(token)
	if !ok {
		log.WarnContext(ctx, "gitlab receiver: rejected request with wrong token", "status", http.StatusUnauthorized)
		return errorResponse(http.StatusUnauthorized, "wrong "+TokenHeader+" header")
	}
	log = log.With("destination", dest)
	headerType := req.Header.Get(EventTypeHeader)
	if len(headerType) > maxEventTypeLen {
		headerType = ""
	}
	if headerType != "" {
		log = log.With("event_type", headerType)
	}

	limit := r.maxBody()
	if req.ContentLength > limit {
		log.WarnContext(ctx, "gitlab receiver: body too large", "status", http.StatusRequestEntityTooLarge, "content_length", req.ContentLength, "limit", limit)
		return errorResponse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
	}
	body, err := readLimited(req.Body, limit)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			log.WarnContext(ctx, "gitlab receiver: body too large", "status", http.StatusRequestEntityTooLarge, "limit", limit)
			return errorResponse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
		}
		log.WarnContext(ctx, "gitlab receiver: could not read body", "status", http.StatusBadRequest, "err", err)
		return errorResponse(http.StatusBadRequest, "could not read body")
	}
	events, rejected, err := ParseBatch(body)
	if err != nil {
		log.WarnContext(ctx, "gitlab receiver: rejected malformed body", "status", http.StatusBadRequest, "bytes", len(body), "err", err)
		return errorResponse(http.StatusBadRequest, err.Error())
	}
	res := result{Events: len(events) + len(rejected), Rejected: len(rejected), Rejections: rejected[:min(len(rejected), maxRejectionsListed)]}
	if len(events) == 0 {
		log.WarnContext(ctx, "gitlab receiver: rejected batch without a valid event", "status", http.StatusBadRequest,
			"events", res.Events, "first_rejection", rejected[0].Error)
		res.Error = "no element of the array is a valid event"
		return jsonResponse(http.StatusBadRequest, res)
	}
	// A single event delivered with the event-type header (GitLab's
	// per-event path) names its type there if its payload does not; a batch
	// has no header and its events carry their own event_type.
	if headerType != "" && len(events) == 1 && len(rejected) == 0 && events[0].EventType == "" && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		events[0].EventType = headerType
	}

	// The request is authentic and valid: finish writing even if the client
	// goes away, since GitLab will not send the event again.
	timeout := r.StoreTimeout
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var meta archive.Metadata
	if r.Layout.orDefault() == LayoutGitLabS3 {
		meta = archive.Metadata{MetaOrigin: OriginStream}
	}
	stored, err := StoreEventsLayout(sctx, r.Store, r.Layout, r.source(), events, meta)
	res.Stored, res.Duplicates = stored.Stored, stored.Duplicates
	if err != nil {
		log.ErrorContext(ctx, "gitlab receiver: store failed, events not archived", "status", http.StatusInternalServerError,
			"events", len(events), "stored", stored.Stored, "duplicates", stored.Duplicates, "ids", ids(events), "err", err)
		return errorResponse(http.StatusInternalServerError, "storing the events failed; see the receiver's logs")
	}
	if len(rejected) > 0 {
		// Logged as an error: GitLab ignores the answer, so the log is where
		// an operator learns that events were lost.
		log.ErrorContext(ctx, "gitlab receiver: batch partly rejected, valid events archived", "status", http.StatusMultiStatus,
			"events", res.Events, "stored", res.Stored, "duplicates", res.Duplicates, "rejected", len(rejected),
			"rejections", rejected[:min(len(rejected), 20)], "bytes", len(body))
		return jsonResponse(http.StatusMultiStatus, res)
	}
	log.InfoContext(ctx, "gitlab receiver: events archived", "status", http.StatusOK, "layout", r.Layout.String(),
		"events", len(events), "stored", res.Stored, "duplicates", res.Duplicates, "bytes", len(body))
	return jsonResponse(http.StatusOK, res)
}

func ids(events []Event) []string {
	const max = 20
	out := make([]string, 0, min(len(events), max))
	for i, e := range events {
		if i == max {
			out = append(out, "...")
			break
		}
		out = append(out, e.ID)
	}
	return out
}

var errTooLarge = errors.New("body too large")

// readLimited reads all of body, failing with errTooLarge beyond limit bytes
// (also when body is an http.MaxBytesReader that hit its limit).
func readLimited(body io.Reader, limit int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// StoreResult counts the outcome of StoreEvents.
type StoreResult struct {
	Stored     int // new objects written
	Duplicates int // events whose key already existed (or repeated in the batch)
}

// StoreEvents writes each event at its default-layout key (see
// StoreEventsLayout).
func StoreEvents(ctx context.Context, store archive.Store, source string, events []Event) (StoreResult, error) {
	return StoreEventsLayout(ctx, store, LayoutDefault, source, events, nil)
}

// StoreEventsLayout writes each event at its key in layout with PutIfAbsent
// (an existing event is never rewritten) and meta, a few at a time. Events
// repeating an id of the batch are counted as duplicates and not written
// twice, whatever their event type. It returns after every write finished;
// the error joins every failed write.
func StoreEventsLayout(ctx context.Context, store archive.Store, layout Layout, source string, events []Event, meta archive.Metadata) (StoreResult, error) {
	var (
		mu   sync.Mutex
		res  StoreResult
		errs []error
		g    errgroup.Group
		seen = make(map[string]bool, len(events))
	)
	g.SetLimit(storeConcurrency)
	for _, e := range events {
		if seen[e.ID] {
			mu.Lock()
			res.Duplicates++
			mu.Unlock()
			continue
		}
		seen[e.ID] = true
		key := layout.Key(source, e)
		g.Go(func() error {
			wrote, err := store.PutIfAbsent(ctx, key, e.Raw, meta)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("store event %s: %w", e.ID, err))
			case wrote:
				res.Stored++
			default:
				res.Duplicates++
			}
			return nil // every failure is reported, not only the first
		})
	}
	_ = g.Wait() // the goroutines report through errs
	return res, errors.Join(errs...)
}

// ServeHTTP is the local HTTP front end (trailfill gitlab serve).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	var body io.Reader = hr.Body
	if hr.Method == http.MethodPost {
		body = http.MaxBytesReader(w, hr.Body, r.maxBody())
	}
	resp := r.Handle(hr.Context(), Request{
		Method:        hr.Method,
		Path:          hr.URL.Path,
		Header:        hr.Header,
		Body:          body,
		ContentLength: hr.ContentLength,
		Remote:        hr.RemoteAddr,
	})
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}
