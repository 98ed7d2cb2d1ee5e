package cart

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// TestTranslators: Kafka messages become events, with ids derived from the
// message's coordinates and content; malformed or invalid ones are rejected; fields the
// spec does not name are ignored (other systems produce these messages).
func TestTranslators(t *testing.T) {
	t.Parallel()
	store := testStore(t)
	s := &Service{Store: store}
	ctx := context.Background()
	p := newID()
	translate := func(topic, value string) (eventstore.StoredEvent, error) {
		var appended []eventstore.StoredEvent
		err := pgx.BeginFunc(ctx, store.Pool(), func(tx pgx.Tx) error {
			rec := kafkabridge.Record{Topic: topic, Partition: 1, Offset: 42, Value: []byte(value)}
			var err error
			if topic == "inventories" {
				err = s.TranslateInventory(ctx, tx, rec)
			} else {
				err = s.TranslatePriceChange(ctx, tx, rec)
			}
			if err != nil {
				return err
			}
			appended, err = store.ReadTx(ctx, tx, eventstore.Query{Items: []eventstore.QueryItem{{Tags: []string{productTag(p)}}}},
				eventstore.ReadOptions{Backwards: true, Limit: 1})
			return err
		})
		if err != nil {
			return eventstore.StoredEvent{}, err
		}
		return appended[0], nil
	}

	e, err := translate("inventories", `{"product_uuid":"`+p.String()+`","inventory":7,"warehouse":"north"}`)
	require.NoError(t, err, "an extra field is ignored")
	v, err := Events.Decode(e)
	require.NoError(t, err)
	require.Equal(t, InventoryChanged{ProductID: p, Inventory: 7}, v)
	again, err := translate("inventories", `{"product_uuid":"`+p.String()+`","inventory":7,"warehouse":"north"}`)
	require.NoError(t, err)
	require.Equal(t, e.Position, again.Position, "the same message redelivered is the same event: stored once")
	reused, err := translate("inventories", `{"product_uuid":"`+p.String()+`","inventory":8}`)
	require.NoError(t, err)
	require.Greater(t, reused.Position, e.Position, "another message at the same coordinates (a broker that lost its data reuses offsets) is a new event")
	v, err = Events.Decode(reused)
	require.NoError(t, err)
	require.Equal(t, InventoryChanged{ProductID: p, Inventory: 8}, v)

	e, err = translate("price-changes", `{"product_uuid":"`+p.String()+`","old_price":"1.50","new_price":2}`)
	require.NoError(t, err)
	v, err = Events.Decode(e)
	require.NoError(t, err)
	require.Equal(t, "2", v.(PriceChanged).NewPrice.String())

	for _, bad := range []struct{ topic, value, reason string }{
		{"inventories", `not json`, "malformed JSON"},
		{"inventories", `{"product_uuid":"` + p.String() + `"}`, "inventory: required"},
		{"inventories", `{"product_uuid":"` + p.String() + `","inventory":-1}`, "inventory: must be between"},
		{"inventories", `{"product_uuid":"` + p.String() + `","inventory":1.5}`, "inventory"},
		{"inventories", `{"product_uuid":"0b8e5f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b","inventory":1}`, "product_uuid: version 7 UUID required"},
		{"inventories", "{\"product_uuid\":\"\xff\",\"inventory\":1}", "not valid UTF-8"},
		{"price-changes", `{"product_uuid":"` + p.String() + `","old_price":"1","new_price":"-1"}`, "prices must not be negative"},
		{"price-changes", `{"product_uuid":"` + p.String() + `","new_price":"1"}`, "old_price and new_price: required"},
		{"price-changes", `{"product_uuid":"` + p.String() + `","old_price":"abc","new_price":"1"}`, `old_price: not a decimal number`},
		{"price-changes", `{"product_uuid":"` + p.String() + `","old_price":"1","new_price":true}`, `new_price: not a decimal number`},
		{"price-changes", `[]`, "malformed JSON"},
	} {
		_, err := translate(bad.topic, bad.value)
		require.ErrorIs(t, err, kafkabridge.ErrReject, bad.value)
		require.ErrorContains(t, err, bad.reason, bad.value)
	}
}
