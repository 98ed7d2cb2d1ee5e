package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// kafkaWait bounds how long a message takes from the broker to a read
// model: the consumer may still be joining its group.
const kafkaWait = 45 * time.Second

// waitInventory polls GET /inventories/{product} until it answers want.
func waitInventory(t *testing.T, s *Server, product uuid.UUID, want int) {
	t.Helper()
	eventually(t, kafkaWait, func() error {
		r := s.Get(t, "/inventories/"+product.String())
		if r.Status != http.StatusOK {
			return fmt.Errorf("GET /inventories: %s", r)
		}
		if got := r.JSON(t)["inventory"]; got != float64(want) {
			return fmt.Errorf("inventory %v, want %d", got, want)
		}
		return nil
	})
}

// TestInventoryMessages: an inventories message reaches GET /inventories;
// inventory 0 then refuses add-item with out_of_stock; malformed messages
// land in rejected_messages with their raw bytes and reason, and the
// messages after them on the same partition are still processed.
func TestInventoryMessages(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	p := newID()
	require.Equal(t, http.StatusNotFound, s.Get(t, "/inventories/"+p.String()).Status, "no inventory known yet")

	produce(t, s.Broker, "inventories", 0, p.String(), `{"product_uuid":"`+p.String()+`","inventory":5}`)
	waitInventory(t, s, p, 5)
	r := s.Get(t, "/inventories/"+p.String())
	require.JSONEq(t, `{"product_id":"`+p.String()+`","inventory":5}`, string(r.Body))
	require.NotEmpty(t, r.Header.Get("X-Read-Model-Position"))
	changed := s.Events(t, []string{"InventoryChanged"}, "product_id:"+p.String())
	require.Len(t, changed, 1)
	require.Equal(t, map[string]any{"product_id": p.String(), "inventory": float64(5)}, changed[0].Data)

	// Malformed messages, then a good one, all on partition 0: it is
	// processed after them, so once it shows, they have been handled.
	v4 := uuid.New()
	bad := []string{
		`not json`,
		`{"product_uuid":"` + v4.String() + `","inventory":1}`,
		`{"product_uuid":"` + p.String() + `","inventory":-1}`,
		`{"product_uuid":"` + p.String() + `"}`,
		`{"product_uuid":"` + p.String() + `","inventory":"3"}`,
	}
	for _, v := range bad {
		produce(t, s.Broker, "inventories", 0, "", v)
	}
	produce(t, s.Broker, "inventories", 0, p.String(), `{"product_uuid":"`+p.String()+`","inventory":0}`)
	waitInventory(t, s, p, 0)

	rejected := s.SQL(t, `SELECT consumer_group, topic, partition, "offset", key, value, reason
		FROM rejected_messages ORDER BY "offset"`)
	require.Len(t, rejected, len(bad))
	for i, row := range rejected {
		require.Equal(t, "cart", row["consumer_group"])
		require.Equal(t, "inventories", row["topic"])
		require.EqualValues(t, 0, row["partition"])
		require.EqualValues(t, i+1, row["offset"])
		require.Equal(t, bad[i], string(row["value"].([]byte)), "raw value kept")
		require.NotEmpty(t, row["reason"])
	}
	require.Contains(t, rejected[1]["reason"], "version 7 UUID required")
	require.Contains(t, rejected[2]["reason"], "inventory")
	require.Empty(t, s.Events(t, nil, "product_id:"+v4.String()), "nothing stored for the rejected product")
	offsets := s.SQL(t, `SELECT last_offset FROM kafka_offsets WHERE consumer_group = 'cart' AND topic = 'inventories' AND partition = 0`)
	require.Len(t, offsets, 1)
	require.EqualValues(t, len(bad)+1, offsets[0]["last_offset"], "offsets recorded per partition, past the rejected messages")
	require.Len(t, s.Events(t, []string{"InventoryChanged"}, "product_id:"+p.String()), 2)

	// Inventory 0: adding the product is refused.
	c := newID()
	r = s.Post(t, "/additem/"+c.String(), map[string]any{"cart_id": c, "item_id": newID(), "product_id": p,
		"description": "d", "image": "i", "price": "1"})
	require.Equal(t, http.StatusConflict, r.Status, "%s", r)
	require.Equal(t, "out_of_stock", r.Code())
	require.Empty(t, s.CartEvents(t, c), "nothing written for the refused add")
	require.Equal(t, http.StatusNotFound, s.Get(t, "/"+c.String()+"/cartitems").Status)
}
