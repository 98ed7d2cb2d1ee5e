package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
)

// FuzzDCBAppend feeds arbitrary bodies to POST /dcb/append: the answer is 200
// with a result, or a 4xx with the error envelope, never a 5xx; a refused
// body writes nothing; an accepted one wrote its events exactly as given
// (types, tags, data), which read back the same, and those of the
// application's types decode.
func FuzzDCBAppend(f *testing.F) {
	for _, seed := range []string{
		`{"events":[{"type":"A","tags":["t"],"data":"d"}]}`,
		`{"events":[{"type":"A","tags":["t"],"data":"d"}],"condition":{"failIfEventsMatch":{"items":[{"tags":["t"]}]},"after":3}}`,
		`{"events":[]}`, `{"events":[{"type":""}]}`, `{}`, `[]`, `null`, `{"events":[{"type":"A","tags":[""]}]}`,
		`{"events":[{"type":"\u0000"}]}`, `{"events":[{"type":"A","data":{"x":1}}]}`, `{"events":[{"type":"A"}],"condition":{"after":-1}}`,
		`{"events":[{"type":"A","tags":["b","a","a"],"data":"\u0000'; DROP TABLE events; --"},{"type":"\u202e😀"}]}`,
		`{"events":[{"type":"Enrolled","tags":["course:c"],"data":"{\"seats\":2}"}]}`, `{"events":[{"type":"Enrolled","tags":["course:c"],"data":"\"v1\""}]}`,
		`{"events":[{"type":"A","data":"x"},{"type":"Enrolled","tags":["course:c"],"data":"not json"}]}`,
		`{"events":[{"type":"A","tags":["course:c"],"data":"x"}]}`, `{"events":[{"type":"Enrolled","tags":["course:c","course:d"],"data":"{}"}]}`,
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
		after, err := store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Other fuzz workers share nothing: each has its own database.
		var res appendResult
		if rec.Code == 200 {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res), rec.Body.String())
		}
		if rec.Code != 200 || *res.ConditionFailed {
			if after != before {
				t.Fatalf("a refused append wrote events: %s", body)
			}
			return
		}
		var sent struct {
			Events []storedEvent `json:"events"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &sent), "accepted: %s", body)
		require.Equal(t, before+int64(len(sent.Events)), after, "events written")
		if len(sent.Events) > 0 {
			require.Equal(t, after, res.Position, "the position of the last event")
		}
		code, stored, _ := dcbRead(t, h, `{"items":[]}`, fmt.Sprintf(`{"from":%d}`, before+1))
		require.Equal(t, 200, code)
		require.Len(t, stored, len(sent.Events))
		for i, e := range sent.Events {
			require.Equal(t, e.Type, stored[i].Type)
			require.Equal(t, distinct(e.Tags), stored[i].Tags, "tags keep their order, without duplicates")
			require.Equal(t, e.Data, stored[i].Data)
			err := appEvents.Verify(eventstore.Event{Type: e.Type, Tags: stored[i].Tags, Data: []byte(e.Data)})
			if !errors.Is(err, eventstore.ErrUnknownEventType) {
				require.NoError(t, err, "an accepted event of an application type is what Encode makes of its data")
				continue
			}
			for _, tag := range stored[i].Tags {
				require.False(t, strings.HasPrefix(tag, "course:"), "an accepted event of another type has no tag under an application key: %q", tag)
			}
		}
	})
}

// FuzzDCBRead feeds arbitrary query and options parameters to GET /dcb/read,
// on a log of a few events: the answer is a 4xx with the error envelope, or
// 200 with exactly the events a plain filter of the whole log selects (any
// item matches: one of its types, if any, and all of its tags), in order,
// from and limit applied.
func FuzzDCBRead(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"items":[]}`, ``}, {`{"items":[{"types":["A"],"tags":["t"]}]}`, `{"from":1,"limit":2,"backwards":true}`},
		{`{"items":[{"types":[""]}]}`, ``}, {`{"items":`, `{"limit":0}`}, {`null`, `null`}, {`{"items":[{}]}`, `{"from":-5}`},
		{`{"items":[{"types":["A","B"]},{"tags":["u","t"]}]}`, `{"from":3}`}, {`{"items":[{"tags":["t"]}]}`, `{"backwards":true,"from":4,"limit":1}`},
	} {
		f.Add(seed[0], seed[1])
	}
	h, _ := dcbServer(f)
	for _, e := range []string{`{"type":"A","tags":["t"]}`, `{"type":"B","tags":["t","u"]}`, `{"type":"A"}`, `{"type":"C","tags":["u"]}`, `{"type":"B","tags":["v"]}`} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, jsonReq("POST", "/dcb/append", `{"events":[`+e+`]}`))
		require.Equal(f, 200, rec.Code, rec.Body.String())
	}
	all := readAll(f, h)
	f.Fuzz(func(t *testing.T, query, options string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/dcb/read?query="+url.QueryEscape(query)+"&options="+url.QueryEscape(options), nil))
		checkAnswer(t, rec)
		if rec.Code != 200 {
			return
		}
		var got []storedEvent
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), "200 with invalid JSON: %s", rec.Body)
		var q struct {
			Items []struct{ Types, Tags []string } `json:"items"`
		}
		require.NoError(t, json.Unmarshal([]byte(query), &q), query)
		var o struct {
			From      int64 `json:"from"`
			Limit     int   `json:"limit"`
			Backwards bool  `json:"backwards"`
		}
		if options != "" {
			require.NoError(t, json.Unmarshal([]byte(options), &o), options)
		}
		var want []int64
		events := slices.Clone(all)
		if o.Backwards {
			slices.Reverse(events)
		}
		for _, e := range events {
			inRange := o.From == 0 || (!o.Backwards && e.Position >= o.From) || (o.Backwards && e.Position <= o.From)
			if inRange && matches(e, q.Items) && (o.Limit == 0 || len(want) < o.Limit) {
				want = append(want, e.Position)
			}
		}
		positions := make([]int64, len(got))
		for i, e := range got {
			positions[i] = e.Position
		}
		require.Equal(t, fmt.Sprint(want), fmt.Sprint(positions), "query %s, options %s", query, options)
	})
}

// FuzzDecodeJSON: strict decoding never panics; what it accepts is one
// valid JSON object in UTF-8, with no field but the destination's, which
// encoding/json reads the same; what it refuses comes with a reason.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"a","count":1}`, `{"name":"a","extra":true}`, `{"name":"a"} {}`, "{\"name\":\"\xff\"}",
		`{"NAME":"a","name":"b"}`, `{"count":1e400}`, `null`, ` {} `, `{"name":"\ud800"}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var v echo
		if err := httpapiDecode(body, &v); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.True(t, utf8.ValidString(body), "accepted text that is not UTF-8: %q", body)
		require.True(t, json.Valid([]byte(body)), "accepted invalid JSON: %q", body)
		var plain echo
		require.NoError(t, json.Unmarshal([]byte(body), &plain))
		require.Equal(t, plain, v)
		var fields map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &fields) == nil {
			for name := range fields {
				require.Contains(t, []string{"name", "count"}, strings.ToLower(name), "accepted an unknown field: %s", body)
			}
		}
	})
}

// readAll reads the whole log through the API.
func readAll(t testing.TB, h http.Handler) []storedEvent {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/dcb/read?query="+url.QueryEscape(`{"items":[]}`), nil))
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var all []storedEvent
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &all))
	return all
}

// matches is the DCB query semantics, plainly: no items match everything;
// an item matches an event of one of its types (any, when none) that has
// all of its tags.
func matches(e storedEvent, items []struct{ Types, Tags []string }) bool {
	if len(items) == 0 {
		return true
	}
	for _, it := range items {
		typeOK := len(it.Types) == 0 || slices.Contains(it.Types, e.Type)
		tagsOK := true
		for _, tag := range it.Tags {
			tagsOK = tagsOK && slices.Contains(e.Tags, tag)
		}
		if typeOK && tagsOK {
			return true
		}
	}
	return false
}

// distinct is tags in order without duplicates, as the store keeps them.
func distinct(tags []string) []string {
	out := []string{}
	for _, tag := range tags {
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	return out
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
