package cart

import (
	"errors"
	"slices"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// Errors of the rules shared by several slices. Each slice's own are in its file.
var (
	ErrCartNotFound  = errors.New("cart not found")
	ErrCartSubmitted = errors.New("cart already submitted: it can no longer change")
)

// cart is a cart folded from its events: what several slices decide on and
// what the live view shows.
type cart struct {
	exists    bool
	submitted bool
	items     []CartItemAdded // in the order added; removed, archived and cleared ones are gone
	// published is true once CartPublished or CartPublicationFailed ended the story.
	published bool
	// submission is the CartSubmitted event, once submitted.
	submission CartSubmitted
}

func evolveCart(c cart, e any) cart {
	switch e := e.(type) {
	case CartCreated:
		c.exists = true
	case CartItemAdded:
		c.exists = true
		c.items = append(slices.Clip(c.items), e)
	case CartItemRemoved:
		c.items = withoutItem(c.items, e.ItemID)
	case ItemArchived:
		c.items = withoutItem(c.items, e.ItemID)
	case CartCleared:
		c.items = nil
	case CartSubmitted:
		c.submitted, c.submission = true, e
	case CartPublished, CartPublicationFailed:
		c.published = true
	}
	return c
}

func withoutItem(items []CartItemAdded, id uuid.UUID) []CartItemAdded {
	return slices.DeleteFunc(slices.Clone(items), func(it CartItemAdded) bool { return it.ItemID == id })
}

func (c cart) has(item uuid.UUID) bool {
	return slices.ContainsFunc(c.items, func(it CartItemAdded) bool { return it.ItemID == item })
}

func (c cart) total() decimal.Decimal {
	total := decimal.Zero
	for _, it := range c.items {
		total = total.Add(it.Price)
	}
	return total
}
