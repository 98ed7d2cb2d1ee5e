package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
)

type storedEvent struct {
	Type     string   `json:"type"`
	Tags     []string `json:"tags"`
	Data     string   `json:"data"`
	Position int64    `json:"position"`
	ID       string   `json:"id"`
}

type appendResult struct {
	Duration        *float64 `json:"durationInMicroseconds"`
	ConditionFailed *bool    `json:"appendConditionFailed"`
	Position        int64    `json:"position"`
}

// enrolled is an event type of the application behind the DCB tests'
// server: its data must decode. Its course is its tag, not in its JSON.
type enrolled struct {
	CourseID string `json:"-" tag:"course"`
	Seats    int    `json:"seats"`
}

// appEvents is the application's registry. Its upcaster reads the old
// document "v1" and cannot read "v0".
var appEvents = eventstore.NewRegistry(eventstore.Type[enrolled]("Enrolled", eventstore.UpcastJSON(func(data []byte) ([]byte, error) {
	switch string(data) {
	case `"v1"`:
		return []byte(`{"seats":1}`), nil
	case `"v0"`:
		return nil, errors.New("version 0 cannot be read")
	}
	return data, nil
})))

func dcbServer(t testing.TB) (http.Handler, *eventstore.Store) {
	store := eventstoretest.NewStore(t, eventstore.Options{Limits: eventstore.Limits{MaxEventsPerAppend: 10, MaxTagsPerEvent: 4}})
	e := httpapi.NewEngine(httpapi.Options{})
	httpapi.RegisterDCB(e, store, nil, appEvents)
	return e, store
}

func dcbRead(t *testing.T, h http.Handler, query, options string) (int, []storedEvent, body) {
	t.Helper()
	path := "/dcb/read?query=" + url.QueryEscape(query)
	if options != "" {
		path += "&options=" + url.QueryEscape(options)
	}
	rec, b := do(t, h, httptest.NewRequest("GET", path, nil))
	var events []storedEvent
	if rec.Code == 200 {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &events), rec.Body.String())
	}
	return rec.Code, events, b
}

func dcbAppend(t *testing.T, h http.Handler, payload string) (int, appendResult, body) {
	t.Helper()
	rec, b := do(t, h, jsonReq("POST", "/dcb/append", payload))
	var res appendResult
	if rec.Code == 200 {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res), rec.Body.String())
	}
	return rec.Code, res, b
}

// TestDCBRoundTrip: append, read back (data exactly as given), conditional
// append that fails as a normal answer, options.
func TestDCBRoundTrip(t *testing.T) {
	t.Parallel()
	h, _ := dcbServer(t)
	tag := "class:" + uuid.NewString()
	data := `{"weird": "ünïcödé \u0000 \" \\ </script>"}`
	status, res, _ := dcbAppend(t, h, fmt.Sprintf(`{"events":[
		{"type":"CourseDefined","tags":[%q],"data":%q},
		{"type":"StudentSubscribed","tags":[%q,"student:1"],"data":"plain text"}]}`, tag, data, tag))
	require.Equal(t, 200, status)
	require.False(t, *res.ConditionFailed)
	require.NotNil(t, res.Duration)
	require.Positive(t, res.Position)

	q := fmt.Sprintf(`{"items":[{"types":["CourseDefined","StudentSubscribed"],"tags":[%q]}]}`, tag)
	status, events, _ := dcbRead(t, h, q, "")
	require.Equal(t, 200, status)
	require.Len(t, events, 2)
	require.Equal(t, data, events[0].Data, "data is returned exactly as given")
	require.Equal(t, "plain text", events[1].Data)
	require.Equal(t, []string{tag, "student:1"}, events[1].Tags)
	require.Equal(t, res.Position, events[1].Position)
	require.NotEmpty(t, events[0].ID)

	status, events, _ = dcbRead(t, h, q, `{"backwards":true,"limit":1}`)
	require.Equal(t, 200, status)
	require.Len(t, events, 1)
	require.Equal(t, "StudentSubscribed", events[0].Type)
	status, events, _ = dcbRead(t, h, q, fmt.Sprintf(`{"from":%d}`, res.Position))
	require.Equal(t, 200, status)
	require.Len(t, events, 1)
	status, events, _ = dcbRead(t, h, fmt.Sprintf(`{"items":[{"tags":[%q,"nope"]}]}`, tag), "")
	require.Equal(t, 200, status)
	require.Empty(t, events, "no events is an empty array")
	require.NotNil(t, events)

	cond := fmt.Sprintf(`{"events":[{"type":"StudentSubscribed","tags":[%q],"data":""}],
		"condition":{"failIfEventsMatch":%s,"after":%d}}`, tag, q, res.Position-1)
	status, failed, _ := dcbAppend(t, h, cond)
	require.Equal(t, 200, status, "a failed condition is a normal answer")
	require.True(t, *failed.ConditionFailed)
	require.Zero(t, failed.Position)

	cond = fmt.Sprintf(`{"events":[{"type":"StudentSubscribed","tags":[%q],"data":""}],
		"condition":{"failIfEventsMatch":%s,"after":%d}}`, tag, q, res.Position)
	status, ok, _ := dcbAppend(t, h, cond)
	require.Equal(t, 200, status)
	require.False(t, *ok.ConditionFailed)
	require.Equal(t, res.Position+1, ok.Position)
}

// TestDCBRetryWithIDs: a client that gives its events ids can retry an
// append whose answer it lost: the retry answers the first append's
// position and stores nothing, even with a condition the first append's
// events would now fail; ids used by another append are refused.
func TestDCBRetryWithIDs(t *testing.T) {
	t.Parallel()
	h, store := dcbServer(t)
	tag := "class:" + uuid.NewString()
	payload := fmt.Sprintf(`{"events":[{"id":%q,"type":"CourseDefined","tags":[%q],"data":""}],
		"condition":{"failIfEventsMatch":{"items":[{"tags":[%q]}]},"after":0}}`, uuid.NewString(), tag, tag)
	status, first, _ := dcbAppend(t, h, payload)
	require.Equal(t, 200, status)
	require.False(t, *first.ConditionFailed)
	status, again, _ := dcbAppend(t, h, payload)
	require.Equal(t, 200, status)
	require.False(t, *again.ConditionFailed, "the retry does not fail on its own events")
	require.Equal(t, first.Position, again.Position)

	q := eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{tag}}}}
	stored, err := store.Read(context.Background(), q, eventstore.ReadOptions{})
	require.NoError(t, err)
	require.Len(t, stored, 1, "stored once")
	_, _, b := dcbAppend(t, h, fmt.Sprintf(`{"events":[{"id":%q,"type":"Other","data":""},{"id":%q,"type":"Other","data":""}]}`, stored[0].ID, uuid.NewString()))
	require.Equal(t, "id_reused", b.Code)
}

// TestDCBRefusesMalformedInput: every malformed request is a 400 (413 for
// size) with a code and a message, and nothing is written.
func TestDCBRefusesMalformedInput(t *testing.T) {
	t.Parallel()
	h, store := dcbServer(t)
	headBefore, err := store.Head(context.Background())
	require.NoError(t, err)
	appends := []struct{ name, payload, msg string }{
		{"MalformedJSON", `{"events":[`, "truncated"},
		{"UnknownField", `{"events":[{"type":"A","tags":[],"data":"","extra":1}]}`, `unknown field "extra"`},
		{"UnknownTopField", `{"events":[{"type":"A","data":""}],"conditon":{}}`, `unknown field "conditon"`},
		{"NoEvents", `{}`, "events: required"},
		{"EmptyEvents", `{"events":[]}`, "events: must not be empty"},
		{"EmptyType", `{"events":[{"type":"","tags":[],"data":""}]}`, "events[0].type: must not be empty"},
		{"EmptyTag", `{"events":[{"type":"A","tags":[""],"data":""}]}`, "events[0].tags[0]: must not be empty"},
		{"TooManyTags", `{"events":[{"type":"A","tags":["a","b","c","d","e"],"data":""}]}`, "events[0].tags: has 5 tags, the limit is 4"},
		{"TooManyEvents", `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"type":"A","data":""},`, 11), ",") + `]}`, "events: has 11 events, the limit is 10"},
		{"DataNotString", `{"events":[{"type":"A","data":{"x":1}}]}`, `field "events.data": expected a string`},
		{"InvalidID", `{"events":[{"type":"A","data":""},{"id":"not-a-uuid","type":"A","data":""}]}`, `events[1].id: want a UUID`},
		{"NilID", `{"events":[{"id":"00000000-0000-0000-0000-000000000000","type":"A","data":""}]}`, `events[0].id: want a UUID other than the nil UUID`},
		{"ConditionWithoutQuery", `{"events":[{"type":"A","data":""}],"condition":{"after":1}}`, "condition.failIfEventsMatch: required"},
		{"ConditionEmptyType", `{"events":[{"type":"A","data":""}],"condition":{"failIfEventsMatch":{"items":[{"types":[""]}]}}}`, "condition.failIfEventsMatch.items[0].types[0]: must not be empty"},
		{"DataNotUTF8", "{\"events\":[{\"type\":\"A\",\"data\":\"\xff\"}]}", "JSON text is not valid UTF-8"},
		{"NegativeAfter", `{"events":[{"type":"A","data":""}],"condition":{"failIfEventsMatch":{"items":[]},"after":-1}}`, "condition.after"},
	}
	for _, c := range appends {
		t.Run("Append"+c.name, func(t *testing.T) {
			status, _, b := dcbAppend(t, h, c.payload)
			require.Equal(t, 400, status)
			require.Equal(t, "invalid_request", b.Code)
			require.Contains(t, b.Message, c.msg)
		})
	}
	rec, b := do(t, h, jsonReq("POST", "/dcb/append", `{"events":[{"type":"A","data":"`+strings.Repeat("x", 1<<20)+`"}]}`))
	require.Equal(t, 413, rec.Code)
	require.Equal(t, "body_too_large", b.Code)

	reads := []struct{ name, query, options, msg string }{
		{"Malformed", `{"items":[`, "", "query: body is truncated JSON"},
		{"UnknownField", `{"items":[],"x":1}`, "", `query: unknown field "x"`},
		{"EmptyType", `{"items":[{"types":[""]}]}`, "", "query.items[0].types[0]: must not be empty"},
		{"BadOptions", `{"items":[]}`, `{"from":"x"}`, `options: field "from": expected a number`},
		{"UnknownOption", `{"items":[]}`, `{"form":1}`, `options: unknown field "form"`},
		{"ZeroLimit", `{"items":[]}`, `{"limit":0}`, "options.limit must be at least 1"},
		{"QueryNotUTF8", "{\"items\":[{\"types\":[\"\xff\"]}]}", "", "query: JSON text is not valid UTF-8"},
		{"NegativeFrom", `{"items":[]}`, `{"from":-1}`, "options.from"},
	}
	for _, c := range reads {
		t.Run("Read"+c.name, func(t *testing.T) {
			status, _, b := dcbRead(t, h, c.query, c.options)
			require.Equal(t, 400, status)
			require.Equal(t, "invalid_request", b.Code)
			require.Contains(t, b.Message, c.msg)
		})
	}
	rec, b = do(t, h, httptest.NewRequest("GET", "/dcb/read", nil))
	require.Equal(t, 400, rec.Code)
	require.Contains(t, b.Message, "'query' is required")

	headAfter, err := store.Head(context.Background())
	require.NoError(t, err)
	require.Equal(t, headBefore, headAfter, "nothing was written")
}

// TestDCBRefusesUndecodableApplicationEvents: an event whose type the
// application registered must decode through the registry (upcasters and
// tags included) and carry the tags its data gives, or the append is
// refused with 400 invalid_event_data naming the event, its type and the
// error, and nothing of it is written, not even its valid events. An event
// of another type may not carry a tag under the application's keys. Data of other types stays opaque, and
// an old shape its upcaster reads is accepted.
func TestDCBRefusesUndecodableApplicationEvents(t *testing.T) {
	t.Parallel()
	h, store := dcbServer(t)
	cases := []struct{ name, tags, data, msg string }{
		{"NotJSON", `["course:c"]`, `not json`, "invalid character 'o' in literal null"},
		{"Empty", `["course:c"]`, ``, "unexpected end of JSON input"},
		{"WrongFieldType", `["course:c"]`, `{"seats":"many"}`, `cannot unmarshal string into Go struct field enrolled.seats of type int`},
		{"NotAnObject", `["course:c"]`, `[1]`, "cannot unmarshal array"},
		{"UpcasterRefuses", `["course:c"]`, `"v0"`, "upcast Enrolled: version 0 cannot be read"},
		{"TagMissing", `["other:c"]`, `{"seats":2}`, "tag course: missing from the stored event"},
		// Decoded from the first course tag, so in course c by its data,
		// and in course d's decisions by its second tag.
		{"TwoCourses", `["course:c","course:d"]`, `{"seats":2}`, `the tag "course:d" is not one of this Enrolled's own (course:c)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tag := "append:" + uuid.NewString()
			status, _, b := dcbAppend(t, h, fmt.Sprintf(`{"events":[
				{"type":"Enrolled","tags":["course:c",%q],"data":"{\"seats\":1}"},
				{"type":"Opaque","tags":[%q],"data":"anything"},
				{"type":"Enrolled","tags":%s,"data":%q}]}`, tag, tag, strings.Replace(c.tags, "[", fmt.Sprintf("[%q,", tag), 1), c.data))
			require.Equal(t, 400, status, b.Message)
			require.Equal(t, "invalid_event_data", b.Code)
			if c.name == "TwoCourses" {
				require.Contains(t, b.Message, "events[2].tags: eventstore: tags disagree with the data: ")
			} else {
				require.Contains(t, b.Message, `events[2].data: not valid data of the application's event type "Enrolled": `)
			}
			require.Contains(t, b.Message, c.msg)
			stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{tag}}}}, eventstore.ReadOptions{})
			require.NoError(t, err)
			require.Empty(t, stored, "nothing of a refused append is written")
		})
	}

	// An event of a type the application does not declare may not carry a
	// tag under a key it does: Enrolled's decisions for course c would
	// read it and fail to decode it.
	t.Run("OpaqueEventInACourse", func(t *testing.T) {
		t.Parallel()
		tag := "append:" + uuid.NewString()
		status, _, b := dcbAppend(t, h, fmt.Sprintf(`{"events":[
			{"type":"Enrolled","tags":["course:c",%q],"data":"{\"seats\":1}"},
			{"type":"Opaque","tags":[%q,"course:c"],"data":"anything"}]}`, tag, tag))
		require.Equal(t, 400, status, b.Message)
		require.Equal(t, "invalid_event_data", b.Code)
		require.Equal(t, `events[1].tags: the tag "course:c" is under a key (course) that only other types of the application's events carry, not "Opaque"`, b.Message)
		stored, err := store.Read(context.Background(), eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{tag}}}}, eventstore.ReadOptions{})
		require.NoError(t, err)
		require.Empty(t, stored)
	})

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		tag := "append:" + uuid.NewString()
		status, res, b := dcbAppend(t, h, fmt.Sprintf(`{"events":[
			{"type":"Enrolled","tags":["course:c",%q],"data":"{\"seats\":3}"},
			{"type":"Enrolled","tags":["course:c",%q],"data":"\"v1\""},
			{"type":"Unregistered","tags":[%q],"data":"not json"}]}`, tag, tag, tag))
		require.Equal(t, 200, status, b.Message)
		require.False(t, *res.ConditionFailed)
		status, events, _ := dcbRead(t, h, fmt.Sprintf(`{"items":[{"tags":[%q]}]}`, tag), "")
		require.Equal(t, 200, status)
		require.Len(t, events, 3)
		require.Equal(t, []string{`{"seats":3}`, `"v1"`, "not json"}, []string{events[0].Data, events[1].Data, events[2].Data},
			"data is stored exactly as given")
	})
}
