package emulator

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

const cfnNamespace = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

// CloudFormation emulates the CloudFormation API (service "cloudformation",
// awsQuery, XML answers) far enough to read deployed stacks: DescribeStacks
// by stack name or stack ID, or every stack of the caller's account and
// region, with their outputs. A stack that is not registered gets the
// ValidationError "Stack with id X does not exist", as CloudFormation answers.
//
// Create it with [NewCloudFormation] and register stacks with
// [CloudFormation.AddStack].
type CloudFormation struct {
	srv *Server

	mu     sync.Mutex
	stacks []*cfnStack
	calls  map[string]int
}

type cfnStack struct {
	account, region string
	name, id        string
	created         time.Time
	outputs         map[string]string
}

// NewCloudFormation creates the CloudFormation emulation and serves it on
// srv under the service name "cloudformation".
func NewCloudFormation(srv *Server) *CloudFormation {
	cf := &CloudFormation{srv: srv, calls: map[string]int{}}
	srv.Handle("cloudformation", cf)
	return cf
}

// AddStack registers a stack in CREATE_COMPLETE state with its outputs (key
// to value) in an account and region, replacing a stack of the same name
// there, and returns its stack ID.
func (cf *CloudFormation) AddStack(account, region, name string, outputs map[string]string) string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	id := fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%s", region, account, name, newSFNUUID())
	st := &cfnStack{account: account, region: region, name: name, id: id, created: time.Now().UTC().Truncate(time.Millisecond), outputs: map[string]string{}}
	for k, v := range outputs {
		st.outputs[k] = v
	}
	for i, old := range cf.stacks {
		if old.account == account && old.region == region && old.name == name {
			cf.stacks[i] = st
			return id
		}
	}
	cf.stacks = append(cf.stacks, st)
	return id
}

// Calls returns how many requests of an action (such as "DescribeStacks")
// the emulation received, refused ones included.
func (cf *CloudFormation) Calls(action string) int {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return cf.calls[action]
}

type cfnErrorDoc struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

type cfnOutput struct {
	OutputKey   string `xml:"OutputKey"`
	OutputValue string `xml:"OutputValue"`
}

type cfnStackDoc struct {
	StackName    string      `xml:"StackName"`
	StackID      string      `xml:"StackId"`
	CreationTime string      `xml:"CreationTime"`
	StackStatus  string      `xml:"StackStatus"`
	Outputs      []cfnOutput `xml:"Outputs>member"`
}

type describeStacksResponse struct {
	XMLName   xml.Name      `xml:"DescribeStacksResponse"`
	Xmlns     string        `xml:"xmlns,attr"`
	Stacks    []cfnStackDoc `xml:"DescribeStacksResult>Stacks>member"`
	RequestID string        `xml:"ResponseMetadata>RequestId"`
}

func (cf *CloudFormation) writeError(w http.ResponseWriter, status int, code, message string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, status, cfnErrorDoc{Xmlns: cfnNamespace, Type: typ, Code: code, Message: message, RequestID: cf.srv.requestID()})
}

// ServeHTTP answers the cloudformation service.
func (cf *CloudFormation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
	if err := r.ParseForm(); err != nil {
		cf.writeError(w, http.StatusBadRequest, "MalformedQueryString", "cannot parse the request: "+err.Error())
		return
	}
	action := r.Form.Get("Action")
	cf.mu.Lock()
	cf.calls[action]++
	cf.mu.Unlock()
	switch c.state {
	case credUnknown:
		cf.writeError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	case credExpired:
		cf.writeError(w, http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	if action != "DescribeStacks" {
		cf.writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2010-05-15", action))
		return
	}
	name := r.Form.Get("StackName")
	cf.mu.Lock()
	var found []*cfnStack
	for _, st := range cf.stacks {
		if st.account != c.id.Account || st.region != c.id.Region {
			continue
		}
		if name == "" || st.name == name || st.id == name {
			found = append(found, st)
		}
	}
	cf.mu.Unlock()
	if name != "" && len(found) == 0 {
		cf.writeError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", name))
		return
	}
	resp := describeStacksResponse{Xmlns: cfnNamespace, Stacks: []cfnStackDoc{}, RequestID: cf.srv.requestID()}
	for _, st := range found {
		doc := cfnStackDoc{StackName: st.name, StackID: st.id, CreationTime: st.created.Format("2006-01-02T15:04:05.000Z"), StackStatus: "CREATE_COMPLETE"}
		keys := make([]string, 0, len(st.outputs))
		for k := range st.outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			doc.Outputs = append(doc.Outputs, cfnOutput{OutputKey: k, OutputValue: st.outputs[k]})
		}
		resp.Stacks = append(resp.Stacks, doc)
	}
	writeXML(w, http.StatusOK, resp)
}
