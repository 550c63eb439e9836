package archive

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// SliceLength is the span of event time one trail file covers, as CloudTrail
// delivers roughly every five minutes.
const SliceLength = 5 * time.Minute

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// TrailFileKey is the native CloudTrail key of the file holding events of one
// account and region whose time falls in [from, to), a part of the 5-minute slice
// starting at sliceStart:
//
//	AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 alphanumerics>.json.gz
//
// The day folder is the day of the events (slices never cross midnight), the
// timestamp is the slice end, and the 16 characters are derived from the account,
// region and covered interval, so a re-run replaces the file instead of adding a
// second copy.
func TrailFileKey(orgID, account, region string, sliceStart, from, to time.Time) string {
	sliceStart = sliceStart.UTC()
	end := sliceStart.Add(SliceLength)
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d", account, region, sliceStart.Unix())
	if !from.Equal(sliceStart) || !to.Equal(end) {
		// A range that starts or ends inside a slice gets its own name.
		fmt.Fprintf(h, "|%d|%d", from.Unix(), to.Unix())
	}
	sum := h.Sum(nil)
	var uniq [16]byte
	for i := range uniq {
		uniq[i] = alnum[int(sum[i])%len(alnum)]
	}
	org := ""
	if orgID != "" {
		org = orgID + "/"
	}
	return fmt.Sprintf("AWSLogs/%s%s/CloudTrail/%s/%s/%s_CloudTrail_%s_%s_%s.json.gz",
		org, account, region, sliceStart.Format("2006/01/02"),
		account, region, end.Format("20060102T1504Z"), uniq[:])
}

// TrailDayPrefix is the folder of one account, region and UTC day.
func TrailDayPrefix(orgID, account, region string, day time.Time) string {
	org := ""
	if orgID != "" {
		org = orgID + "/"
	}
	return fmt.Sprintf("AWSLogs/%s%s/CloudTrail/%s/%s/", org, account, region, day.UTC().Format("2006/01/02"))
}

// ManifestRoot is the folder of all CloudTrail window manifests, outside AWSLogs/
// so that trail readers never see them.
const ManifestRoot = "trailfill/manifests/"

// ManifestPrefix is the folder of one partition's manifests.
func ManifestPrefix(account, region string) string {
	return ManifestRoot + account + "/" + region + "/"
}

// ManifestKey is the key of the manifest of the window that starts (aligned) at windowStart.
func ManifestKey(account, region string, windowStart time.Time) string {
	return WindowManifestKey(ManifestPrefix(account, region), windowStart)
}
