package cart

import (
	"github.com/google/uuid"
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
// run twice (a redelivery, a replay) changes nothing.
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

// removals returns the removed items as the columns of an unnest: carts,
// items, and the position before which their rows go.
func (c *itemChanges) removals() (carts, items [][16]byte, before []int64) {
	for k, at := range c.removed {
		carts, items, before = append(carts, k.cart), append(items, k.item), append(before, at)
	}
	return carts, items, before
}

// clearings returns the cleared carts as the columns of an unnest: carts
// and the position before which their rows go.
func (c *itemChanges) clearings() (carts [][16]byte, before []int64) {
	for cart, at := range c.cleared {
		carts, before = append(carts, cart), append(before, at)
	}
	return carts, before
}
