package gitlab

import (
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

// storeConcurrency is how many events of one request are written at once.
const storeConcurrency = 8

// Receiver is the streaming destination: it verifies the token, validates the
// events and stores each one before answering. The same Receiver serves the
// local HTTP server (ServeHTTP) and the Lambda Function URL (HandleFunctionURL).
type Receiver struct {
	Store   archive.Store
	Tokens  *Tokens
	Source  string       // <source> key segment; DefaultSource if empty
	MaxBody int64        // request body limit in bytes; DefaultMaxBody if <= 0
	Logger  *slog.Logger // slog.Default() if nil
	// StoreTimeout bounds the writes of one request; DefaultStoreTimeout if 0.
	StoreTimeout time.Duration
	// Health makes GET /healthz answer 200 (the local server; not the Lambda).
	Health bool
}

// NewReceiver checks the configuration and returns a Receiver.
func NewReceiver(store archive.Store, tokens *Tokens, source string, maxBody int64, logger *slog.Logger) (*Receiver, error) {
	if store == nil {
		return nil, errors.New("receiver needs an archive store")
	}
	if tokens == nil || tokens.Len() == 0 {
		return nil, errors.New("receiver needs at least one verification token")
	}
	if source == "" {
		source = DefaultSource
	}
	if err := ValidateSource(source); err != nil {
		return nil, err
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return &Receiver{Store: store, Tokens: tokens, Source: source, MaxBody: maxBody, Logger: logger}, nil
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

// result is the 200 answer: what one request stored.
type result struct {
	Events     int `json:"events"`
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates"`
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
// not one valid event or an array of valid events, 500 when a write failed, and
// 200 once every event of the request is stored (duplicates included: they are
// already stored). Nothing is stored unless the token and the whole body are valid.
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
	if et := req.Header.Get("X-Gitlab-Audit-Event-Type"); et != "" && len(et) <= 200 {
		log = log.With("event_type", et)
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
	events, err := ParseBody(body)
	if err != nil {
		log.WarnContext(ctx, "gitlab receiver: rejected malformed body", "status", http.StatusBadRequest, "bytes", len(body), "err", err)
		return errorResponse(http.StatusBadRequest, err.Error())
	}

	// The request is authentic and valid: finish writing even if the client
	// goes away, since GitLab will not send the event again.
	timeout := r.StoreTimeout
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	res, err := StoreEvents(sctx, r.Store, r.source(), events)
	if err != nil {
		log.ErrorContext(ctx, "gitlab receiver: store failed, events not archived", "status", http.StatusInternalServerError,
			"events", len(events), "stored", res.Stored, "duplicates", res.Duplicates, "ids", ids(events), "err", err)
		return errorResponse(http.StatusInternalServerError, "storing the events failed; see the receiver's logs")
	}
	log.InfoContext(ctx, "gitlab receiver: events archived", "status", http.StatusOK,
		"events", len(events), "stored", res.Stored, "duplicates", res.Duplicates, "bytes", len(body))
	return jsonResponse(http.StatusOK, result{Events: len(events), Stored: res.Stored, Duplicates: res.Duplicates})
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

// StoreEvents writes each event at its key with PutIfAbsent (an existing event
// is never rewritten), a few at a time. Events repeating an id of the batch
// are counted as duplicates and not written twice. It returns after every
// write finished; the error joins every failed write.
func StoreEvents(ctx context.Context, store archive.Store, source string, events []Event) (StoreResult, error) {
	var (
		mu   sync.Mutex
		res  StoreResult
		errs []error
		g    errgroup.Group
		seen = make(map[string]bool, len(events))
	)
	g.SetLimit(storeConcurrency)
	for _, e := range events {
		key := e.Key(source)
		if seen[key] {
			res.Duplicates++
			continue
		}
		seen[key] = true
		g.Go(func() error {
			wrote, err := store.PutIfAbsent(ctx, key, e.Raw, nil)
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
