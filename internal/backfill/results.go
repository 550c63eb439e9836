package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/trailfill/trailfill/internal/contract"
)

// ObjectGetter reads whole objects of a bucket: the staging bucket through
// the S3 API (`trailfill watch`) or local.S3 (`trailfill run`). An error
// must say which object could not be read.
type ObjectGetter interface {
	GetObject(ctx context.Context, bucket, key string) ([]byte, error)
}

// Results are the child results of a backfill's Distributed Map, as its
// ResultWriter exported them ("ResultWriter (Map)", Step Functions Developer
// Guide): the manifest lists SUCCEEDED_n.json files (with the COMPACT
// transformation, JSON arrays of the children's outputs, here
// contract.PartitionSummary), FAILED_n.json files (each failed, timed-out
// or aborted child described with its Input, Error and Cause, whatever the
// transformation) and PENDING_n.json files (children never started).
type Results struct {
	Location contract.ResultsLocation
	// Succeeded holds the summaries of the partitions archived (read only
	// when asked for).
	Succeeded []contract.PartitionSummary
	// Failed holds one failure per failed child, in the order of the
	// results files.
	Failed []contract.PartitionFailure
	// Pending is the number of children that never started (the Map Run
	// was aborted).
	Pending int
}

// resultsManifest is the ResultWriter's manifest.json.
type resultsManifest struct {
	DestinationBucket string                       `json:"DestinationBucket"`
	MapRunArn         string                       `json:"MapRunArn"`
	ResultFiles       map[string][]resultsFileInfo `json:"ResultFiles"`
}

type resultsFileInfo struct {
	Key  string `json:"Key"`
	Size int64  `json:"Size"`
}

// childResult is a FAILED or PENDING entry: the child execution described
// (DescribeExecution's members in PascalCase), its Input a JSON string.
type childResult struct {
	Error  string `json:"Error"`
	Cause  string `json:"Cause"`
	Input  string `json:"Input"`
	Status string `json:"Status"`
	Name   string `json:"Name"`
}

// ReadResults reads the results at loc: the manifest, every FAILED and
// PENDING file and, with succeeded, every SUCCEEDED file. The files are
// decoded one entry at a time.
func ReadResults(ctx context.Context, s3 ObjectGetter, loc contract.ResultsLocation, succeeded bool) (*Results, error) {
	body, err := s3.GetObject(ctx, loc.Bucket, loc.Manifest)
	if err != nil {
		return nil, fmt.Errorf("read the results manifest %s: %w", loc.URL(), err)
	}
	var m resultsManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode the results manifest %s: %w", loc.URL(), err)
	}
	bucket := m.DestinationBucket
	if bucket == "" {
		bucket = loc.Bucket
	}
	res := &Results{Location: loc}
	groups := []string{"FAILED", "PENDING"}
	if succeeded {
		groups = append(groups, "SUCCEEDED")
	}
	for _, group := range groups {
		for _, f := range m.ResultFiles[group] {
			body, err := s3.GetObject(ctx, bucket, f.Key)
			if err != nil {
				return nil, fmt.Errorf("read the results file s3://%s/%s: %w", bucket, f.Key, err)
			}
			err = eachEntry(body, func(dec *json.Decoder) error {
				switch group {
				case "SUCCEEDED":
					var s contract.PartitionSummary
					if err := dec.Decode(&s); err != nil {
						return err
					}
					res.Succeeded = append(res.Succeeded, s)
				case "FAILED":
					var c childResult
					if err := dec.Decode(&c); err != nil {
						return err
					}
					res.Failed = append(res.Failed, c.failure())
				default:
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return err
					}
					res.Pending++
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("decode the results file s3://%s/%s: %w", bucket, f.Key, err)
			}
		}
	}
	return res, nil
}

// eachEntry calls decode for each element of a JSON array, or each value
// of JSON Lines.
func eachEntry(body []byte, decode func(*json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	array := len(bytes.TrimSpace(body)) > 0 && bytes.TrimSpace(body)[0] == '['
	if array {
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	for dec.More() {
		if err := decode(dec); err != nil {
			return err
		}
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the results")
	}
	return nil
}

// failure is the PartitionFailure of a failed child: its own typed cause
// when the state machine failed it (contract.ErrorPartitionFailed), else
// (a full history, a timeout, an abort) the partition from its input and
// the error and cause Step Functions recorded.
func (c childResult) failure() contract.PartitionFailure {
	if c.Error == contract.ErrorPartitionFailed {
		if f, err := contract.DecodePartitionFailure(c.Cause); err == nil {
			return *f
		}
	}
	// The child's input is the Map's ItemSelector output (an Invocation).
	var in struct {
		Account string `json:"account"`
		Region  string `json:"region"`
		Start   string `json:"start"`
		End     string `json:"end"`
	}
	_ = json.Unmarshal([]byte(c.Input), &in)
	f := contract.PartitionFailure{Account: in.Account, Region: in.Region, Start: in.Start, End: in.End, Error: c.Error, Message: contract.CauseMessage(c.Cause)}
	if f.Error == "" {
		// An aborted or timed-out child may carry no error.
		switch c.Status {
		case "TIMED_OUT":
			f.Error = "States.Timeout"
		case "ABORTED":
			f.Error = "States.Aborted"
		default:
			f.Error = c.Status
		}
	}
	if f.Message == "" {
		f.Message = "child execution " + c.Name + " ended " + c.Status
	}
	return f
}

// Totals add up the summaries.
func Totals(ps []contract.PartitionSummary) (events int64, windows, skipped int) {
	for _, p := range ps {
		events += p.Events
		windows += p.Windows
		skipped += p.WindowsSkipped
	}
	return events, windows, skipped
}
