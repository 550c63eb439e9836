package emulator

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
)

// maxAPIBody bounds the body of JSON and query API requests.
const maxAPIBody = 1 << 20

// writeJSONError answers an awsJson1_1 or restJson1 error: the code goes in
// both the X-Amzn-ErrorType header and the __type field, which is where the
// SDK's deserializers read it (header first).
func writeJSONError(w http.ResponseWriter, status int, code, message string) {
	body, err := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{code, message})
	if err != nil {
		body = []byte(`{"__type":"InternalFailure"}`)
	}
	w.Header().Set("X-Amzn-ErrorType", code)
	writeRaw(w, status, "application/x-amz-json-1.1", body)
}

// writeJSON answers a JSON document.
func writeJSON(w http.ResponseWriter, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeJSONError(w, http.StatusInternalServerError, "InternalFailure", "emulator: encode response: "+err.Error())
		return
	}
	writeRaw(w, http.StatusOK, contentType, buf.Bytes())
}

// writeRaw answers a body with a status and a content type.
func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	// A write error means the client went away: nothing left to tell it.
	_, _ = w.Write(body)
}

// writeXML answers an XML document with the XML declaration.
func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		writeRaw(w, http.StatusInternalServerError, "text/xml",
			[]byte(`<ErrorResponse><Error><Code>InternalFailure</Code></Error></ErrorResponse>`))
		return
	}
	writeRaw(w, status, "text/xml", append([]byte(xml.Header), body...))
}
