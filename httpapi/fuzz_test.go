package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDCBAppend feeds arbitrary bodies to POST /dcb/append: the answer is 200
// with a result, or a 4xx with the error envelope, never a 5xx; and a refused
// body writes nothing.
func FuzzDCBAppend(f *testing.F) {
	for _, seed := range []string{
		`{"events":[{"type":"A","tags":["t"],"data":"d"}]}`,
		`{"events":[{"type":"A","tags":["t"],"data":"d"}],"condition":{"failIfEventsMatch":{"items":[{"tags":["t"]}]},"after":3}}`,
		`{"events":[]}`, `{"events":[{"type":""}]}`, `{}`, `[]`, `null`, `{"events":[{"type":"A","tags":[""]}]}`,
		`{"events":[{"type":"\u0000"}]}`, `{"events":[{"type":"A","data":{"x":1}}]}`, `{"events":[{"type":"A"}],"condition":{"after":-1}}`,
	} {
		f.Add(seed)
	}
	h, store := dcbServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		before, err := store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, jsonReq("POST", "/dcb/append", body))
		checkAnswer(t, rec)
		if rec.Code != 200 {
			after, err := store.Head(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Other fuzz workers share nothing: each has its own database.
			if after != before {
				t.Fatalf("a refused append wrote events: %s", body)
			}
		}
	})
}

// FuzzDCBRead feeds arbitrary query and options parameters to GET /dcb/read.
func FuzzDCBRead(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"items":[]}`, ``}, {`{"items":[{"types":["A"],"tags":["t"]}]}`, `{"from":1,"limit":2,"backwards":true}`},
		{`{"items":[{"types":[""]}]}`, ``}, {`{"items":`, `{"limit":0}`}, {`null`, `null`}, {`{"items":[{}]}`, `{"from":-5}`},
	} {
		f.Add(seed[0], seed[1])
	}
	h, _ := dcbServer(f)
	f.Fuzz(func(t *testing.T, query, options string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/dcb/read?query="+url.QueryEscape(query)+"&options="+url.QueryEscape(options), nil))
		checkAnswer(t, rec)
		if rec.Code == 200 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("200 with invalid JSON: %s", rec.Body)
		}
	})
}

// FuzzDecodeJSON: strict decoding never panics and never accepts trailing
// data or unknown fields.
func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"name":"a","count":1}`)
	f.Add(`{"name":"a","extra":true}`)
	f.Add(`{"name":"a"} {}`)
	f.Fuzz(func(t *testing.T, body string) {
		var v echo
		err := httpapiDecode(body, &v)
		if err == nil && strings.Contains(body, `"extra"`) && json.Valid([]byte(body)) {
			var m map[string]any
			if json.Unmarshal([]byte(body), &m) == nil {
				if _, ok := m["extra"]; ok {
					t.Fatalf("accepted an unknown field: %s", body)
				}
			}
		}
	})
}

func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	switch {
	case rec.Code >= 500:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	case rec.Code >= 400:
		var b body
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Code == "" || b.Message == "" {
			t.Fatalf("status %d without the error envelope: %s", rec.Code, rec.Body)
		}
		if !utf8.ValidString(b.Message) {
			t.Fatalf("invalid UTF-8 in the message: %q", b.Message)
		}
	case rec.Code != 200:
		t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
	}
}
