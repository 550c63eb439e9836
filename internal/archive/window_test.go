package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		start, end string
		length     time.Duration
		want       string
	}{
		{"30m across midnight", "2025-01-01T23:10:00Z", "2025-01-02T00:45:00Z", 30 * time.Minute,
			"23:00[23:10,23:30) 23:30[23:30,00:00) 00:00[00:00,00:30) 00:30[00:30,00:45)"},
		{"days, partial ends", "2025-01-01T10:30:00Z", "2025-01-03T06:00:00Z", 24 * time.Hour,
			"00:00[10:30,00:00) 00:00[00:00,00:00) 00:00[00:00,06:00)"},
		{"48h aligned to the epoch", "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z", 48 * time.Hour,
			"00:00[00:00,00:00)"},
		{"sub-second range", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00.5Z", time.Hour, "00:00[00:00,00:00)"},
		{"empty range", "2025-01-01T01:00:00Z", "2025-01-01T01:00:00Z", time.Hour, ""},
		{"non-UTC input", "2025-01-01T01:10:00+01:00", "2025-01-01T01:40:00+01:00", 30 * time.Minute, "00:00[00:10,00:30) 00:30[00:30,00:40)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := Windows(at(tc.start), at(tc.end), tc.length)
			var got []string
			for _, w := range ws {
				if w.Start.Location() != time.UTC || w.Start.Sub(AlignDown(w.Start, tc.length)) != 0 {
					t.Fatalf("window start %s is not aligned UTC", w.Start)
				}
				got = append(got, w.Start.Format("15:04")+"["+w.From.Format("15:04")+","+w.To.Format("15:04")+")")
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("windows %q, want %q", strings.Join(got, " "), tc.want)
			}
			if n := CountWindows(at(tc.start), at(tc.end), tc.length); n != len(ws) {
				t.Fatalf("CountWindows = %d, len(Windows) = %d", n, len(ws))
			}
		})
	}
	// 2025-01-01 is day 20,089 since the epoch: odd, so its 48-hour window
	// starts the day before.
	if ws := Windows(at("2025-01-01T12:00:00Z"), at("2025-01-01T13:00:00Z"), 48*time.Hour); !ws[0].Start.Equal(at("2024-12-31T00:00:00Z")) {
		t.Fatalf("48h window starts %s, want 2024-12-31 (a multiple of 48h since the epoch)", ws[0].Start)
	}
}

func TestIntervals(t *testing.T) {
	t.Parallel()
	h := func(a, b int) Interval {
		base := at("2025-01-01T00:00:00Z")
		return Interval{base.Add(time.Duration(a) * time.Hour), base.Add(time.Duration(b) * time.Hour)}
	}
	show := func(s []Interval) string {
		var out []string
		for _, iv := range s {
			out = append(out, fmt.Sprintf("[%d,%d)", iv.From.Hour(), iv.To.Hour()))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name string
		in   []Interval
		want string
	}{
		{"unsorted, adjacent and overlapping", []Interval{h(5, 6), h(1, 2), h(2, 3), h(2, 4), h(8, 9)}, "[1,4) [5,6) [8,9)"},
		{"empty ones dropped", []Interval{h(3, 3), h(4, 2), h(1, 2)}, "[1,2)"},
		{"contained", []Interval{h(1, 9), h(2, 3)}, "[1,9)"},
		{"none", nil, ""},
	} {
		t.Run("coalesce "+tc.name, func(t *testing.T) {
			if got := show(Coalesce(tc.in)); got != tc.want {
				t.Fatalf("Coalesce = %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		iv   Interval
		done []Interval
		want string
	}{
		{"nothing done", h(1, 5), nil, "[1,5)"},
		{"middle", h(1, 5), []Interval{h(2, 3)}, "[1,2) [3,5)"},
		{"edges", h(1, 5), []Interval{h(0, 2), h(4, 6)}, "[2,4)"},
		{"all", h(1, 5), []Interval{h(0, 9)}, ""},
		{"disjoint", h(1, 5), []Interval{h(6, 7)}, "[1,5)"},
	} {
		t.Run("subtract "+tc.name, func(t *testing.T) {
			if got := show(Subtract(tc.iv, tc.done)); got != tc.want {
				t.Fatalf("Subtract = %q, want %q", got, tc.want)
			}
		})
	}
	set := Coalesce([]Interval{h(1, 3), h(3, 5), h(7, 8)})
	if !set.Covers(h(1, 5).From, h(1, 5).To) || set.Covers(h(4, 8).From, h(4, 8).To) || set.Duration() != 5*time.Hour {
		t.Fatalf("Covers/Duration wrong for %s", show(set))
	}
}

func TestWindowManifestKeys(t *testing.T) {
	t.Parallel()
	const prefix = "trailfill/manifests/111111111111/us-east-1/"
	ws := at("2025-03-09T23:30:00Z")
	key := WindowManifestKey(prefix, ws)
	if key != prefix+"2025/03/09/20250309T2330Z.json" {
		t.Fatalf("key %s", key)
	}
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"manifest", key, true},
		{"other prefix", "trailfill/manifests/111111111111/eu-west-1/2025/03/09/20250309T2330Z.json", false},
		{"wrong day folder", prefix + "2025/03/10/20250309T2330Z.json", false},
		{"not a manifest name", prefix + "2025/03/09/index.json", false},
		{"temporary file", prefix + "2025/03/09/.20250309T2330Z.json.tmp-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseWindowManifestKey(prefix, tc.key)
			if ok != tc.ok || (ok && !got.Equal(ws)) {
				t.Fatalf("ParseWindowManifestKey(%s) = %s, %v", tc.key, got, ok)
			}
		})
	}
}

// countingStore counts reads.
type countingStore struct {
	Store
	gets, lists atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	return c.Store.List(ctx, prefix)
}

func TestIndexReadsEachManifestOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	local, err := NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &countingStore{Store: local}
	start := at("2025-03-09T00:00:00Z")
	for i := range 100 {
		m := &Manifest{Version: ManifestVersion, Account: "111111111111", Region: "us-east-1", WindowStart: start.Add(time.Duration(i) * 30 * time.Minute)}
		m.From, m.To = m.WindowStart, m.WindowStart.Add(30*time.Minute)
		if err := WriteManifest(ctx, s, m); err != nil {
			t.Fatal(err)
		}
	}
	// A foreign file and a moved manifest in the prefix.
	if err := s.Put(ctx, ManifestPrefix("111111111111", "us-east-1")+"notes.txt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err := PartitionManifests(ctx, s, "111111111111", "us-east-1", start.Add(10*30*time.Minute), start.Add(20*30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || s.gets.Load() != 10 || s.lists.Load() != 1 {
		t.Fatalf("%d manifests with %d GETs and %d LISTs, want 10, 10, 1", len(got), s.gets.Load(), s.lists.Load())
	}

	moved := ManifestKey("111111111111", "us-east-1", start.Add(200*30*time.Minute))
	body, _ := s.Get(ctx, ManifestKey("111111111111", "us-east-1", start))
	if err := s.Put(ctx, moved, body); err != nil {
		t.Fatal(err)
	}
	_, err = PartitionManifests(ctx, s, "111111111111", "us-east-1", start, start.Add(300*30*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "moved or edited") {
		t.Fatalf("a moved manifest was accepted: %v", err)
	}
	if err := s.Put(ctx, moved, []byte(`{"version": 99}`)); err != nil {
		t.Fatal(err)
	}
	_, err = PartitionManifests(ctx, s, "111111111111", "us-east-1", start, start.Add(300*30*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "upgrade trailfill") {
		t.Fatalf("a manifest of another version was accepted: %v", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatal("a bad manifest reads as not found")
	}
}
