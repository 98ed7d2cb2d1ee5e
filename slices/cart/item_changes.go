package cart

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// itemChanges is the net effect of a run of cart events on a read model
// that keeps one row per item in a cart (cart_items, carts_with_products),
// settled in memory in position order, so that a projector writes a batch
// of events in a few set-based statements instead of one per event:
//
//   - delete the rows of removed items that were added before their removal;
//   - delete the rows of cleared carts that were added before the clearing;
//   - insert the items added in the run and still there (a row that exists
//     is left as it is).
//
// Rows are only deleted when added before the deleting event, so writing a
// run twice (a redelivery, a replay) changes nothing. queueDeletes queues
// the deletes; each projector inserts its own columns.
type itemChanges struct {
	added   map[cartItem]addedItem // added in the run and still there
	removed map[cartItem]int64     // item → its last removal in the run
	cleared map[uuid.UUID]int64    // cart → its last clearing in the run
}

type cartItem struct{ cart, item uuid.UUID }

type addedItem struct {
	CartItemAdded
	position int64
}

func newItemChanges() *itemChanges {
	return &itemChanges{added: map[cartItem]addedItem{}, removed: map[cartItem]int64{}, cleared: map[uuid.UUID]int64{}}
}

func (c *itemChanges) add(e CartItemAdded, at int64) {
	c.added[cartItem{e.CartID, e.ItemID}] = addedItem{e, at}
}

func (c *itemChanges) remove(cart, item uuid.UUID, at int64) {
	k := cartItem{cart, item}
	delete(c.added, k)
	c.removed[k] = at
}

func (c *itemChanges) clear(cart uuid.UUID, at int64) {
	for k := range c.added {
		if k.cart == cart {
			delete(c.added, k)
		}
	}
	c.cleared[cart] = at
}

func (c *itemChanges) empty() bool {
	return len(c.added) == 0 && len(c.removed) == 0 && len(c.cleared) == 0
}

// queueDeletes queues the two deletes of the changes from table, a read
// model keyed by (cart_id, item_id) whose rows keep the position of their
// CartItemAdded in column added.
//
// They are joins of the table with unnest(…) on its primary key, and they
// run in every batch. Planned from statistics, they can become a hash join
// over a scan of the whole table (the planner guesses ten elements for an
// unnest of a parameter, and a table growing from empty during a replay has
// no statistics yet), and the prepared statement keeps that plan: each batch
// then costs as much as the table is large (BENCHMARKS.md, "Listener
// replay"). So they are planned as what they are, one primary-key probe per
// removed item or cleared cart: SET LOCAL, in the listener's transaction.
func (c *itemChanges) queueDeletes(b *pgx.Batch, table, added string) {
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
		set_config('enable_mergejoin', 'off', true)`)
	var carts, items [][16]byte
	var before []int64
	for k, at := range c.removed {
		carts, items, before = append(carts, k.cart), append(items, k.item), append(before, at)
	}
	b.Queue(`DELETE FROM `+table+` c USING unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS d(cart_id, item_id, before)
		WHERE c.cart_id = d.cart_id AND c.item_id = d.item_id AND c.`+added+` < d.before`, carts, items, before)
	carts, before = nil, nil
	for cart, at := range c.cleared {
		carts, before = append(carts, cart), append(before, at)
	}
	b.Queue(`DELETE FROM `+table+` c USING unnest($1::uuid[], $2::bigint[]) AS d(cart_id, before)
		WHERE c.cart_id = d.cart_id AND c.`+added+` < d.before`, carts, before)
}
