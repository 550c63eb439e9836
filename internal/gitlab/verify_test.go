package gitlab

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailfill/trailfill/internal/archive"
	"github.com/trailfill/trailfill/internal/gitlab/gitlabemu"
)

func verifyDays(days ...int) []time.Time {
	var out []time.Time
	for _, d := range days {
		out = append(out, time.Date(2025, 3, d, 0, 0, 0, 0, time.UTC))
	}
	return out
}

func timesString(ts []time.Time) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Format("01-02"))
	}
	return strings.Join(s, " ")
}

// TestVerify checks a backfilled default-layout archive, then damages it.
func TestVerify(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	ctx := context.Background()
	if _, err := f.backfill(2).Run(ctx, bfStart, bfEnd); err != nil {
		t.Fatal(err)
	}
	opts := VerifyOptions{Store: f.store, Scope: bfScope, Start: bfStart, End: bfEnd}
	verify := func(o VerifyOptions) *VerifyReport {
		t.Helper()
		r, err := Verify(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("complete", func(t *testing.T) {
		r := verify(opts)
		if !r.Complete || r.ExitCode() != 0 || r.Windows != 4 || r.Archived != 4 || r.Events != len(f.data.inside) || r.Objects != len(f.data.inside) ||
			r.Layout != LayoutDefault || r.Source != "gitlab" || r.Scope != "group-acme%2Fplatform" || r.Window != "24h0m0s" {
			t.Fatalf("report %+v", r)
		}
		b, _ := json.Marshal(r)
		for _, k := range []string{`"complete":true`, `"layout":"default"`, `"missing_windows":[]`, `"corrupt_windows":[]`, `"other_layout_windows":[]`, `"archive":"` + f.root} {
			if !strings.Contains(string(b), k) {
				t.Errorf("JSON report lacks %s: %s", k, b)
			}
		}
	})
	t.Run("a range ending past a partial window", func(t *testing.T) {
		o := opts
		o.End = bfEnd.Add(6 * time.Hour) // the 03-04 manifest covers only until 12:00
		r := verify(o)
		if r.Complete || r.Missing != 1 || timesString(r.MissingWindows) != "03-04" || r.ExitCode() != 1 {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("the other layout", func(t *testing.T) {
		o := opts
		o.Layout = LayoutGitLabS3
		r := verify(o)
		if r.Complete || r.Missing != 4 || timesString(r.OtherLayoutWindows) != "03-01 03-02 03-03 03-04" || r.Source != "" {
			t.Fatalf("report %+v", r)
		}
	})

	// Damage: a changed event, a deleted event, a deleted manifest, an
	// unreadable manifest.
	var changed, deleted string
	for _, k := range sortedKeys(f.data.inside) {
		switch {
		case changed == "" && strings.Contains(k, "/2025/03/02/") && strings.Contains(f.data.inside[k], "event"):
			changed = k
		case deleted == "" && strings.Contains(k, "/2025/03/03/"):
			deleted = k
		}
	}
	if err := os.WriteFile(filepath.Join(f.root, filepath.FromSlash(changed)), []byte(strings.Replace(f.data.inside[changed], "event", "EVENT", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Delete(ctx, ManifestKey("gitlab", bfScope, verifyDays(1)[0])); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(ctx, ManifestKey("gitlab", bfScope, verifyDays(4)[0]), []byte(`{"version":`)); err != nil {
		t.Fatal(err)
	}
	t.Run("damaged", func(t *testing.T) {
		r := verify(opts)
		if r.Complete || r.Archived != 0 || r.Missing != 1 || r.Corrupt != 3 || timesString(r.MissingWindows) != "03-01" {
			t.Fatalf("report %+v", r)
		}
		var got []string
		for _, c := range r.CorruptWindows {
			for _, p := range c.Problems {
				got = append(got, c.Window.Format("01-02")+" "+p.Key+": "+strings.SplitN(p.Problem, ":", 2)[0])
			}
		}
		want := []string{
			"03-02 " + changed + ": " + archive.ProblemSHA256,
			"03-03 " + deleted + ": " + archive.ProblemMissing,
			"03-04 " + ManifestKey("gitlab", bfScope, verifyDays(4)[0]) + ": unreadable manifest",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("the other layout, damaged", func(t *testing.T) {
		// An unreadable manifest of the other layout names no window; it does
		// not fail the check of this one.
		o := opts
		o.Layout = LayoutGitLabS3
		r := verify(o)
		if r.Complete || r.Missing != 4 || timesString(r.OtherLayoutWindows) != "03-02 03-03" {
			t.Fatalf("report %+v", r)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []VerifyOptions{
			{Scope: bfScope, Start: bfStart, End: bfEnd},
			{Store: f.store, Scope: bfScope, Start: bfEnd, End: bfStart},
			{Store: f.store, Scope: Scope{Kind: "team"}, Start: bfStart, End: bfEnd},
			{Store: f.store, Scope: bfScope, Start: bfStart, End: bfEnd, Layout: "s3"},
			{Store: f.store, Scope: bfScope, Start: bfStart, End: bfEnd, Window: 7 * time.Hour},
		} {
			if _, err := Verify(ctx, o); err == nil {
				t.Errorf("Verify(%+v) accepted", o)
			}
		}
	})
}

// TestVerifyGitLabS3Damage: in the gitlab-s3 layout a changed native object
// makes every window listing one of its events corrupt, and a batch holding
// several events of a window is read once.
func TestVerifyGitLabS3Damage(t *testing.T) {
	sc := newS3Scenario(t)
	store := newMemStore()
	ctx := context.Background()
	for k, v := range sc.natives {
		if err := store.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3Backfill(gitlabAPI(t, sc), store, 2).Run(ctx, s3Start, s3End); err != nil {
		t.Fatal(err)
	}
	var batch string
	for k := range sc.natives {
		if strings.HasPrefix(k, "2025/03/02/") && batch == "" {
			batch = k
		}
	}
	if err := store.Put(ctx, batch, []byte("[]")); err != nil {
		t.Fatal(err)
	}
	r, err := Verify(ctx, VerifyOptions{Store: store, Layout: LayoutGitLabS3, Scope: bfScope, Start: s3Start, End: s3End})
	if err != nil {
		t.Fatal(err)
	}
	if r.Complete || r.Archived != 3 || r.Corrupt != 1 || len(r.CorruptWindows) != 1 {
		t.Fatalf("report %+v", r)
	}
	c := r.CorruptWindows[0]
	if c.Window.Format("01-02") != "03-02" || len(c.Problems) != 1 || c.Problems[0].Key != batch || !strings.HasPrefix(c.Problems[0].Problem, archive.ProblemSize) {
		t.Fatalf("corrupt window %+v", c)
	}
}

// TestLayoutSwitch: a window archived in one layout is not done in the other;
// each layout resumes from its own manifests; version 1 manifests (written
// before layouts existed) still count for the default layout.
func TestLayoutSwitch(t *testing.T) {
	f := newBFFixture(t, gitlabemu.Config{})
	ctx := context.Background()
	run := func(layout Layout) Summary {
		t.Helper()
		b := f.backfill(2)
		b.Layout = layout
		sum, err := b.Run(ctx, bfStart, bfEnd)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	n := len(f.data.inside)
	if s := run(LayoutDefault); s.Done != 4 || s.Written != n {
		t.Fatalf("default: %+v", s)
	}
	if s := run(LayoutGitLabS3); s.Done != 4 || s.Skipped != 0 || s.Written != n {
		t.Fatalf("gitlab-s3 after default: %+v", s)
	}
	if s := run(LayoutDefault); s.Skipped != 4 {
		t.Fatalf("default again: %+v", s)
	}
	if s := run(LayoutGitLabS3); s.Skipped != 4 {
		t.Fatalf("gitlab-s3 again: %+v", s)
	}
	// Both layouts hold every event once, the gitlab-s3 copy converted.
	got := archiveFiles(t, f.root)
	want := map[string]string{}
	for k, v := range f.data.inside {
		want[k] = v
		e, _ := ParseEvent(json.RawMessage(v))
		conv, err := StreamingFromREST(e.Raw)
		if err != nil {
			t.Fatal(err)
		}
		ce, _ := ParseEvent(conv)
		want[GitLabS3Key(ce)] = string(conv)
		d, b := filepath.Split(GitLabS3Key(ce))
		want[d+"."+b+".meta"] = `{"trailfill":"gitlab-rest-api"}`
	}
	for k, v := range got {
		if strings.HasPrefix(k, "trailfill/") {
			want[k] = v
		}
	}
	checkArchive(t, f.root, want)
	for _, l := range layouts {
		r, err := Verify(ctx, VerifyOptions{Store: f.store, Layout: l, Scope: bfScope, Start: bfStart, End: bfEnd})
		if err != nil || !r.Complete || r.Events != n {
			t.Fatalf("verify %s: %+v, %v", l, r, err)
		}
	}

	// A version 1 manifest, as trailfill wrote before layouts: no layout
	// field; the default layout takes it as done.
	key := ManifestKey("gitlab", bfScope, verifyDays(2)[0])
	body, err := f.store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "layout")
	delete(m, "native")
	delete(m, "archive")
	m["version"] = 1
	v1, _ := json.Marshal(m)
	if err := f.store.Put(ctx, key, v1); err != nil {
		t.Fatal(err)
	}
	if s := run(LayoutDefault); s.Skipped != 4 {
		t.Fatalf("default with a version 1 manifest: %+v", s)
	}
	if r, err := Verify(ctx, VerifyOptions{Store: f.store, Scope: bfScope, Start: bfStart, End: bfEnd}); err != nil || !r.Complete {
		t.Fatalf("verify with a version 1 manifest: %+v, %v", r, err)
	}
}
