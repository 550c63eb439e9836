package trail

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
)

var t0 = time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)

func mins(m ...int) []time.Time {
	out := make([]time.Time, len(m))
	for i, v := range m {
		out[i] = t0.Add(time.Duration(v) * time.Minute)
	}
	return out
}

func TestFindGaps(t *testing.T) {
	end := t0.Add(3 * time.Hour)
	cases := []struct {
		name       string
		deliveries []time.Time
		want       [][4]int // from, to, fill start, fill end (minutes after t0)
	}{
		{"every five minutes", mins(5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110, 115, 120, 125, 130, 135, 140, 145, 150, 155, 160, 165, 170, 175, 180), nil},
		{"no delivery at all", nil, [][4]int{{0, 180, 0, 180}}},
		{"a stretch in the middle", mins(5, 10, 15, 20, 25, 31, 95, 100, 105, 110, 115, 120, 125, 130, 135, 140, 145, 150, 155, 160, 165, 170, 175, 180), [][4]int{{31, 95, 30, 120}}},
		{"exactly the threshold is no gap", mins(5, 35, 60, 90, 120, 150, 180), nil},
		{"silent start and end", mins(45, 50), [][4]int{{0, 45, 0, 60}, {50, 180, 30, 180}}},
		{"deliveries outside the range are ignored", append(mins(-10, 200), mins(10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170)...), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := FindGaps(c.deliveries, t0, end, 30*time.Minute, 30*time.Minute)
			if len(got) != len(c.want) {
				t.Fatalf("gaps %+v, want %v", got, c.want)
			}
			for i, w := range c.want {
				g := got[i]
				want := mins(w[0], w[1], w[2], w[3])
				if !g.From.Equal(want[0]) || !g.To.Equal(want[1]) || !g.FillStart.Equal(want[2]) || !g.FillEnd.Equal(want[3]) || g.Seconds != want[1].Sub(want[0]).Seconds() {
					t.Fatalf("gap %d: %+v, want %v", i, g, want)
				}
			}
		})
	}
}

func TestFillsGroupPartitions(t *testing.T) {
	gap := func(f, to int) Gap {
		m := mins(f, to)
		return Gap{FillStart: m[0], FillEnd: m[1]}
	}
	parts := []PartitionGaps{
		{Account: "111111111111", Region: "us-east-1", Gaps: []Gap{gap(30, 120), gap(90, 150)}}, // overlapping: merged
		{Account: "111111111111", Region: "eu-west-1", Gaps: []Gap{gap(30, 150)}},
		{Account: "222222222222", Region: "eu-west-1", Gaps: []Gap{gap(30, 150)}},
		{Account: "222222222222", Region: "us-east-1", Gaps: []Gap{gap(30, 150)}},
		{Account: "333333333333", Region: "us-east-1", Gaps: []Gap{gap(0, 30)}},
	}
	got := Fills(parts)
	want := []string{
		"[333333333333] [us-east-1] 10:00..10:30",
		"[111111111111 222222222222] [eu-west-1 us-east-1] 10:30..12:30",
	}
	if len(got) != len(want) {
		t.Fatalf("fills %+v", got)
	}
	for i, f := range got {
		if s := fmt.Sprintf("%v %v %s..%s", f.Accounts, f.Regions, f.Start.Format("15:04"), f.End.Format("15:04")); s != want[i] {
			t.Fatalf("fill %d: %s, want %s", i, s, want[i])
		}
	}
}

// NativeDeliveries reads names only, by delivery time, and leaves out
// trailfill's own pieces and other partitions' files.
func TestNativeDeliveriesAreNativeFilesOnly(t *testing.T) {
	s, err := archive.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const acct, region, org = "111111111111", "us-east-1", "o-a1b2c3d4e5"
	put := func(key string) {
		if err := s.Put(ctx, key, []byte("not read")); err != nil {
			t.Fatal(err)
		}
	}
	native := func(d time.Time, a string) string {
		return archive.TrailDayPrefix(org, a, region, d) + fmt.Sprintf("%s_CloudTrail_%s_%s_AbCdEfGhIjKlMnOp.json.gz", a, region, d.Format("20060102T1504Z"))
	}
	days := []time.Time{t0.Add(-40 * 24 * time.Hour), t0.Add(-time.Hour), t0.Add(5 * time.Minute), t0.Add(14 * time.Hour)}
	for _, d := range days {
		put(native(d, acct))
	}
	put(native(t0.Add(10*time.Minute), "222222222222"))
	put(archive.PieceKey(org, acct, region, t0.Add(20*time.Minute), 0))
	put(archive.TrailDayPrefix(org, acct, region, t0) + "not-a-trail-file.json")
	got, err := NativeDeliveries(ctx, s, org, acct, region, t0.Add(-2*time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := days[1:]
	if len(got) != len(want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i].Truncate(time.Minute)) {
			t.Fatalf("deliveries %v, want %v", got, want)
		}
	}
}
