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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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
	// Events that must be archived (each exactly once); others must not be.
	Events []Event
	// Range [Start, End) of the backfill, for file names of slices clipped by it.
	Start, End time.Time
	// Pieces allows a slice to be split over several files (an invocation that
	// stopped at its deadline writes the parts it read completely): file names
	// are then checked up to the unique part, which depends on the piece.
	Pieces bool
}

// stem is a trail-file key without its 16-character unique part.
func stem(key string) string {
	const tail = len("_0123456789abcdef.json.gz")
	if len(key) < tail {
		return key
	}
	return key[:len(key)-tail]
}

// CheckArchive verifies the archive exactly: the set of trail-file keys, each
// event once in the file of its slice, record bytes equal to what LookupEvents
// returned, and nothing else under AWSLogs/.
func CheckArchive(t testing.TB, store archive.Store, want Expect) {
	t.Helper()
	ctx := context.Background()
	wantKeys := map[string]map[string]Event{}
	for _, e := range want.Events {
		ss := e.Time.Truncate(archive.SliceLength)
		from, to := ss, ss.Add(archive.SliceLength)
		if !want.Start.IsZero() && from.Before(want.Start) {
			from = want.Start
		}
		if !want.End.IsZero() && to.After(want.End) {
			to = want.End
		}
		k := archive.TrailFileKey(want.OrgID, e.Account, e.Region, ss, from, to)
		if want.Pieces {
			k = stem(k)
		}
		if wantKeys[k] == nil {
			wantKeys[k] = map[string]Event{}
		}
		wantKeys[k][e.ID] = e
	}
	keys, err := store.List(ctx, "AWSLogs/")
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra []string
	got := map[string]bool{}
	name := func(k string) string {
		if want.Pieces {
			return stem(k)
		}
		return k
	}
	for _, k := range keys {
		got[name(k)] = true
		if wantKeys[name(k)] == nil {
			extra = append(extra, k)
		}
	}
	for k := range wantKeys {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("archive keys differ: %d missing (first %v), %d unexpected (first %v)", len(missing), first(missing), len(extra), first(extra))
	}
	total := 0
	seenIn := map[string]map[string]bool{}
	for _, k := range keys {
		body, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := archive.DecodeTrailFile(body)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		exp := wantKeys[name(k)]
		if seenIn[name(k)] == nil {
			seenIn[name(k)] = map[string]bool{}
		}
		seen := seenIn[name(k)]
		for _, r := range recs {
			var hdr struct {
				ID string `json:"eventID"`
			}
			if err := json.Unmarshal(r, &hdr); err != nil {
				t.Fatalf("%s: record is not JSON: %v", k, err)
			}
			e, ok := exp[hdr.ID]
			if !ok {
				t.Fatalf("%s holds event %s which belongs elsewhere or to no one", k, hdr.ID)
			}
			if seen[hdr.ID] {
				t.Fatalf("%s holds event %s twice", k, hdr.ID)
			}
			seen[hdr.ID] = true
			var compact bytes.Buffer
			if err := json.Compact(&compact, e.Record); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r, compact.Bytes()) {
				t.Fatalf("%s: record %s differs from the event:\n got %s\nwant %s", k, hdr.ID, r, compact.Bytes())
			}
		}
		total += len(recs)
	}
	for k, exp := range wantKeys {
		if len(seenIn[k]) != len(exp) {
			t.Fatalf("%s holds %d of its %d events", k, len(seenIn[k]), len(exp))
		}
	}
	if total != len(want.Events) {
		t.Fatalf("archive holds %d events, want %d", total, len(want.Events))
	}
}

// CheckManifests verifies one manifest per window of each partition, with event
// counts, object keys and SHA-256 matching the archive.
func CheckManifests(t testing.TB, store archive.Store, partitions [][2]string, start, end time.Time, window time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, p := range partitions {
		ms, err := archive.PartitionManifests(ctx, store, p[0], p[1], start.Truncate(window), end)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ws := start.Truncate(window); ws.Before(end); ws = ws.Add(window) {
			n++
			m := ms[ws.Unix()]
			if m == nil {
				t.Fatalf("%s/%s: no manifest for window %s", p[0], p[1], ws.Format(time.RFC3339))
			}
			events := 0
			for _, o := range m.Objects {
				body, err := store.Get(ctx, o.Key)
				if err != nil {
					t.Fatalf("manifest %s lists %s: %v", m.Key(), o.Key, err)
				}
				if archive.SHA256Hex(body) != o.SHA256 || len(body) != o.Bytes {
					t.Fatalf("manifest %s: %s has another SHA-256 or size", m.Key(), o.Key)
				}
				events += o.Events
			}
			if events != m.Events {
				t.Fatalf("manifest %s counts %d events, its objects hold %d", m.Key(), m.Events, events)
			}
		}
		if len(ms) != n {
			t.Fatalf("%s/%s: %d manifests, want %d", p[0], p[1], len(ms), n)
		}
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}
