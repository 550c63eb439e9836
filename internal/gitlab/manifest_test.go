package gitlab

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLayoutPrefixes(t *testing.T) {
	s := Scope{Kind: ScopeGroup, ID: "acme/platform"}
	ws := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		l                   Layout
		write, manifest, mk string
	}{
		{LayoutDefault, "GitLab/src/", "trailfill/gitlab-manifests/src/group-acme%2Fplatform/", "trailfill/gitlab-manifests/src/group-acme%2Fplatform/2025/03/02/20250302T0000Z.json"},
		{"", "GitLab/src/", "trailfill/gitlab-manifests/src/group-acme%2Fplatform/", "trailfill/gitlab-manifests/src/group-acme%2Fplatform/2025/03/02/20250302T0000Z.json"},
		{LayoutGitLabS3, "", "trailfill/gitlab-s3-manifests/group-acme%2Fplatform/", "trailfill/gitlab-s3-manifests/group-acme%2Fplatform/2025/03/02/20250302T0000Z.json"},
	} {
		t.Run(c.l.String(), func(t *testing.T) {
			if got := c.l.EventWritePrefix("src"); got != c.write {
				t.Errorf("EventWritePrefix = %q, want %q", got, c.write)
			}
			if got := c.l.ManifestPrefix("src", s); got != c.manifest {
				t.Errorf("ManifestPrefix = %q, want %q", got, c.manifest)
			}
			if got := c.l.ManifestKey("src", s, ws); got != c.mk {
				t.Errorf("ManifestKey = %q, want %q", got, c.mk)
			}
		})
	}
	if ManifestKey("src", s, ws) != LayoutDefault.ManifestKey("src", s, ws) {
		t.Error("ManifestKey is not the default layout's")
	}
	if got := fmt.Sprint(LayoutNames); got != "default, gitlab-s3" {
		t.Errorf("LayoutNames %q", got)
	}
}

func TestDecodeManifest(t *testing.T) {
	ws := verifyDays(2)[0]
	dkey := ManifestKey("gitlab", bfScope, ws)
	skey := LayoutGitLabS3.ManifestKey("", bfScope, ws)
	doc := func(version int, layout, source string) []byte {
		l := ""
		if layout != "-" {
			l = fmt.Sprintf(`"layout":%q,`, layout)
		}
		return []byte(fmt.Sprintf(`{"version":%d,%s"source":%q,"scope":"group-acme%%2Fplatform","window_start":"2025-03-02T00:00:00Z","from":"2025-03-02T00:00:00Z","to":"2025-03-03T00:00:00Z","events":0,"objects":[]}`, version, l, source))
	}
	for _, c := range []struct {
		name   string
		key    string
		body   []byte
		layout Layout
		err    string
	}{
		{"version 1", dkey, doc(1, "-", "gitlab"), LayoutDefault, ""},
		{"version 2, default", dkey, doc(2, "default", "gitlab"), LayoutDefault, ""},
		{"version 2, gitlab-s3", skey, doc(2, "gitlab-s3", ""), LayoutGitLabS3, ""},
		{"version 1 naming a layout", dkey, doc(1, "default", "gitlab"), "", "version 1"},
		{"gitlab-s3 manifest among the default's", dkey, doc(2, "gitlab-s3", "gitlab"), "", "moved or edited"},
		{"default manifest among gitlab-s3's", skey, doc(2, "default", ""), "", "moved or edited"},
		{"version 2 without layout", dkey, doc(2, "-", "gitlab"), "", "unknown layout"},
		{"unknown layout", skey, doc(2, "gitlab-s4", ""), "", "moved or edited"},
		{"newer version", dkey, doc(3, "default", "gitlab"), "", "upgrade trailfill"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := DecodeManifest(c.key, c.body)
			switch {
			case c.err == "" && (err != nil || m.Layout != c.layout):
				t.Fatalf("DecodeManifest = %+v, %v; want layout %s", m, err, c.layout)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("DecodeManifest error %v, want one containing %q", err, c.err)
			}
		})
	}
}
