package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// Hostile input through the real server binary: malformed requests to every
// public route and to the operator's DCB API get a precise 4xx with the
// error envelope and write nothing; a client that dribbles its headers is
// cut off; and the server stays healthy.

// hostileAdminToken is the operator's token of these tests' server.
const hostileAdminToken = "hostile-operator-token"

// hostileFixture is what the malformed requests aim at: a cart holding an
// item, and a registered user with a token.
type hostileFixture struct {
	cart, item, product uuid.UUID
	user                string
	token               string
}

func startHostileServer(t *testing.T) (*Server, hostileFixture) {
	t.Helper()
	s := StartServer(t, ServerOptions{Env: map[string]string{"ADMIN_TOKEN": hostileAdminToken, "READ_HEADER_TIMEOUT": "1s"}})
	fx := hostileFixture{cart: newID(), item: newID(), product: newID()}
	added := position(t, s.Post(t, "/additem/"+fx.cart.String(), map[string]any{"item_id": fx.item, "product_id": fx.product,
		"description": "socks", "image": "socks.png", "price": "1"}))
	email := "hostile-" + uuid.NewString() + "@example.com"
	reg := s.Post(t, "/users", map[string]string{"email": email, "password": "a long and unusual phrase"})
	require.Equal(t, http.StatusCreated, reg.Status, "%s", reg)
	fx.user = reg.JSON(t)["user_id"].(string)
	login := s.Post(t, "/login", map[string]string{"email": email, "password": "a long and unusual phrase"})
	require.Equal(t, http.StatusOK, login.Status, "%s", login)
	fx.token = login.JSON(t)["token"].(string)
	// The read models have caught up, so that their tables stay still.
	s.readModel(t, "/"+fx.cart.String()+"/cartitemsfromdb", added)
	s.readModel(t, "/cartswithproducts/"+fx.product.String(), added)
	me := hostileSend(t, s, hostileRequest{method: "GET", path: "/users/me?min_position=" + fmt.Sprint(int64(login.JSON(t)["position"].(float64))), auth: "Bearer " + fx.token})
	require.Equal(t, http.StatusOK, me.Status, "%s", me)
	return s, fx
}

// hostileSnapshot is what a request could have written: the log and every
// table a request or a listener writes.
func hostileSnapshot(t *testing.T, s *Server) map[string]any {
	t.Helper()
	return s.SQL(t, `SELECT
		(SELECT count(*) FROM events) AS events, (SELECT coalesce(max(position), 0) FROM events) AS head,
		(SELECT count(*) FROM cart_items) AS cart_items, (SELECT count(*) FROM cart_items_carts) AS cart_items_carts,
		(SELECT count(*) FROM inventories) AS inventories, (SELECT count(*) FROM carts_with_products) AS carts_with_products,
		(SELECT count(*) FROM users) AS users, (SELECT coalesce(sum(attempts), 0) FROM login_throttle) AS login_attempts,
		(SELECT count(*) FROM rejected_messages) AS rejected_messages, (SELECT count(*) FROM river_job) AS jobs`)[0]
}

// hostileRequest is one request and the refusal it must get.
type hostileRequest struct {
	name         string
	admin        bool // to the operator API
	method, path string
	contentType  string // default application/json when there is a body
	auth         string // the Authorization header
	body         string // sent as is; none when empty
	chunked      bool   // sent without Content-Length
	status       int
	code, msg    string
	records      string // the one event type the refusal records, if any (a failed password check)
}

// hostileSend sends r: through the HTTP client, or, for bodies over the
// limit, on a raw connection, reading the answer while still writing (the
// server answers 413 and closes before reading it all).
func hostileSend(t *testing.T, s *Server, r hostileRequest) Response {
	t.Helper()
	base := s.HTTP
	if r.admin {
		base = s.Admin
	}
	if len(r.body) > 1<<20 || r.chunked {
		return rawSend(t, base, r)
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	require.NoError(t, err)
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err, "%s %s", r.method, r.path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func rawSend(t *testing.T, base string, r hostileRequest) Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/json\r\nConnection: close\r\n", r.method, r.path)
	if r.auth != "" {
		fmt.Fprintf(&head, "Authorization: %s\r\n", r.auth)
	}
	if r.chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(r.body))
	}
	go func() { // its errors are the server closing early, as it should
		if _, err := conn.Write(head.Bytes()); err != nil {
			return
		}
		if !r.chunked {
			_, _ = io.WriteString(conn, r.body)
			return
		}
		for rest := r.body; rest != ""; {
			chunk := rest[:min(len(rest), 64<<10)]
			rest = rest[len(chunk):]
			if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(conn, "0\r\n\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "%s %s", r.method, r.path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// jsonOf marshals v, for bodies built from Go values.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestHostileRequests: every public route and the operator DCB API refuse
// malformed requests (wrong JSON types, missing fields, huge numbers,
// invalid ids, unicode edge cases, SQL-looking strings, a 10 MB body, a
// wrong content type) with the documented status and error envelope, write
// nothing, and the server stays healthy.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	s, fx := startHostileServer(t)
	before := hostileSnapshot(t, s)
	for _, r := range hostileRequests(t, fx) {
		t.Run(r.name, func(t *testing.T) {
			res := hostileSend(t, s, r)
			require.Equal(t, r.status, res.Status, "%s", res)
			var env struct{ Code, Message string }
			require.NoError(t, json.Unmarshal(res.Body, &env), "the error envelope: %s", res)
			require.Equal(t, r.code, env.Code, "%s", res)
			require.Contains(t, env.Message, r.msg, "%s", res)
			after := hostileSnapshot(t, s)
			if r.records != "" {
				require.Equal(t, before["events"].(int64)+1, after["events"], "one event recorded")
				last := s.SQL(t, `SELECT type FROM events ORDER BY position DESC LIMIT 1`)[0]["type"]
				require.Equal(t, r.records, last)
				before["events"], before["head"] = after["events"], after["head"]
			}
			require.Equal(t, before, after, "a refused request wrote something")
		})
	}
	requireHealthy(t, s)
}

// requireHealthy checks that the server answers its health checks and
// serves a valid command.
func requireHealthy(t *testing.T, s *Server) {
	t.Helper()
	health := hostileSend(t, s, hostileRequest{admin: true, method: "GET", path: "/healthz", auth: "Bearer " + hostileAdminToken})
	require.Equal(t, http.StatusOK, health.Status, "%s", health)
	require.Equal(t, http.StatusOK, s.Get(t, "/healthcheck").Status)
	s.addItem(t, newID(), newID(), newID(), "2.5")
}

func hostileRequests(t *testing.T, fx hostileFixture) []hostileRequest {
	cart, item, product := fx.cart.String(), fx.item.String(), fx.product.String()
	const sql = "'; DROP TABLE events; --"
	v4 := uuid.NewString()
	huge := `{"description":"` + strings.Repeat("x", 10<<20) + `"}`
	item2 := newID().String()
	addItem := func(change func(map[string]any)) string {
		m := map[string]any{"cart_id": cart, "item_id": item2, "product_id": product, "description": "d", "image": "i", "price": "1"}
		change(m)
		return jsonOf(t, m)
	}
	bad, notJSON := http.StatusBadRequest, "malformed JSON"
	var out []hostileRequest
	add := func(rs ...hostileRequest) { out = append(out, rs...) }

	// What every route with a JSON body refuses alike.
	bodies := []struct{ route, path, auth string }{
		{"AddItem", "/additem/" + cart, ""}, {"RemoveItem", "/removeitem/" + cart, ""}, {"ClearCart", "/clearcart/" + cart, ""},
		{"SubmitCart", "/submitcart/" + cart, ""}, {"ChangeInventory", "/changeinventory/" + product, ""},
		{"ChangePrice", "/changeprice/" + product, ""}, {"Register", "/users", ""}, {"Login", "/login", ""},
		{"ChangePassword", "/users/me/password", "Bearer " + fx.token}, {"DCBAppend", "/dcb/append", "Bearer " + hostileAdminToken},
	}
	for _, b := range bodies {
		admin := b.route == "DCBAppend"
		req := func(name, contentType, body string, status int, code, msg string) hostileRequest {
			return hostileRequest{name: b.route + "/" + name, admin: admin, method: "POST", path: b.path, contentType: contentType,
				auth: b.auth, body: body, status: status, code: code, msg: msg}
		}
		add(
			req("TextPlain", "text/plain", `{}`, http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json"),
			req("Form", "application/x-www-form-urlencoded", "a=1", http.StatusUnsupportedMediaType, "unsupported_media_type", "application/json"),
			req("SQLNotJSON", "", sql, bad, "invalid_request", notJSON),
			req("Truncated", "", `{"`, bad, "invalid_request", "truncated JSON"),
			req("Array", "", `[]`, bad, "invalid_request", "expected an object, got JSON array"),
			req("InvalidUTF8", "", "{\"x\":\"\xff\xfe\"}", bad, "invalid_request", "not valid UTF-8"),
			req("UnknownField", "", `{"drop_table":"events"}`, bad, "invalid_request", `unknown field "drop_table"`),
			req("TwoValues", "", `{} {}`, bad, "invalid_request", "single JSON value"),
			req("10MB", "", huge, http.StatusRequestEntityTooLarge, "body_too_large", "1 MiB"),
		)
		chunked := req("10MBChunked", "", huge, http.StatusRequestEntityTooLarge, "body_too_large", "1 MiB")
		chunked.chunked = true
		add(chunked)
	}

	post := func(name, path, body string, status int, code, msg string) hostileRequest {
		return hostileRequest{name: name, method: "POST", path: path, body: body, status: status, code: code, msg: msg}
	}
	get := func(name, path string, status int, code, msg string) hostileRequest {
		return hostileRequest{name: name, method: "GET", path: path, status: status, code: code, msg: msg}
	}
	sqlPath := url.PathEscape(sql)
	add(
		post("AddItem/PathNotUUID", "/additem/not-a-uuid", addItem(func(m map[string]any) { delete(m, "cart_id") }), bad, "invalid_id", "cart_id in the path"),
		post("AddItem/PathSQL", "/additem/"+sqlPath, addItem(func(m map[string]any) { delete(m, "cart_id") }), bad, "invalid_id", "cart_id in the path"),
		post("AddItem/PathUUIDv4", "/additem/"+v4, addItem(func(m map[string]any) { delete(m, "cart_id") }), bad, "invalid_id", "version 7"),
		post("AddItem/PathNUL", "/additem/%00", addItem(func(m map[string]any) { delete(m, "cart_id") }), bad, "invalid_id", "cart_id in the path"),
		post("AddItem/PathLong", "/additem/"+strings.Repeat("7", 10000), addItem(func(m map[string]any) { delete(m, "cart_id") }), bad, "invalid_id", "cart_id in the path"),
		post("AddItem/IDMismatch", "/additem/"+cart, addItem(func(m map[string]any) { m["cart_id"] = newID() }), bad, "id_mismatch", "cart_id"),
		post("AddItem/ItemIDNumber", "/additem/"+cart, addItem(func(m map[string]any) { m["item_id"] = 7 }), bad, "invalid_request", `"item_id": expected a string`),
		post("AddItem/ItemIDSQL", "/additem/"+cart, addItem(func(m map[string]any) { m["item_id"] = sql }), bad, "invalid_id", "item_id: version 7 UUID required"),
		post("AddItem/ItemIDNil", "/additem/"+cart, addItem(func(m map[string]any) { m["item_id"] = uuid.Nil }), bad, "invalid_id", "item_id"),
		post("AddItem/ProductIDEmoji", "/additem/"+cart, addItem(func(m map[string]any) { m["product_id"] = "😀" }), bad, "invalid_id", "product_id"),
		post("AddItem/MissingProduct", "/additem/"+cart, addItem(func(m map[string]any) { delete(m, "product_id") }), bad, "invalid_request", "product_id: required"),
		post("AddItem/DescriptionNull", "/additem/"+cart, addItem(func(m map[string]any) { m["description"] = nil }), bad, "invalid_request", "description: required"),
		post("AddItem/DescriptionArray", "/additem/"+cart, addItem(func(m map[string]any) { m["description"] = []string{"a"} }), bad, "invalid_request", `"description": expected a string, got JSON array`),
		post("AddItem/DescriptionNUL", "/additem/"+cart, addItem(func(m map[string]any) { m["description"] = "a\x00b" }), bad, "invalid_request", "description: must not contain NUL"),
		post("AddItem/DescriptionLongEmoji", "/additem/"+cart, addItem(func(m map[string]any) { m["description"] = strings.Repeat("😀", 1001) }), bad, "invalid_request", "description: at most 1000 characters"),
		post("AddItem/Description100k", "/additem/"+cart, addItem(func(m map[string]any) { m["description"] = strings.Repeat("x", 100000) }), bad, "invalid_request", "description: at most 1000 characters"),
		post("AddItem/ImageLong", "/additem/"+cart, addItem(func(m map[string]any) { m["image"] = strings.Repeat("\u202e", 2049) }), bad, "invalid_request", "image: at most 2048 characters"),
		post("AddItem/PriceHuge", "/additem/"+cart, strings.Replace(addItem(func(m map[string]any) { m["price"] = 0 }), `"price":0`, `"price":1e400`, 1), bad, "invalid_request", "out of range"),
		post("AddItem/Price2To63", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = uint64(1) << 63 }), bad, "invalid_request", "out of range"),
		post("AddItem/PriceNegative", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = -1 }), bad, "invalid_request", "price: must not be negative"),
		post("AddItem/PriceBool", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = true }), bad, "invalid_request", "not a decimal number"),
		post("AddItem/PriceObject", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = map[string]int{"amount": 1} }), bad, "invalid_request", "not a decimal number"),
		post("AddItem/PriceSQL", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = sql }), bad, "invalid_request", "not a decimal number"),
		post("AddItem/PriceTooPrecise", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = "0.000000001" }), bad, "invalid_request", "at most 8 decimal places"),
		post("AddItem/PriceNaN", "/additem/"+cart, addItem(func(m map[string]any) { m["price"] = "NaN" }), bad, "invalid_request", "not a decimal number"),

		post("RemoveItem/PathNotUUID", "/removeitem/"+sqlPath, jsonOf(t, map[string]any{"item_id": item}), bad, "invalid_id", "cart_id in the path"),
		post("RemoveItem/IDMismatch", "/removeitem/"+cart, jsonOf(t, map[string]any{"cart_id": item, "item_id": item}), bad, "id_mismatch", "cart_id"),
		post("RemoveItem/MissingItem", "/removeitem/"+cart, `{"cart_id":"`+cart+`"}`, bad, "invalid_request", "item_id: required"),
		post("RemoveItem/ItemIDBool", "/removeitem/"+cart, `{"item_id":true}`, bad, "invalid_request", `"item_id": expected a string`),
		post("RemoveItem/ItemIDSQL", "/removeitem/"+cart, jsonOf(t, map[string]any{"item_id": sql}), bad, "invalid_id", "item_id"),
		post("RemoveItem/ItemIDUpperV4", "/removeitem/"+cart, jsonOf(t, map[string]any{"item_id": strings.ToUpper(v4)}), bad, "invalid_id", "item_id"),

		post("ChangeInventory/PathSQL", "/changeinventory/"+sqlPath, `{"inventory":1}`, bad, "invalid_id", "product_id in the path"),
		post("ChangeInventory/IDMismatch", "/changeinventory/"+product, `{"product_id":"`+cart+`","inventory":1}`, bad, "id_mismatch", "product_id"),
		post("ChangeInventory/Missing", "/changeinventory/"+product, `{}`, bad, "invalid_request", "inventory: required"),
		post("ChangeInventory/Huge", "/changeinventory/"+product, `{"inventory":1e400}`, bad, "invalid_request", `"inventory": expected a number`),
		post("ChangeInventory/2To63", "/changeinventory/"+product, `{"inventory":9223372036854775808}`, bad, "invalid_request", `"inventory": expected a number`),
		post("ChangeInventory/MinInt64", "/changeinventory/"+product, `{"inventory":-9223372036854775808}`, bad, "invalid_request", "inventory: must be between 0 and 1000000000"),
		post("ChangeInventory/Negative", "/changeinventory/"+product, `{"inventory":-1}`, bad, "invalid_request", "inventory: must be between 0 and 1000000000"),
		post("ChangeInventory/OverMax", "/changeinventory/"+product, `{"inventory":1000000001}`, bad, "invalid_request", "inventory: must be between 0 and 1000000000"),
		post("ChangeInventory/Fraction", "/changeinventory/"+product, `{"inventory":1.5}`, bad, "invalid_request", `"inventory": expected a number`),
		post("ChangeInventory/String", "/changeinventory/"+product, `{"inventory":"7"}`, bad, "invalid_request", `"inventory": expected a number, got JSON string`),

		post("ChangePrice/PathV4", "/changeprice/"+v4, `{"old_price":1,"new_price":2}`, bad, "invalid_id", "version 7"),
		post("ChangePrice/MissingNew", "/changeprice/"+product, `{"old_price":1}`, bad, "invalid_request", "new_price: required"),
		post("ChangePrice/NewHuge", "/changeprice/"+product, `{"old_price":1,"new_price":1e400}`, bad, "invalid_request", "out of range"),
		post("ChangePrice/OldNegative", "/changeprice/"+product, `{"old_price":-0.01,"new_price":1}`, bad, "invalid_request", "old_price: must not be negative"),
		post("ChangePrice/OldSQL", "/changeprice/"+product, jsonOf(t, map[string]any{"old_price": sql, "new_price": 1}), bad, "invalid_request", "not a decimal number"),

		post("ClearCart/PathNotUUID", "/clearcart/not-a-uuid", "", bad, "invalid_id", "cart_id in the path"),
		post("ClearCart/CartIDNumber", "/clearcart/"+cart, `{"cart_id":1}`, bad, "invalid_request", `"cart_id": expected a string`),
		post("ClearCart/IDMismatch", "/clearcart/"+cart, `{"cart_id":"`+item+`"}`, bad, "id_mismatch", "cart_id"),
		post("SubmitCart/PathNUL", "/submitcart/%00", "", bad, "invalid_id", "cart_id in the path"),
		post("SubmitCart/CartIDSQL", "/submitcart/"+cart, jsonOf(t, map[string]any{"cart_id": sql}), bad, "invalid_id", "cart_id"),
		post("SubmitCart/UnknownField", "/submitcart/"+cart, `{"cart_id":"`+cart+`","item_id":"`+item+`"}`, bad, "invalid_request", `unknown field "item_id"`),

		get("CartItems/PathNotUUID", "/not-a-uuid/cartitems", bad, "invalid_id", "cart_id in the path"),
		get("CartItems/PathSQL", "/"+sqlPath+"/cartitems", bad, "invalid_id", "cart_id in the path"),
		get("CartItemsFromDB/PathV4", "/"+v4+"/cartitemsfromdb", bad, "invalid_id", "version 7"),
		get("CartItemsFromDB/MinPositionNegative", "/"+cart+"/cartitemsfromdb?min_position=-1", bad, "invalid_request", "min_position"),
		get("CartItemsFromDB/MinPositionHuge", "/"+cart+"/cartitemsfromdb?min_position=1e400", bad, "invalid_request", "min_position"),
		get("CartItemsFromDB/MinPosition2To63", "/"+cart+"/cartitemsfromdb?min_position=9223372036854775808", bad, "invalid_request", "min_position"),
		get("Inventories/PathEmoji", "/inventories/"+url.PathEscape("😀"), bad, "invalid_id", "product_id in the path"),
		get("Inventories/MinPositionSQL", "/inventories/"+product+"?min_position="+url.QueryEscape(sql), bad, "invalid_request", "min_position"),
		get("CartsWithProducts/PathNUL", "/cartswithproducts/%00", bad, "invalid_id", "product_id in the path"),
		get("CartsWithProducts/MinPositionNUL", "/cartswithproducts/"+product+"?min_position=%00", bad, "invalid_request", "min_position"),
	)

	good := "a long and unusual phrase"
	user := func(name, path, auth, body string, status int, code, msg string) hostileRequest {
		return hostileRequest{name: name, method: "POST", path: path, auth: auth, body: body, status: status, code: code, msg: msg}
	}
	bearer, operator := "Bearer "+fx.token, "Bearer "+hostileAdminToken
	// A wrong current password is a failed login: it is recorded, so that
	// the lock-out applies to guesses here too.
	wrongCurrent := user("ChangePassword/WrongCurrent", "/users/me/password", bearer, jsonOf(t, map[string]string{"current_password": sql, "new_password": "another quite unusual phrase"}), http.StatusUnauthorized, "invalid_credentials", "invalid email or password")
	wrongCurrent.records = "UserLoginFailed"
	add(
		user("Register/EmailNumber", "/users", "", `{"email":1,"password":"`+good+`"}`, bad, "invalid_request", `"email": expected a string`),
		user("Register/MissingPassword", "/users", "", `{"email":"a@example.com"}`, bad, "invalid_request", "email and password are required"),
		user("Register/EmailSQL", "/users", "", jsonOf(t, map[string]string{"email": sql, "password": good}), bad, "invalid_email", "email"),
		user("Register/EmailSQLAddress", "/users", "", jsonOf(t, map[string]string{"email": "x@example.com'; DROP TABLE users; --", "password": good}), bad, "invalid_email", "email"),
		user("Register/EmailLong", "/users", "", jsonOf(t, map[string]string{"email": strings.Repeat("a", 10000) + "@example.com", "password": good}), bad, "invalid_email", "email"),
		user("Register/EmailNUL", "/users", "", jsonOf(t, map[string]string{"email": "a\x00b@example.com", "password": good}), bad, "invalid_email", "email"),
		user("Register/EmailRTL", "/users", "", jsonOf(t, map[string]string{"email": "\u202emoc.elpmaxe@a", "password": good}), bad, "invalid_email", "email"),
		user("Register/PasswordShort", "/users", "", `{"email":"short@example.com","password":"😀😀😀"}`, bad, "weak_password", "at least"),
		user("Register/PasswordLong", "/users", "", jsonOf(t, map[string]string{"email": "long@example.com", "password": strings.Repeat("😀", 10000)}), bad, "weak_password", "at most 128"),
		user("Register/PasswordCommon", "/users", "", `{"email":"common@example.com","password":"password1234567"}`, bad, "weak_password", "common"),
		user("Login/PasswordObject", "/login", "", `{"email":"a@example.com","password":{}}`, bad, "invalid_request", `"password": expected a string`),
		user("Login/MissingEmail", "/login", "", `{"password":"`+good+`"}`, bad, "invalid_request", "email and password are required"),
		user("ChangePassword/NoToken", "/users/me/password", "", `{"current_password":"`+good+`","new_password":"another quite unusual phrase"}`, http.StatusUnauthorized, "invalid_token", "bearer token"),
		user("ChangePassword/TokenSQL", "/users/me/password", "Bearer "+sql, `{"current_password":"`+good+`","new_password":"another quite unusual phrase"}`, http.StatusUnauthorized, "invalid_token", "bearer token"),
		user("ChangePassword/MissingNew", "/users/me/password", bearer, `{"current_password":"`+good+`"}`, bad, "invalid_request", "current_password and new_password are required"),
		user("ChangePassword/NewNumber", "/users/me/password", bearer, `{"current_password":"`+good+`","new_password":1e400}`, bad, "invalid_request", `"new_password": expected a string`),
		user("ChangePassword/NewWeak", "/users/me/password", bearer, `{"current_password":"`+good+`","new_password":"\u0000"}`, bad, "weak_password", "at least"),
		user("ChangePassword/NewLong", "/users/me/password", bearer, jsonOf(t, map[string]string{"current_password": good, "new_password": strings.Repeat("x", 100000)}), bad, "weak_password", "at most 128"),
		wrongCurrent,
		user("Deactivate/NoToken", "/users/"+fx.user+"/deactivate", "", "", http.StatusUnauthorized, "invalid_token", "bearer token"),
		user("Deactivate/TokenHuge", "/users/"+fx.user+"/deactivate", "Bearer "+strings.Repeat("a", 30000), "", http.StatusUnauthorized, "invalid_token", "bearer token"),
		user("Deactivate/PathSQL", "/users/"+sqlPath+"/deactivate", operator, "", bad, "invalid_id", "user_id in the path"),
		user("Deactivate/PathNUL", "/users/%00/deactivate", operator, "", bad, "invalid_id", "user_id in the path"),
		user("Deactivate/Unknown", "/users/"+newID().String()+"/deactivate", operator, "", http.StatusNotFound, "user_not_found", "user not found"),
		user("Deactivate/AnotherUser", "/users/"+newID().String()+"/deactivate", bearer, "", http.StatusForbidden, "forbidden", "only the operator or the user themself"),
		user("Activate/UsersToken", "/users/"+fx.user+"/activate", bearer, "", http.StatusForbidden, "forbidden", "only the operator"),
		user("Activate/AlreadyActive", "/users/"+fx.user+"/activate", operator, "", http.StatusConflict, "already_active", "already active"),
		user("Activate/PathBraces", "/users/"+url.PathEscape("{"+fx.user+"}")+"/activate", operator, "", bad, "invalid_id", "user_id in the path"),
		hostileRequest{name: "Me/NoToken", method: "GET", path: "/users/me", status: http.StatusUnauthorized, code: "invalid_token", msg: "bearer token"},
		hostileRequest{name: "Me/AlgNone", method: "GET", path: "/users/me", auth: "Bearer eyJhbGciOiJub25lIn0.e30.", status: http.StatusUnauthorized, code: "invalid_token", msg: "bearer token"},
		hostileRequest{name: "Me/MinPositionNegative", method: "GET", path: "/users/me?min_position=-1", auth: bearer, status: bad, code: "invalid_request", msg: "min_position"},
		hostileRequest{name: "Me/MinPositionHuge", method: "GET", path: "/users/me?min_position=1e400", auth: bearer, status: bad, code: "invalid_request", msg: "min_position"},
	)

	dcbRead := func(name, query, options string, status int, code, msg string) hostileRequest {
		path := "/dcb/read?query=" + url.QueryEscape(query)
		if options != "" {
			path += "&options=" + url.QueryEscape(options)
		}
		return hostileRequest{name: name, admin: true, method: "GET", path: path, auth: operator, status: status, code: code, msg: msg}
	}
	dcbAppend := func(name, body string, msg string) hostileRequest {
		return hostileRequest{name: name, admin: true, method: "POST", path: "/dcb/append", auth: operator, body: body, status: bad, code: "invalid_request", msg: msg}
	}
	manyEvents := `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"type":"A","data":""},`, 1001), ",") + `]}`
	tags := make([]string, 65)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%d", i)
	}
	manyTags := jsonOf(t, map[string]any{"events": []any{map[string]any{"type": "A", "tags": tags, "data": ""}}})
	userID := newID().String()
	add(
		hostileRequest{name: "DCBRead/NoToken", admin: true, method: "GET", path: "/dcb/read?query=%7B%22items%22%3A%5B%5D%7D", status: http.StatusUnauthorized, code: "unauthorized", msg: "ADMIN_TOKEN"},
		hostileRequest{name: "DCBAppend/WrongToken", admin: true, method: "POST", path: "/dcb/append", auth: "Bearer " + sql, body: `{"events":[{"type":"A","data":""}]}`, status: http.StatusUnauthorized, code: "unauthorized", msg: "ADMIN_TOKEN"},
		// The server hands the DCB API the application's event types: data
		// that would stop the cart listeners for good is refused.
		hostileRequest{name: "DCBAppend/UndecodableCartEvent", admin: true, method: "POST", path: "/dcb/append", auth: operator,
			body:   `{"events":[{"type":"A","data":""},{"type":"CartItemAdded","tags":["cart_id:` + newID().String() + `"],"data":"not json"}]}`,
			status: bad, code: "invalid_event_data", msg: `events[1].data: not valid data of the application's event type "CartItemAdded"`},
		// ...and so is an event whose tag puts it in another cart than its
		// data: that cart's decisions would fold it.
		hostileRequest{name: "DCBAppend/CartEventInAnotherCart", admin: true, method: "POST", path: "/dcb/append", auth: operator,
			body:   `{"events":[{"type":"CartCreated","tags":["cart_id:` + newID().String() + `"],"data":"{\"cart_id\":\"` + newID().String() + `\"}"}]}`,
			status: bad, code: "invalid_event_data", msg: `events[0].tags: eventstore: tags disagree with the data: the data of this CartCreated gives the tag "cart_id:`},
		// ...and so is an event of another type in a cart or a user's boundary:
		// their decisions would read it and could not decode it.
		hostileRequest{name: "DCBAppend/OpaqueEventInACart", admin: true, method: "POST", path: "/dcb/append", auth: operator,
			body:   `{"events":[{"type":"Note","tags":["cart_id:` + newID().String() + `"],"data":"x"}]}`,
			status: bad, code: "invalid_event_data", msg: `events[0].tags: the tag "cart_id:`},
		hostileRequest{name: "DCBAppend/RegistrationWithAnotherEmailHash", admin: true, method: "POST", path: "/dcb/append", auth: operator,
			body: `{"events":[{"type":"UserRegistered","tags":["user_id:` + userID + `","email_hash:` + strings.Repeat("0", 64) + `"],` +
				`"data":"{\"user_id\":\"` + userID + `\",\"email\":\"alice@example.com\",\"password_hash\":\"x\",\"registered_at\":\"2026-01-01T00:00:00Z\"}"}]}`,
			status: bad, code: "invalid_event_data", msg: `events[0].data: not valid data of the application's event type "UserRegistered": eventstore: UserRegistered: its email_hash tag is not the hash of its email`},
		hostileRequest{name: "DCBAppend/UserEventInACart", admin: true, method: "POST", path: "/dcb/append", auth: operator,
			body:   `{"events":[{"type":"UserActivated","tags":["user_id:` + userID + `","cart_id:` + newID().String() + `"],"data":"{\"user_id\":\"` + userID + `\"}"}]}`,
			status: bad, code: "invalid_event_data", msg: `is under a key (cart_id) that only other types of the application's events carry, not "UserActivated"`},
		hostileRequest{name: "DCBRead/NoQuery", admin: true, method: "GET", path: "/dcb/read", auth: operator, status: bad, code: "invalid_request", msg: "'query' is required"},
		dcbRead("DCBRead/QuerySQL", sql, "", bad, "invalid_request", "query: malformed JSON"),
		dcbRead("DCBRead/QueryNotUTF8", "{\"items\":[{\"types\":[\"\xff\"]}]}", "", bad, "invalid_request", "query: JSON text is not valid UTF-8"),
		dcbRead("DCBRead/TypeNUL", `{"items":[{"types":["\u0000"]}]}`, "", bad, "invalid_request", "must not contain NUL"),
		dcbRead("DCBRead/TagEmpty", `{"items":[{"tags":[""]}]}`, "", bad, "invalid_request", "query.items[0].tags[0]: must not be empty"),
		dcbRead("DCBRead/ItemsString", `{"items":"all"}`, "", bad, "invalid_request", `"items": expected an array`),
		dcbRead("DCBRead/LimitHuge", `{"items":[]}`, `{"limit":1e400}`, bad, "invalid_request", `options: field "limit": expected a number`),
		dcbRead("DCBRead/From2To63", `{"items":[]}`, `{"from":9223372036854775808}`, bad, "invalid_request", `options: field "from": expected a number`),
		dcbRead("DCBRead/LimitZero", `{"items":[]}`, `{"limit":0}`, bad, "invalid_request", "options.limit must be at least 1"),
		dcbRead("DCBRead/LimitNegative", `{"items":[]}`, `{"limit":-9223372036854775808}`, bad, "invalid_request", "options.limit must be at least 1"),
		dcbAppend("DCBAppend/NoEvents", `{}`, "events: required"),
		dcbAppend("DCBAppend/TypeNUL", `{"events":[{"type":"A\u0000","data":""}]}`, "events[0].type: must not contain NUL"),
		dcbAppend("DCBAppend/TypeLong", jsonOf(t, map[string]any{"events": []any{map[string]any{"type": strings.Repeat("😀", 100), "data": ""}}}), "events[0].type: is 400 bytes, the limit is 256"),
		dcbAppend("DCBAppend/TagNUL", `{"events":[{"type":"A","tags":["\u0000"],"data":""}]}`, "events[0].tags[0]: must not contain NUL"),
		dcbAppend("DCBAppend/TooManyTags", manyTags, "events[0].tags: has 65 tags, the limit is 64"),
		dcbAppend("DCBAppend/TooManyEvents", manyEvents, "events: has 1001 events, the limit is 1000"),
		dcbAppend("DCBAppend/DataObject", `{"events":[{"type":"A","data":{"drop":"table"}}]}`, `"events.data": expected a string`),
		dcbAppend("DCBAppend/TagsString", `{"events":[{"type":"A","tags":"t","data":""}]}`, `"events.tags": expected an array`),
		dcbAppend("DCBAppend/AfterString", `{"events":[{"type":"A","data":""}],"condition":{"failIfEventsMatch":{"items":[]},"after":"x"}}`, `"condition.after": expected a number`),
		dcbAppend("DCBAppend/AfterHuge", `{"events":[{"type":"A","data":""}],"condition":{"failIfEventsMatch":{"items":[]},"after":1e400}}`, `"condition.after": expected a number`),
		dcbAppend("DCBAppend/AfterNegative", `{"events":[{"type":"A","data":""}],"condition":{"failIfEventsMatch":{"items":[]},"after":-1}}`, "condition.after"),
		dcbAppend("DCBAppend/ConditionWithoutQuery", `{"events":[{"type":"A","data":""}],"condition":{"after":1}}`, "condition.failIfEventsMatch: required"),
	)
	return out
}

// TestHostileStringsStoredVerbatim: SQL-looking and unusual (RTL override,
// 4-byte emoji) strings in fields that accept any text are stored and read
// back exactly as sent, through the API and in the tables.
func TestHostileStringsStoredVerbatim(t *testing.T) {
	t.Parallel()
	s, _ := startHostileServer(t)
	const sql = "'; DROP TABLE events; --"
	description, image := sql+` "quoted" \ backslash`, "\u202egnp.exe😀"
	cart, item, product := newID(), newID(), newID()
	added := position(t, s.Post(t, "/additem/"+cart.String(), map[string]any{"item_id": item, "product_id": product,
		"description": description, "image": image, "price": "0.00000001"}))
	for _, path := range []string{"/" + cart.String() + "/cartitems", "/" + cart.String() + "/cartitemsfromdb?min_position=" + fmt.Sprint(added)} {
		var got struct {
			Items []struct{ Description, Image, Price string }
		}
		r := s.Get(t, path)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		r.Decode(t, &got)
		require.Len(t, got.Items, 1, path)
		require.Equal(t, description, got.Items[0].Description, path)
		require.Equal(t, image, got.Items[0].Image, path)
		require.Equal(t, "0.00000001", got.Items[0].Price, path)
	}
	row := s.SQL(t, `SELECT description, image FROM cart_items WHERE cart_id = $1`, cart)
	require.Equal(t, []map[string]any{{"description": description, "image": image}}, row)

	// The DCB API stores type, tags and data as given.
	tag := "note:" + sql
	data := sql + "\x00😀"
	res := hostileSend(t, s, hostileRequest{admin: true, method: "POST", path: "/dcb/append", auth: "Bearer " + hostileAdminToken,
		body: jsonOf(t, map[string]any{"events": []any{map[string]any{"type": sql, "tags": []string{tag}, "data": data}}})})
	require.Equal(t, http.StatusOK, res.Status, "%s", res)
	q := jsonOf(t, map[string]any{"items": []any{map[string]any{"types": []string{sql}, "tags": []string{tag}}}})
	read := hostileSend(t, s, hostileRequest{admin: true, method: "GET", path: "/dcb/read?query=" + url.QueryEscape(q), auth: "Bearer " + hostileAdminToken})
	require.Equal(t, http.StatusOK, read.Status, "%s", read)
	var events []struct {
		Type string
		Tags []string
		Data string
	}
	read.Decode(t, &events)
	require.Len(t, events, 1)
	require.Equal(t, sql, events[0].Type)
	require.Equal(t, []string{tag}, events[0].Tags)
	require.Equal(t, data, events[0].Data)
	require.Equal(t, []map[string]any{{"n": int64(1)}}, s.SQL(t, `SELECT count(*) AS n FROM events WHERE type = $1 AND data = $2`, sql, []byte(data)))
	requireHealthy(t, s)
}

// TestHostileSlowHeaders: a client that sends its request headers a few
// bytes at a time, never finishing them, is cut off by READ_HEADER_TIMEOUT
// (1s here), on both ports, well before the 30s read timeout; the server
// stays healthy.
func TestHostileSlowHeaders(t *testing.T) {
	t.Parallel()
	s, _ := startHostileServer(t)
	for _, base := range []string{s.HTTP, s.Admin} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		require.NoError(t, err)
		defer conn.Close()
		start := time.Now()
		stop := make(chan struct{})
		go func() { // the slow client: a header line every 100ms, forever
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: slow\r\n"); err != nil {
				return
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := fmt.Fprintf(conn, "X-Slow-%d: x\r\n", i); err != nil {
					return
				}
			}
		}()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
		got, err := io.ReadAll(conn)
		close(stop)
		var timeout net.Error
		require.False(t, errors.As(err, &timeout) && timeout.Timeout(), "the server kept a slow client's connection for 20s")
		require.Empty(t, got, "the server answered a request whose headers never ended")
		require.Less(t, time.Since(start), 5*time.Second, "cut off by READ_HEADER_TIMEOUT, not a later timeout")
	}
	requireHealthy(t, s)
}
