package emulator

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Defaults of [Config].
const (
	// DefaultRate is the LookupEvents quota of AWS: 2 requests per second per
	// account and region.
	DefaultRate = 2.0
	// DefaultBurst is the token bucket size used when Config.Burst is 0.
	DefaultBurst = 2
)

// Config sets the behaviour of the LookupEvents emulation. The zero value is
// usable: no latency, the AWS quota of 2 requests/s with a burst of 2, no
// faults, seed 0.
type Config struct {
	// Latency is added to every LookupEvents answer that passed the throttle
	// check (successes, faults and validation errors alike). Throttled
	// requests are answered at once.
	Latency time.Duration
	// Jitter is a uniform +/- jitter on Latency (the result is never below 0).
	Jitter time.Duration
	// Rate is the LookupEvents refill rate in requests/s per (account, region)
	// token bucket; 0 means DefaultRate. Use math.Inf(1) for no limit.
	Rate float64
	// Burst is the token bucket size; 0 means DefaultBurst.
	Burst int
	// FaultRate is the fraction (0..1) of admitted LookupEvents requests that
	// are answered with HTTP 500 InternalFailure or 503 ServiceUnavailable.
	FaultRate float64
	// Seed makes jitter and fault injection deterministic: the n-th admitted
	// request gets the same fault decision for the same seed and fault rate.
	Seed int64
}

// Server is a running emulator. All methods are safe for concurrent use.
type Server struct {
	url     string
	httpSrv *http.Server
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // competitor goroutines

	mu         sync.Mutex
	closed     bool
	latency    time.Duration
	jitter     time.Duration
	rate       float64
	burst      int
	faultRate  float64
	faultRNG   *rand.Rand
	jitterRNG  *rand.Rand
	accounts   map[string]*acctState
	creds      map[string]*credential // by access key id
	partitions map[partitionKey]*partition
	handlers   map[string]http.Handler
	serial     uint64

	s3     *s3Service
	trails trailRegistry  // trails.go
	lambda lambdaSettings // lambda.go
}

// acctState is the emulated state of one AWS account.
type acctState struct {
	id              string
	roles           map[string]bool
	regions         []string // nil: the default-enabled regions
	caller          *credential
	assumeRoleCalls int
}

// credential is an access key the server issued.
type credential struct {
	accessKeyID  string
	secret       string
	sessionToken string // empty for long-term keys
	account      string
	arn          string
	userID       string
	expires      time.Time // zero for long-term keys
}

// Identity is the caller of a request, as resolved from its access key.
type Identity struct {
	AccessKeyID string // the access key that signed the request
	Account     string // 12-digit account owning the key
	ARN         string // caller ARN (IAM user or STS assumed role)
	UserID      string // unique id, as GetCallerIdentity answers it
	Region      string // region of the SigV4 credential scope
	Service     string // service of the SigV4 credential scope
}

type callerKey struct{}

// caller is what route resolved for a request.
type caller struct {
	id    Identity
	state credState
}

// callerOf returns what route resolved for a request.
func callerOf(r *http.Request) caller {
	c, ok := r.Context().Value(callerKey{}).(caller)
	if !ok {
		return caller{state: credUnknown}
	}
	return c
}

// IdentityFromContext returns the caller resolved by the server, for handlers
// registered with [Server.Handle]. It reports false when the request was
// signed with an access key the server does not know (or expired temporary
// credentials); the handler then answers with its protocol's own error.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	if !ok || c.state != credOK {
		return Identity{}, false
	}
	return c.id, true
}

// Start starts a server listening on 127.0.0.1 on a free port.
func Start(cfg Config) (*Server, error) {
	if cfg.Rate < 0 || cfg.Burst < 0 || cfg.Latency < 0 || cfg.Jitter < 0 {
		return nil, errors.New("emulator: negative rate, burst, latency or jitter")
	}
	if cfg.FaultRate < 0 || cfg.FaultRate > 1 {
		return nil, fmt.Errorf("emulator: fault rate %v outside 0..1", cfg.FaultRate)
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	seed := uint64(cfg.Seed)
	s := &Server{
		closing:    make(chan struct{}),
		latency:    cfg.Latency,
		jitter:     cfg.Jitter,
		rate:       cfg.Rate,
		burst:      cfg.Burst,
		faultRate:  cfg.FaultRate,
		faultRNG:   rand.New(rand.NewPCG(seed, 0x6661756c74)),
		jitterRNG:  rand.New(rand.NewPCG(seed, 0x6a6974746572)),
		accounts:   map[string]*acctState{},
		creds:      map[string]*credential{},
		partitions: map[partitionKey]*partition{},
		handlers:   map[string]http.Handler{},
	}
	backend := &s3Backend{s3mem.New()}
	s.s3 = &s3Service{
		backend: backend,
		faker:   gofakes3.New(backend).Server(),
	}
	s.handlers["cloudtrail"] = http.HandlerFunc(s.serveCloudTrail)
	s.handlers["sts"] = http.HandlerFunc(s.serveSTS)
	s.handlers["account"] = http.HandlerFunc(s.serveAccount)
	s.handlers["s3"] = http.HandlerFunc(s.serveS3)
	s.handlers["lambda"] = http.HandlerFunc(s.serveLambda)
	s.handlers["organizations"] = http.HandlerFunc(s.serveOrganizations)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(s.route),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() {
		// Serve returns http.ErrServerClosed after Close; nothing to report.
		_ = s.httpSrv.Serve(ln)
	}()
	return s, nil
}

// URL returns the base URL of the server, such as http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Close stops the listener, aborts LookupEvents answers still waiting out
// their latency, stops competitors and waits for their goroutines. It is safe
// to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
		if cerr := s.httpSrv.Close(); cerr != nil {
			err = fmt.Errorf("emulator: close: %w", cerr)
		}
		s.wg.Wait()
	})
	return err
}

// Handle registers the handler for a service name as it appears in the SigV4
// credential scope (for example "states" or "cloudformation"), replacing any
// handler for that name, built-in ones included. The handler receives the
// original request; [IdentityFromContext] gives the caller if the access key
// is known.
func (s *Server) Handle(service string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[service] = h
}

// AddAccount declares an account (a 12-digit id) and the names of roles that
// may be assumed in it with sts:AssumeRole. It may be called again to add
// roles.
func (s *Server) AddAccount(accountID string, roleNames ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountID)
	for _, r := range roleNames {
		a.roles[r] = true
	}
}

// accountLocked returns the account, creating it. s.mu must be held.
func (s *Server) accountLocked(id string) *acctState {
	a, ok := s.accounts[id]
	if !ok {
		a = &acctState{id: id, roles: map[string]bool{}}
		s.accounts[id] = a
	}
	return a
}

// CallerCredentials returns static long-term credentials whose caller is the
// IAM user arn:aws:iam::<account>:user/trailfill-emulator. The account is
// created if needed. The same account always gets the same keys.
func (s *Server) CallerCredentials(accountID string) (accessKeyID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountID)
	if a.caller == nil {
		sum := sha256.Sum256([]byte("trailfill-emulator/" + accountID))
		enc := base32.StdEncoding.EncodeToString(sum[:])
		c := &credential{
			accessKeyID: "AKIA" + enc[:16],
			secret:      hex.EncodeToString(sum[:])[:40],
			account:     accountID,
			arn:         "arn:aws:iam::" + accountID + ":user/trailfill-emulator",
			userID:      "AIDA" + enc[16:32],
		}
		a.caller = c
		s.creds[c.accessKeyID] = c
	}
	return a.caller.accessKeyID, a.caller.secret
}

// SetEnabledRegions sets the regions ListRegions reports as enabled for an
// account (ENABLED_BY_DEFAULT for the default regions, ENABLED for opt-in
// ones). Regions not listed are reported as DISABLED, default ones included,
// so a test can give an account fewer regions than AWS would. With no call,
// the 17 default-enabled commercial regions are enabled.
func (s *Server) SetEnabledRegions(accountID string, regions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountID)
	a.regions = append([]string{}, regions...)
}

// SetLatency changes Config.Latency and Config.Jitter for later requests.
func (s *Server) SetLatency(latency, jitter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency, s.jitter = max(latency, 0), max(jitter, 0)
}

// SetFaultRate changes Config.FaultRate for later requests (clamped to 0..1).
func (s *Server) SetFaultRate(f float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate = min(max(f, 0), 1)
}

// AssumeRoleCalls returns how many sts:AssumeRole requests named a role in
// the account, denied ones included.
func (s *Server) AssumeRoleCalls(accountID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[accountID]; ok {
		return a.assumeRoleCalls
	}
	return 0
}

// scope is what the server reads from a SigV4 credential scope.
type scope struct {
	accessKeyID string
	region      string
	service     string
}

// parseScope reads the credential scope from the Authorization header or,
// for presigned URLs, from the X-Amz-Credential query parameter.
func parseScope(r *http.Request) (scope, bool) {
	var cred string
	if auth := r.Header.Get("Authorization"); auth != "" {
		i := strings.Index(auth, "Credential=")
		if i < 0 {
			return scope{}, false
		}
		cred = auth[i+len("Credential="):]
		if j := strings.IndexAny(cred, ", "); j >= 0 {
			cred = cred[:j]
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[0] == "" || parts[3] == "" {
		return scope{}, false
	}
	return scope{accessKeyID: parts[0], region: parts[2], service: parts[3]}, true
}

// credState tells whether an access key was accepted.
type credState int

const (
	credOK credState = iota
	credUnknown
	credExpired
)

// resolve finds the caller of a request.
func (s *Server) resolve(r *http.Request, sc scope) (Identity, credState) {
	s.mu.Lock()
	cp, ok := s.creds[sc.accessKeyID]
	var c credential
	if ok {
		c = *cp
	}
	s.mu.Unlock()
	if !ok {
		return Identity{}, credUnknown
	}
	if c.sessionToken != "" {
		tok := r.Header.Get("X-Amz-Security-Token")
		if tok == "" {
			tok = r.URL.Query().Get("X-Amz-Security-Token")
		}
		if tok != c.sessionToken {
			return Identity{}, credUnknown
		}
		if time.Now().After(c.expires) {
			return Identity{}, credExpired
		}
	}
	return Identity{
		AccessKeyID: c.accessKeyID,
		Account:     c.account,
		ARN:         c.arn,
		UserID:      c.userID,
		Region:      sc.region,
		Service:     sc.service,
	}, credOK
}

// route dispatches a request to the handler of its credential scope's
// service. Built-in services refuse unknown access keys themselves.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	sc, ok := parseScope(r)
	if !ok {
		writeJSONError(w, http.StatusForbidden, "MissingAuthenticationTokenException",
			"Missing Authentication Token: requests must be signed with SigV4")
		return
	}
	s.mu.Lock()
	h, ok := s.handlers[sc.service]
	s.mu.Unlock()
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "UnknownServiceException",
			fmt.Sprintf("the emulator does not serve %q", sc.service))
		return
	}
	id, state := s.resolve(r, sc)
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, caller{id: id, state: state}))
	h.ServeHTTP(w, r)
}

// requestID returns a fresh request id.
func (s *Server) requestID() string {
	s.mu.Lock()
	s.serial++
	n := s.serial
	s.mu.Unlock()
	sum := sha256.Sum256(fmt.Appendf(nil, "req/%d", n))
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
