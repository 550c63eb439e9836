package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/testkit"
	"github.com/trailfill/trailfill/internal/trail"
)

// nativeFile is a trail file as CloudTrail delivers it: named by its
// delivery time, holding the events of the five minutes before.
func nativeFile(t *testing.T, events []testkit.Event) []byte {
	t.Helper()
	var recs []json.RawMessage
	for _, e := range events {
		recs = append(recs, e.Record)
	}
	b, err := json.Marshal(map[string]any{"Records": recs})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGapsFindsMissingDeliveriesAndTheCommandsFillThem: the organization
// trail's bucket holds native files every five minutes except for known
// stretches in some partitions; gaps reports exactly those stretches and the
// commands that fill them, and running those commands leaves every event of
// the range in the bucket exactly once.
func TestGapsFindsMissingDeliveriesAndTheCommandsFillThem(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	store := w.store("org-archive", "central")
	at := func(hhmm string) time.Time {
		tm, err := time.Parse("15:04", hhmm)
		if err != nil {
			t.Fatal(err)
		}
		return time.Date(tfStart.Year(), tfStart.Month(), tfStart.Day(), tm.Hour(), tm.Minute(), 0, 0, time.UTC)
	}
	// Deliveries lost: partition -> [after, before) of delivery times.
	lost := map[string][2]time.Time{
		twMgmt + "/us-east-1":   {at("10:35"), at("12:00")},
		twMember + "/us-east-1": {at("10:35"), at("12:00")},
		twMgmt + "/eu-west-1":   {at("12:10"), at("12:50")},
	}
	native := map[string][]byte{}
	for p, evs := range w.events {
		acct, region, _ := strings.Cut(p, "/")
		for d := tfStart.Add(5 * time.Minute); !d.After(tfEnd); d = d.Add(5 * time.Minute) {
			if l, ok := lost[p]; ok && d.After(l[0]) && d.Before(l[1]) {
				continue
			}
			var in []testkit.Event
			for _, e := range evs {
				if !e.Time.Before(d.Add(-5*time.Minute)) && e.Time.Before(d) {
					in = append(in, e)
				}
			}
			if len(in) == 0 {
				continue
			}
			key := archive.TrailDayPrefix(twOrgID, acct, region, d) + fmt.Sprintf("%s_CloudTrail_%s_%s_%s.json.gz", acct, region, d.Format("20060102T1504Z"), "Nat1ve"+d.Format("0405")+"abcdef")
			body := nativeFile(t, in)
			if err := store.Put(context.Background(), key, body); err != nil {
				t.Fatal(err)
			}
			native[key] = body
		}
	}
	code, stdout, stderr := w.main(t, w.cfg, append([]string{"gaps", "--trail", "org-trail", "--json"}, rangeArgs()...)...)
	if code != ExitOK {
		t.Fatalf("gaps: exit %d: %s", code, stderr)
	}
	var r GapsReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	got := map[string][]trail.Gap{}
	for _, p := range r.Partitions {
		got[p.Account+"/"+p.Region] = p.Gaps
		if p.MedianIntervalSeconds != 300 {
			t.Errorf("%s/%s: median interval %g s, want 300", p.Account, p.Region, p.MedianIntervalSeconds)
		}
	}
	if len(got) != 4 {
		t.Fatalf("partitions %v", got)
	}
	for p, g := range got {
		l, ok := lost[p]
		switch {
		case !ok && len(g) != 0:
			t.Errorf("%s: gaps %+v, want none", p, g)
		case ok && (len(g) != 1 || !g[0].From.Equal(l[0]) || !g[0].To.Equal(l[1])):
			t.Errorf("%s: gaps %+v, want one from %s to %s", p, g, l[0], l[1])
		}
	}
	if r.Trail == nil || r.Trail.Status.LatestDeliveryError != "AccessDenied" {
		t.Errorf("the report lacks the trail's last delivery error: %+v", r.Trail)
	}
	arn := w.arns["org-trail"]
	wantRuns := []string{
		"trailfill run --trail " + arn + " --start 2025-11-22T10:30:00Z --end 2025-11-22T12:00:00Z --accounts 111111111111,222222222222 --regions us-east-1",
		"trailfill run --trail " + arn + " --start 2025-11-22T12:00:00Z --end 2025-11-22T13:00:00Z --accounts 111111111111 --regions eu-west-1",
	}
	if len(r.Fills) != len(wantRuns) {
		t.Fatalf("fills %+v", r.Fills)
	}
	for i, f := range r.Fills {
		if f.Run != wantRuns[i] || f.StartCommand != strings.Replace(wantRuns[i], "trailfill run", "trailfill start", 1) {
			t.Fatalf("fill %d:\n %s\n %s\nwant\n %s", i, f.Run, f.StartCommand, wantRuns[i])
		}
	}
	// The text report says the same.
	code, text, _ := w.main(t, w.cfg, append([]string{"gaps", "--trail", "org-trail"}, rangeArgs()...)...)
	if code != ExitOK || !strings.Contains(text, wantRuns[0]) || !strings.Contains(text, "111111111111/eu-west-1: 2025-11-22T12:10:00Z .. 2025-11-22T12:50:00Z (40m0s)") {
		t.Fatalf("gaps text: exit %d:\n%s", code, text)
	}
	for _, f := range r.Fills {
		code, _, stderr := w.main(t, w.cfg, strings.Fields(f.Run)[1:]...)
		if code != ExitOK {
			t.Fatalf("%s: exit %d: %s", f.Run, code, stderr)
		}
	}
	var all []testkit.Event
	for _, evs := range w.events {
		all = append(all, evs...)
	}
	testkit.CheckArchive(t, store, testkit.Expect{OrgID: twOrgID, Events: all, Native: native, Start: tfStart, End: tfEnd})
	// The native listing is what it was: trailfill's files are not native
	// delivery, so gaps still reports the stretches (and a second fill
	// writes nothing: CheckArchive above holds every event once).
	code, stdout, _ = w.main(t, w.cfg, append([]string{"gaps", "--trail", "org-trail", "--json"}, rangeArgs()...)...)
	var again GapsReport
	if code != ExitOK || json.Unmarshal([]byte(stdout), &again) != nil || len(again.Fills) != 2 {
		t.Fatalf("gaps after the fill: exit %d, %d fills", code, len(again.Fills))
	}
}

func TestGapsBadInput(t *testing.T) {
	t.Parallel()
	w := newTrailWorld(t)
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"neither trail nor out", "give --trail", nil},
		{"threshold too short", "--threshold 10s", []string{"--trail", "org-trail", "--threshold", "10s"}},
		{"unknown trail", `no trail "nosuch"`, []string{"--trail", "nosuch"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := w.main(t, w.cfg, append([]string{"gaps"}, c.args...)...)
			if code != ExitUsage || stdout != "" || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 with %q", code, stdout, stderr, c.want)
			}
		})
	}
}
