// Package testkit is shared test equipment: real CloudTrail records from
// ../shared/testdata re-timed onto chosen times and partitions, emulator set-up,
// and exact archive checks (every event once, byte-equal records, exact keys,
// a manifest per window).
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/awsconf"
	"github.com/trailfill/trailfill/internal/emulator"
)

// RepoRoot is the module root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// SharedDir is ../shared beside the repository.
func SharedDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(RepoRoot(t), "..", "shared")
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("the shared test data folder %s is missing: clone the repository beside shared/", d)
	}
	return d
}

var (
	realOnce sync.Once
	realRecs []map[string]any
	realErr  error
)

// RealRecords returns the recorded CloudTrail events of the shared test data
// (2,900 records from real trail files), in file order.
func RealRecords(t testing.TB) []map[string]any {
	t.Helper()
	dir := filepath.Join(SharedDir(t), "testdata", "cloudtrail", "invictus-aws-dataset")
	realOnce.Do(func() {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil || len(files) == 0 {
			realErr = fmt.Errorf("no trail files in %s", dir)
			return
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				realErr = err
				return
			}
			var tf struct {
				Records []map[string]any `json:"Records"`
			}
			if err := json.Unmarshal(b, &tf); err != nil {
				realErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			realRecs = append(realRecs, tf.Records...)
		}
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realRecs
}

// Event is a test event: its partition, time, ID and exact record bytes.
type Event struct {
	Account, Region string
	Time            time.Time
	ID              string
	Record          json.RawMessage
}

// Retimed returns real records placed at the given times in one partition: the
// n-th time gets the (n mod 2,900)-th real record with eventTime, eventID,
// awsRegion and recipientAccountId rewritten (IDs are unique per partition).
func Retimed(t testing.TB, account, region string, times []time.Time) []Event {
	t.Helper()
	real := RealRecords(t)
	out := make([]Event, len(times))
	for i, ts := range times {
		rec := make(map[string]any, len(real[i%len(real)])+1)
		for k, v := range real[i%len(real)] {
			rec[k] = v
		}
		id := fmt.Sprintf("%08x-%04x-4000-8000-%012d", i, len(region), accountNum(account))
		rec["eventTime"] = ts.UTC().Format(time.RFC3339)
		rec["eventID"] = id
		rec["awsRegion"] = region
		rec["recipientAccountId"] = account
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = Event{Account: account, Region: region, Time: ts.UTC().Truncate(time.Second), ID: id, Record: b}
	}
	return out
}

func accountNum(a string) int64 {
	var n int64
	fmt.Sscan(strings.TrimLeft(a, "0"), &n)
	return n
}

// Spaced returns n times from start, step apart.
func Spaced(start time.Time, step time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(i) * step)
	}
	return out
}

// Load adds events to the emulator.
func Load(t testing.TB, emu *emulator.Server, events []Event) {
	t.Helper()
	by := map[[2]string][]json.RawMessage{}
	for _, e := range events {
		k := [2]string{e.Account, e.Region}
		by[k] = append(by[k], e.Record)
	}
	for k, recs := range by {
		if err := emu.AddEvents(k[0], k[1], recs...); err != nil {
			t.Fatal(err)
		}
	}
}

// StartEmulator starts the emulators, closed when the test ends.
func StartEmulator(t testing.TB, cfg emulator.Config) *emulator.Server {
	t.Helper()
	emu, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// AWSConfig is an SDK configuration for the emulator as the caller account,
// built as the product builds its own (awsconf.Build: the same retryer and
// HTTP stack), with the caller's static credentials and the emulator as the
// endpoint of every service.
func AWSConfig(t testing.TB, emu *emulator.Server, caller string) aws.Config {
	t.Helper()
	akid, secret := emu.CallerCredentials(caller)
	cfg, err := awsconf.Build(context.Background(), awsconf.Options{
		Region:            "us-east-1",
		StaticCredentials: &awsconf.StaticCredentials{AccessKeyID: akid, SecretAccessKey: secret},
		BaseEndpoint:      emu.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Expect describes the archive a backfill must produce.
type Expect struct {
	OrgID string
	// Events that must be in the archive, each exactly once over every trail
	// file (trailfill's pieces and Native files together); others must not be
	// in trailfill's pieces.
	Events []Event
	// Range [Start, End) of the backfill (kept for reading the tests; names
	// no longer depend on it).
	Start, End time.Time
	// Native are trail files put in the archive as CloudTrail delivered them
	// (key -> body): they must be there, byte-identical.
	Native map[string][]byte
	// Pieces allows a slice to be written as several pieces (a run stopped at
	// its deadline, a later run over part of a slice, concurrent runs);
	// without it every slice is exactly piece 0.
	Pieces bool
}

// CheckArchive verifies the archive exactly: native files unchanged; every
// other file under AWSLogs/ a trailfill piece (named as archive.PieceKey names
// it, with the piece marker) of the slice of each of its events, holding record
// bytes equal to what LookupEvents returned; every expected event once over all
// files.
func CheckArchive(t testing.TB, store archive.Store, want Expect) {
	t.Helper()
	ctx := context.Background()
	// Event IDs are unique per partition.
	expected := map[string]Event{}
	for _, e := range want.Events {
		expected[e.Account+"/"+e.Region+"/"+e.ID] = e
	}
	keys, err := store.List(ctx, "AWSLogs/")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	inNative := map[string]bool{}
	seenNative := map[string]bool{}
	for _, k := range keys {
		body, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := archive.ParseTrailFileName(k)
		if !ok {
			t.Fatalf("%s is not a trail file", k)
		}
		part := f.Account + "/" + f.Region + "/"
		if nb, ok := want.Native[k]; ok {
			seenNative[k] = true
			if !bytes.Equal(body, nb) {
				t.Fatalf("native trail file %s was changed", k)
			}
			ids := map[string]bool{}
			if _, err := archive.ScanTrailFile(body, func(r archive.RecordRef) { ids[r.ID] = true }); err != nil {
				t.Fatalf("native %s: %v", k, err)
			}
			for id := range ids {
				if _, ok := expected[part+id]; ok {
					inNative[part+id] = true // native delivery's own duplicates are its own
				}
			}
			continue
		}
		if f.Piece < 0 {
			t.Fatalf("%s is neither a native file of the test nor a trailfill piece", k)
		}
		if !want.Pieces && f.Piece != 0 {
			t.Fatalf("%s is piece %d; this archive should hold only first pieces", k, f.Piece)
		}
		if info, err := store.Head(ctx, k); err != nil || !archive.IsPiece(info.Metadata) {
			t.Fatalf("%s lacks the piece marker: %+v %v", k, info, err)
		}
		recs, err := archive.DecodeTrailFile(body)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s holds no events", k)
		}
		for _, r := range recs {
			var hdr struct {
				ID string `json:"eventID"`
			}
			if err := json.Unmarshal(r, &hdr); err != nil {
				t.Fatalf("%s: record is not JSON: %v", k, err)
			}
			e, ok := expected[part+hdr.ID]
			if !ok {
				t.Fatalf("%s holds event %s which belongs to no one", k, hdr.ID)
			}
			if wantKey := archive.PieceKey(want.OrgID, e.Account, e.Region, e.Time.Truncate(archive.SliceLength), f.Piece); wantKey != k {
				t.Fatalf("event %s (%s) is in %s, not in its slice's piece %s", e.ID, e.Time.Format(time.RFC3339), k, wantKey)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, e.Record); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r, compact.Bytes()) {
				t.Fatalf("%s: record %s differs from the event:\n got %s\nwant %s", k, hdr.ID, r, compact.Bytes())
			}
			count[part+hdr.ID]++
		}
	}
	for k := range want.Native {
		if !seenNative[k] {
			t.Fatalf("native trail file %s is gone", k)
		}
	}
	var missing, twice []string
	for id := range expected {
		n := count[id]
		if inNative[id] {
			n++
		}
		switch {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s (%d times)", id, n))
		}
	}
	sort.Strings(missing)
	sort.Strings(twice)
	if len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("of %d events, %d missing (first %v) and %d duplicated (first %v)", len(expected), len(missing), first(missing), len(twice), first(twice))
	}
}

// CheckManifests verifies one settled manifest per window of each partition
// covering the window's part of [start, end), listing exactly the trailfill
// pieces of the window's slices with their sizes and SHA-256, and counting
// their events.
func CheckManifests(t testing.TB, store archive.Store, partitions [][2]string, start, end time.Time, window time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, p := range partitions {
		ms, err := archive.PartitionManifests(ctx, store, p[0], p[1], start.Truncate(window), end)
		if err != nil {
			t.Fatal(err)
		}
		ws := archive.Windows(start, end, window)
		for _, w := range ws {
			m := ms[w.Start.Unix()]
			if m == nil {
				t.Fatalf("%s/%s: no manifest for window %s", p[0], p[1], w.Start.Format(time.RFC3339))
			}
			if !m.Covers(w.From, w.To) || !m.Settled() {
				t.Fatalf("manifest %s covers %v (provisional %v), not the window's part %s..%s", m.Key(), m.Covered, m.Provisional, w.From, w.To)
			}
			// The pieces of the window's slices, from the listing.
			want := map[string]bool{}
			keys, err := store.List(ctx, archive.TrailDayPrefix(m.OrgID, p[0], p[1], w.Start))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if f, ok := archive.ParseTrailFileName(k); ok && f.Piece >= 0 && !f.SliceStart.Before(w.Start) && f.SliceStart.Before(w.Start.Add(window)) &&
					f.SliceStart.Add(archive.SliceLength).After(m.From) && f.SliceStart.Before(m.To) {
					want[k] = true
				}
			}
			events := 0
			for _, o := range m.Objects {
				if !want[o.Key] {
					t.Fatalf("manifest %s lists %s, which is not a piece of its slices", m.Key(), o.Key)
				}
				delete(want, o.Key)
				body, err := store.Get(ctx, o.Key)
				if err != nil {
					t.Fatalf("manifest %s lists %s: %v", m.Key(), o.Key, err)
				}
				if archive.SHA256Hex(body) != o.SHA256 || len(body) != o.Bytes {
					t.Fatalf("manifest %s: %s has another SHA-256 or size", m.Key(), o.Key)
				}
				events += o.Events
			}
			if len(want) > 0 {
				t.Fatalf("manifest %s does not list %d pieces of its slices: %v", m.Key(), len(want), want)
			}
			if events != m.Recovered {
				t.Fatalf("manifest %s counts %d recovered events, its objects hold %d", m.Key(), m.Recovered, events)
			}
		}
		if len(ms) != len(ws) {
			t.Fatalf("%s/%s: %d manifests, want %d", p[0], p[1], len(ms), len(ws))
		}
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// StoreKind is an archive the tests run against.
type StoreKind string

// Store kinds.
const (
	// LocalFolder is a local folder.
	LocalFolder StoreKind = "local folder"
	// S3Bucket is a bucket of the emulator, under a prefix.
	S3Bucket StoreKind = "s3"
	// DeployedS3 is a bucket under the permissions the deployed roles have:
	// create-only writes and no deletes under AWSLogs/, listing only under
	// the archive's folders (so a GET of a missing key answers 403), the
	// bucket-owner-full-control ACL required, SSE-KMS with ArchiveKey required.
	DeployedS3 StoreKind = "s3 as the deployed role sees it"
)

// ArchiveKey is the KMS key DeployedS3 archives require.
const ArchiveKey = "arn:aws:kms:us-east-1:111111111111:key/6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

var bucketSerial atomic.Int64

// NewArchive returns a fresh, empty archive of the kind on emu (its own
// bucket, under the prefix "backfill"), as the caller account sees it.
func NewArchive(t testing.TB, emu *emulator.Server, kind StoreKind) archive.Store {
	t.Helper()
	if kind == LocalFolder {
		s, err := archive.NewLocalStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bucket := fmt.Sprintf("archive-%d", bucketSerial.Add(1))
	if err := emu.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	var o archive.S3Options
	if kind == DeployedS3 {
		emu.SetS3Policy(bucket, DeployedPolicy("backfill/"))
		o.KMSKeyID = ArchiveKey
	}
	s, err := archive.Open(archive.Destination{Bucket: bucket, Prefix: "backfill"}, awsconf.NewS3(AWSConfig(t, emu, emuCaller(emu))), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// DeployedPolicy is what the deployed backfill role may do in a bucket
// whose archive is under prefix (ending in '/', or empty).
func DeployedPolicy(prefix string) emulator.S3Policy {
	return emulator.S3Policy{
		CreateOnlyPrefixes:  []string{prefix + "AWSLogs/"},
		ListPrefixes:        []string{prefix + "AWSLogs/", prefix + "trailfill/"},
		MissingKeyForbidden: true,
		RequireACL:          "bucket-owner-full-control",
		RequireSSEKMSKey:    ArchiveKey,
	}
}

// emuCaller is the account NewArchive acts as: 111111111111, added if needed.
func emuCaller(emu *emulator.Server) string {
	const caller = "111111111111"
	emu.AddAccount(caller)
	return caller
}

// NativeFiles packs events into trail files as CloudTrail delivers them:
// each event goes to the file of its partition delivered at deliver(e)
// (minute precision), named <account>_CloudTrail_<region>_<delivery time>_<16
// random characters>.json.gz in the folder of the delivery day, with the
// records in no particular order (shuffled with seed). The result maps key
// to body.
func NativeFiles(t testing.TB, orgID string, events []Event, deliver func(Event) time.Time, seed uint64) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type fileKey struct {
		account, region string
		stamp           time.Time
	}
	groups := map[fileKey][]json.RawMessage{}
	var order []fileKey
	for _, e := range events {
		k := fileKey{e.Account, e.Region, deliver(e).UTC().Truncate(time.Minute)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.Record); err != nil {
			t.Fatal(err)
		}
		groups[k] = append(groups[k], compact.Bytes())
	}
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := map[string][]byte{}
	for _, k := range order {
		recs := groups[k]
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		var u [16]byte
		for i := range u {
			u[i] = alnum[rng.IntN(len(alnum))]
		}
		key := archive.TrailDayPrefix(orgID, k.account, k.region, k.stamp) +
			fmt.Sprintf("%s_CloudTrail_%s_%s_%s.json.gz", k.account, k.region, k.stamp.Format("20060102T1504Z"), u[:])
		body, err := archive.EncodeTrailFile(recs)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = body
	}
	return out
}

// DeliveredAfter delivers an event in the file of the 5-minute slice after
// its own, delay later, as CloudTrail does about every five minutes.
func DeliveredAfter(delay time.Duration) func(Event) time.Time {
	return func(e Event) time.Time {
		return e.Time.Truncate(archive.SliceLength).Add(archive.SliceLength + delay)
	}
}

// PutNative writes native trail files into the archive as CloudTrail does
// (no trailfill marker).
func PutNative(t testing.TB, s archive.Store, files map[string][]byte) {
	t.Helper()
	for k, b := range files {
		if wrote, err := s.PutIfAbsent(context.Background(), k, b, nil); err != nil || !wrote {
			t.Fatalf("put native %s: %v %v", k, wrote, err)
		}
	}
}

// Between keeps the events in [from, to).
func Between(evs []Event, from, to time.Time) []Event {
	var out []Event
	for _, e := range evs {
		if !e.Time.Before(from) && e.Time.Before(to) {
			out = append(out, e)
		}
	}
	return out
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a log sink).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
