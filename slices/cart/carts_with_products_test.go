package cart

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
)

// TestCartsWithProductsMatchesEventByEvent: random histories of three carts
// and two products (adds, an item id coming back, removals, archives,
// clears, submissions, price changes), applied in batches of random sizes,
// leave the table after every batch, and the archive jobs, exactly as
// applying the events one by one in order says (the model below); and
// replaying the whole history again (a reset without the emptying, in other
// batches) changes nothing.
func TestCartsWithProductsMatchesEventByEvent(t *testing.T) {
	t.Parallel()
	s := serviceWithJobs(t)
	pool := s.Pool
	ctx := context.Background()

	type row struct {
		Product     uuid.UUID
		Position    int64
		Fingerprint string
	}
	for round := range 20 {
		rng := rand.New(rand.NewPCG(uint64(round), 11))
		carts := []uuid.UUID{newID(), newID(), newID()}
		products := []uuid.UUID{newID(), newID()}
		rows := map[cartItem]row{}         // the model: the table after the last event
		var after []map[cartItem]row       // and after each event
		wantJobs := map[ArchiveItem]bool{} // and the jobs enqueued so far
		var gone []cartItem                // items that left their cart, to come back
		h := &history{t: t, position: int64(1_000_000 * (round + 1))}
		inCart := func(c uuid.UUID) []cartItem {
			var in []cartItem
			for k := range rows {
				if k.cart == c {
					in = append(in, k)
				}
			}
			slices.SortFunc(in, func(a, b cartItem) int { return slices.Compare(a.item[:], b.item[:]) })
			return in
		}
		for range 80 {
			c := carts[rng.IntN(len(carts))]
			in := inCart(c)
			switch n := rng.IntN(20); {
			case n < 8 || len(in) == 0:
				it := item(c, products[rng.IntN(len(products))], "1")
				if n == 0 && len(gone) > 0 { // an id coming back to its cart (not while there)
					back := gone[rng.IntN(len(gone))]
					if _, there := rows[back]; !there {
						it.CartID, it.ItemID = back.cart, back.item
					}
				}
				h.emit(it)
				rows[cartItem{it.CartID, it.ItemID}] = row{it.ProductID, h.position, it.Fingerprint}
			case n < 11:
				k := in[rng.IntN(len(in))]
				h.emit(CartItemRemoved{k.cart, k.item})
				delete(rows, k)
				gone = append(gone, k)
			case n < 14:
				k := in[rng.IntN(len(in))]
				h.emit(ItemArchived{k.cart, k.item, h.position})
				delete(rows, k)
				gone = append(gone, k)
			case n < 15:
				h.emit(CartCleared{c})
				for _, k := range in {
					delete(rows, k)
				}
				gone = append(gone, in...)
			case n < 16:
				h.emit(CartSubmitted{CartID: c})
				for _, k := range in {
					delete(rows, k)
				}
				gone = append(gone, in...)
			default:
				p := products[rng.IntN(len(products))]
				h.emit(PriceChanged{ProductID: p, OldPrice: money("1"), NewPrice: money("2")})
				for k, r := range rows {
					if r.Product == p {
						wantJobs[ArchiveItem{k.cart, k.item, h.position, r.Fingerprint}] = true
					}
				}
			}
			after = append(after, maps.Clone(rows))
		}
		stored := func() map[cartItem]row {
			got := map[cartItem]row{}
			var k cartItem
			var r row
			_, err := pgx.ForEachRow(query(t, pool, `SELECT cart_id, item_id, product_id, position, fingerprint
				FROM carts_with_products WHERE cart_id = ANY ($1)`, carts),
				[]any{&k.cart, &k.item, &r.Product, &r.Position, &r.Fingerprint}, func() error { got[k] = r; return nil })
			require.NoError(t, err)
			return got
		}

		for pass := range 2 { // the second pass replays everything over the result
			for done := 0; done < len(h.events); {
				n := min(len(h.events)-done, 1+rng.IntN(25))
				require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					return s.applyCartsWithProducts(ctx, tx, h.events[done:done+n])
				}))
				if done += n; pass == 0 {
					require.Equal(t, after[done-1], stored(), "round %d, after event %d", round, done-1)
				}
			}
			require.Equal(t, rows, stored(), "round %d, pass %d", round, pass)

			raw, err := pgx.CollectRows(query(t, pool, `SELECT args->'args' FROM river_job
				WHERE kind = 'cart.archive_item' AND (args->'args'->>'cart_id')::uuid = ANY ($1)`, carts), pgx.RowTo[[]byte])
			require.NoError(t, err)
			gotJobs := map[ArchiveItem]bool{}
			for _, b := range raw {
				var a ArchiveItem
				require.NoError(t, json.Unmarshal(b, &a))
				require.False(t, gotJobs[a], "round %d: %v enqueued twice", round, a)
				gotJobs[a] = true
			}
			require.ElementsMatch(t, slices.Collect(maps.Keys(wantJobs)), slices.Collect(maps.Keys(gotJobs)), "round %d, pass %d", round, pass)
		}
	}
}

func query(t *testing.T, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) pgx.Rows {
	t.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	return rows
}

// TestItemDeletesProbeThePrimaryKey: the deletes of both item read models,
// as prepared statements keep them (a generic plan), on tables that were
// never analysed (a replay after a reset), are primary-key probes: no scan
// of the table, no hash or merge join that would need one. Without the plan
// settings queued before them, both are a hash join over a sequential scan,
// and every batch of a replay read the whole table.
func TestItemDeletesProbeThePrimaryKey(t *testing.T) {
	t.Parallel()
	pool := eventstoretest.NewPool(t)
	ctx := context.Background()
	for _, table := range []struct{ name, added, fill string }{
		{"cart_items", "added_position", `INSERT INTO cart_items (cart_id, item_id, product_id, added_position, fingerprint, description, image, price)
			SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), i, '', '', '', 1 FROM generate_series(1, 20000) AS i`},
		{"carts_with_products", "position", `INSERT INTO carts_with_products (cart_id, item_id, product_id, position, fingerprint)
			SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), i, '' FROM generate_series(1, 20000) AS i`},
	} {
		t.Run(table.name, func(t *testing.T) {
			b := &pgx.Batch{}
			newItemChanges().queueDeletes(b, table.name, table.added)
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			for _, sql := range []string{table.fill, b.QueuedQueries[0].SQL, `SET LOCAL plan_cache_mode = force_generic_plan`} {
				_, err := tx.Exec(ctx, sql)
				require.NoError(t, err, sql)
			}
			for i, q := range b.QueuedQueries[1:] {
				name := fmt.Sprintf("%s_delete_%d", table.name, i)
				_, err := tx.Exec(ctx, `PREPARE `+name+` AS `+q.SQL)
				require.NoError(t, err)
				nulls := strings.TrimSuffix(strings.Repeat("NULL, ", len(q.Arguments)), ", ")
				lines, err := pgx.CollectRows(query(t, tx, `EXPLAIN EXECUTE `+name+`(`+nulls+`)`), pgx.RowTo[string])
				require.NoError(t, err)
				plan := strings.Join(lines, "\n")
				for _, bad := range []string{"Seq Scan", "Hash Join", "Merge Join"} {
					require.NotContains(t, plan, bad, "%s\n%s", q.SQL, plan)
				}
				require.Contains(t, plan, table.name+"_pkey", plan)
			}
		})
	}
}
