package archive

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// EncodeTrailFile returns the gzip of {"Records":[r1,r2,...]}: the body of a native
// CloudTrail log file. Each record must be one JSON object (a decoded
// CloudTrailEvent); records are written as given, compacted.
func EncodeTrailFile(records []json.RawMessage) ([]byte, error) {
	// Stream into the compressor: the uncompressed file never exists whole.
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	var rec bytes.Buffer
	write := func(b []byte) error {
		if _, err := zw.Write(b); err != nil {
			return fmt.Errorf("compress trail file: %w", err)
		}
		return nil
	}
	if err := write([]byte(`{"Records":[`)); err != nil {
		return nil, err
	}
	for i, r := range records {
		rec.Reset()
		if i > 0 {
			rec.WriteByte(',')
		}
		if err := json.Compact(&rec, r); err != nil {
			return nil, fmt.Errorf("record %d is not valid JSON: %w", i, err)
		}
		if err := write(rec.Bytes()); err != nil {
			return nil, err
		}
	}
	if err := write([]byte("]}")); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress trail file: %w", err)
	}
	return out.Bytes(), nil
}

// DecodeTrailFile reads the records of a gzip trail file.
func DecodeTrailFile(body []byte) ([]json.RawMessage, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("open gzip trail file: %w", err)
	}
	defer zr.Close()
	var f struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.NewDecoder(zr).Decode(&f); err != nil {
		return nil, fmt.Errorf("decode trail file: %w", err)
	}
	return f.Records, nil
}

// SHA256Hex is the lowercase hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// RecordRef is what dedupe needs of a record: its ID and time.
type RecordRef struct {
	ID   string
	Time time.Time
}

// ScanTrailFile calls fn with the eventID and eventTime of each record of a
// gzip trail file, decoding one record at a time (a file is never held
// decoded). Records without an eventID or with an unreadable eventTime are
// skipped and counted.
func ScanTrailFile(body []byte, fn func(RecordRef)) (skipped int, err error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("open gzip trail file: %w", err)
	}
	defer zr.Close()
	dec := json.NewDecoder(zr)
	if err := expectDelim(dec, '{'); err != nil {
		return 0, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return skipped, fmt.Errorf("decode trail file: %w", err)
		}
		if name, _ := tok.(string); name != "Records" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return skipped, fmt.Errorf("decode trail file: %w", err)
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return skipped, err
		}
		for dec.More() {
			var r struct {
				EventID   string `json:"eventID"`
				EventTime string `json:"eventTime"`
			}
			if err := dec.Decode(&r); err != nil {
				return skipped, fmt.Errorf("decode trail file record: %w", err)
			}
			t, terr := time.Parse(time.RFC3339, r.EventTime)
			if r.EventID == "" || terr != nil {
				skipped++
				continue
			}
			fn(RecordRef{ID: r.EventID, Time: t.UTC()})
		}
		if err := expectDelim(dec, ']'); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode trail file: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("decode trail file: expected %q, found %v", want, tok)
	}
	return nil
}
