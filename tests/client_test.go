package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// HTTP helpers: requests to a server's public and operator APIs, and reading
// its events through the operator DCB API.

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Response is an HTTP answer, body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value (map, slice, …).
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

// Decode decodes the body into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// Code is the "code" of an error envelope ("" if none).
func (r Response) Code() string {
	var e struct{ Code string }
	_ = json.Unmarshal(r.Body, &e)
	return e.Code
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Request sends a request to base+path. body: nil (none), string or []byte
// (sent as is), or any other value (JSON-encoded); contentType is set when
// there is a body.
func Request(t testing.TB, method, base, path, contentType string, body any) Response {
	t.Helper()
	header := http.Header{}
	if body != nil && contentType != "" {
		header.Set("Content-Type", contentType)
	}
	return send(t, method, base, path, header, body)
}

// send sends a request to base+path with header; body as Request's.
func send(t testing.TB, method, base, path string, header http.Header, body any) Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, r)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Post sends a JSON body to the public API.
func (s *Server) Post(t testing.TB, path string, body any) Response {
	t.Helper()
	return Request(t, http.MethodPost, s.HTTP, path, "application/json", body)
}

// Get queries the public API.
func (s *Server) Get(t testing.TB, path string) Response {
	t.Helper()
	return Request(t, http.MethodGet, s.HTTP, path, "", nil)
}

// AdminGet queries the operator API.
func (s *Server) AdminGet(t testing.TB, path string) Response {
	t.Helper()
	return Request(t, http.MethodGet, s.Admin, path, "", nil)
}

// Event is a stored event as the operator DCB API returns it, its data
// decoded.
type Event struct {
	Type     string
	Tags     []string
	Data     map[string]any
	Position int64
	ID       string
}

// Events reads the events of one query item (types and tags, either may be
// empty) in position order, through GET /dcb/read on the operator API.
func (s *Server) Events(t testing.TB, types []string, tags ...string) []Event {
	t.Helper()
	item := map[string]any{}
	if len(types) > 0 {
		item["types"] = types
	}
	if len(tags) > 0 {
		item["tags"] = tags
	}
	return s.readEvents(t, map[string]any{"items": []any{item}}, nil)
}

func (s *Server) readEvents(t testing.TB, query, options any) []Event {
	t.Helper()
	q, err := json.Marshal(query)
	require.NoError(t, err)
	path := "/dcb/read?query=" + url.QueryEscape(string(q))
	if options != nil {
		o, err := json.Marshal(options)
		require.NoError(t, err)
		path += "&options=" + url.QueryEscape(string(o))
	}
	resp := s.AdminGet(t, path)
	require.Equal(t, http.StatusOK, resp.Status, "dcb read: %s", resp)
	var raw []struct {
		Type     string   `json:"type"`
		Tags     []string `json:"tags"`
		Data     string   `json:"data"`
		Position int64    `json:"position"`
		ID       string   `json:"id"`
	}
	resp.Decode(t, &raw)
	out := make([]Event, len(raw))
	for i, e := range raw {
		out[i] = Event{Type: e.Type, Tags: e.Tags, Position: e.Position, ID: e.ID}
		require.NoError(t, json.Unmarshal([]byte(e.Data), &out[i].Data), "data of %s at %d", e.Type, e.Position)
	}
	return out
}

// CartEvents are the events tagged with the cart.
func (s *Server) CartEvents(t testing.TB, cart uuid.UUID) []Event {
	t.Helper()
	return s.Events(t, nil, "cart_id:"+cart.String())
}

// Head is the position of the last event in the log (0 when empty).
func (s *Server) Head(t testing.TB) int64 {
	t.Helper()
	last := s.readEvents(t, map[string]any{"items": []any{}}, map[string]any{"backwards": true, "limit": 1})
	if len(last) == 0 {
		return 0
	}
	return last[0].Position
}

// types lists the types of events, in order.
func types(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// ofType keeps the events of type typ.
func ofType(events []Event, typ string) []Event {
	var out []Event
	for _, e := range events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// newID is a fresh version 7 UUID, the ids of the cart's context.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// position is the "position" of a command's answer, which must be 200.
func position(t testing.TB, r Response) int64 {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	p, ok := r.JSON(t)["position"].(float64)
	require.True(t, ok, "no position in %s", r.Body)
	return int64(p)
}

// addItem adds an item and returns the position of the answer; price is a
// JSON number (int, float) or a string.
func (s *Server) addItem(t testing.TB, cart, item, product uuid.UUID, price any) int64 {
	t.Helper()
	return position(t, s.Post(t, "/additem/"+cart.String(), map[string]any{
		"cart_id": cart, "item_id": item, "product_id": product,
		"description": "product " + product.String()[:8], "image": "img/" + product.String()[:8] + ".png", "price": price,
	}))
}

// submit submits a cart and returns the position of CartSubmitted.
func (s *Server) submit(t testing.TB, cart uuid.UUID) int64 {
	t.Helper()
	return position(t, s.Post(t, "/submitcart/"+cart.String(), map[string]any{"cart_id": cart}))
}

// readModel GETs a stored read model with ?min_position and requires 200
// and the X-Read-Model-Position header at least minPosition.
func (s *Server) readModel(t testing.TB, path string, minPosition int64) Response {
	t.Helper()
	r := s.Get(t, path+"?min_position="+strconv.FormatInt(minPosition, 10))
	require.Equal(t, http.StatusOK, r.Status, "GET %s: %s", path, r)
	got, err := strconv.ParseInt(r.Header.Get("X-Read-Model-Position"), 10, 64)
	require.NoError(t, err, "X-Read-Model-Position of %s: %q", path, r.Header.Get("X-Read-Model-Position"))
	require.GreaterOrEqual(t, got, minPosition, "X-Read-Model-Position of %s", path)
	return r
}
