package archive

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// SliceLength is the span of event time one trail file covers, as CloudTrail
// delivers roughly every five minutes.
const SliceLength = 5 * time.Minute

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// MaxPieces is the number of pieces a slice can have (two base-62 digits).
const MaxPieces = len(alnum) * len(alnum)

// PieceMarker is the object metadata every trail file trailfill writes
// carries (S3: x-amz-meta-trailfill), set when the object is created. Native
// trail files never have it, and the deployed roles cannot add it to an
// existing object (they may only create objects), so `reconcile` acts only
// on objects that carry it.
var PieceMarker = Metadata{"trailfill": "piece/1"}

// IsPiece reports whether object metadata carries PieceMarker.
func IsPiece(m Metadata) bool { return m["trailfill"] == PieceMarker["trailfill"] }

// PieceKey is the native CloudTrail key of piece index of the 5-minute slice
// of one account and region starting at sliceStart:
//
//	AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<16 alphanumerics>.json.gz
//
// The day folder is the day of the events (slices never cross midnight), the
// timestamp is the slice end. The 16 characters are 14 derived from the
// account, region, slice and index, then the index in two base-62 digits: the
// name of a piece is known before it is written (a create-only write of an
// existing name is a harmless 412), and ParseTrailFileName recognizes it.
// Trail files are never replaced: the first run over a slice writes piece 0,
// a later run that finds events still missing adds the next piece.
func PieceKey(orgID, account, region string, sliceStart time.Time, index int) string {
	sliceStart = sliceStart.UTC()
	return TrailDayPrefix(orgID, account, region, sliceStart) +
		fmt.Sprintf("%s_CloudTrail_%s_%s_%s.json.gz", account, region, sliceStart.Add(SliceLength).Format(trailStamp), pieceUnique(account, region, sliceStart, index))
}

func pieceUnique(account, region string, sliceStart time.Time, index int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "trailfill piece|%s|%s|%d|%d", account, region, sliceStart.Unix(), index))
	var u [16]byte
	for i := range 14 {
		u[i] = alnum[int(h[i])%len(alnum)]
	}
	u[14], u[15] = alnum[index/len(alnum)], alnum[index%len(alnum)]
	return string(u[:])
}

// TrailDayPrefix is the folder of one account, region and UTC day.
func TrailDayPrefix(orgID, account, region string, day time.Time) string {
	org := ""
	if orgID != "" {
		org = orgID + "/"
	}
	return fmt.Sprintf("AWSLogs/%s%s/CloudTrail/%s/%s/", org, account, region, day.UTC().Format("2006/01/02"))
}

const trailStamp = "20060102T1504Z"

// trailFileName matches a CloudTrail log file name and captures its account,
// region, timestamp and unique part.
var trailFileName = regexp.MustCompile(`^([0-9]{12})_CloudTrail_([a-z0-9-]+)_([0-9]{8}T[0-9]{4}Z)_([A-Za-z0-9]{16})\.json\.gz$`)

// TrailFile is a parsed trail file name.
type TrailFile struct {
	Account, Region string
	// Stamp is the time in the name: the delivery time of a native file
	// (which holds events from before it), the slice end of a piece.
	Stamp time.Time
	// Piece is the piece index when the name is one trailfill gives (see
	// PieceKey), else -1. The name alone does not prove the object is
	// trailfill's: see PieceMarker.
	Piece int
	// SliceStart is the slice of a piece (zero for other files).
	SliceStart time.Time
}

// ParseTrailFileName parses the last segment of a trail file key; false when
// it is not a CloudTrail log file name.
func ParseTrailFileName(key string) (TrailFile, bool) {
	m := trailFileName.FindStringSubmatch(key[strings.LastIndex(key, "/")+1:])
	if m == nil {
		return TrailFile{}, false
	}
	stamp, err := time.Parse(trailStamp, m[3])
	if err != nil {
		return TrailFile{}, false
	}
	f := TrailFile{Account: m[1], Region: m[2], Stamp: stamp, Piece: -1}
	u := m[4]
	index := strings.IndexByte(alnum, u[14])*len(alnum) + strings.IndexByte(alnum, u[15])
	if ss := stamp.Add(-SliceLength); ss.Equal(ss.Truncate(SliceLength)) && pieceUnique(f.Account, f.Region, ss, index) == u {
		f.Piece, f.SliceStart = index, ss
	}
	return f, true
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
