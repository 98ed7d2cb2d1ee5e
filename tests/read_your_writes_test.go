package tests

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadYourWrites: the position of each command's answer, given as
// ?min_position to each stored read model right away, always gives an
// answer that includes the write, with X-Read-Model-Position at least that
// position; a position the read model cannot reach in READ_MODEL_WAIT is
// 503 read_model_lagging with Retry-After.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{
		Env: map[string]string{"READ_MODEL_WAIT": "500ms"},
		// The access log reports every 5xx at level ERROR, the expected
		// 503 read_model_lagging too.
		ExpectedError: func(l LogLine) bool { return l.Msg == "http request" && l.Attr("status") == "503" },
	})
	p := newID()
	for round := range 15 {
		c, item := newID(), newID()
		at := s.addItem(t, c, item, p, strconv.Itoa(round))
		require.Contains(t, itemIDs(t, s.readModel(t, "/"+c.String()+"/cartitemsfromdb", at)), item, "cart_items, round %d", round)

		var rows []cartWithProduct
		s.readModel(t, "/cartswithproducts/"+p.String(), at).Decode(t, &rows)
		require.Contains(t, rows, cartWithProduct{c, item, p}, "carts_with_products, round %d", round)

		at = position(t, s.Post(t, "/changeinventory/"+p.String(), map[string]any{"product_id": p, "inventory": round + 1}))
		require.JSONEq(t, fmt.Sprintf(`{"product_id":"%s","inventory":%d}`, p, round+1),
			string(s.readModel(t, "/inventories/"+p.String(), at).Body), "inventories, round %d", round)

		at = position(t, s.Post(t, "/removeitem/"+c.String(), map[string]any{"cart_id": c, "item_id": item}))
		require.Empty(t, itemIDs(t, s.readModel(t, "/"+c.String()+"/cartitemsfromdb", at)), "cart_items after remove, round %d", round)
	}

	head := s.Head(t)
	for _, path := range []string{"/" + newID().String() + "/cartitemsfromdb", "/inventories/" + p.String(), "/cartswithproducts/" + p.String()} {
		r := s.Get(t, path+"?min_position="+strconv.FormatInt(head+1000, 10))
		requireError(t, r, http.StatusServiceUnavailable, "read_model_lagging", strconv.FormatInt(head+1000, 10))
		require.Equal(t, "1", r.Header.Get("Retry-After"))
		r = s.Get(t, path+"?min_position=x")
		requireError(t, r, http.StatusBadRequest, "invalid_request", "min_position")
		r = s.Get(t, path) // no min_position: whatever the read model has, with its position
		require.NotEmpty(t, r.Header.Get("X-Read-Model-Position"), path)
	}
}
