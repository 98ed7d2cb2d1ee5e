package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The invariant checker of the reliability tests: after a workload, once the
// server has caught up, it checks from the stored log, the read models, the
// job table and the Kafka topics that nothing acknowledged was lost and
// nothing happened twice.

// kafkaNamespace is the namespace of the ids of events translated from
// Kafka (slices/cart): the checker derives the id a message must have.
var kafkaNamespace = uuid.MustParse("6f6a1b8e-0d52-4c8f-9a57-2f5a0c2b9e41")

// eventID is the id slices/cart gives the event of a message: a SHA-1 UUID
// of its coordinates, timestamp (milliseconds, as Kafka keeps it), key and
// value.
func (p Produced) eventID() uuid.UUID {
	name := fmt.Appendf(nil, "%s/%d/%d/%d/%d/", p.Topic, p.Partition, p.Offset, p.Timestamp.UnixMilli(), len(p.Key))
	name = append(name, p.Key...)
	return uuid.NewSHA1(kafkaNamespace, append(name, p.Value...))
}

// readModelTables are the tables of the stored read models, compared with
// a rebuild.
var readModelTables = []string{"cart_items_carts", "cart_items", "inventories", "carts_with_products", "users"}

// Report is the outcome of a check: how many facts were checked, and the
// violations found (each a sentence).
type Report struct {
	Checks     int
	Violations []string
	// BrokerKilled says the Kafka broker itself was killed (the server's
	// embedded one): a published cart whose record a read_uncommitted
	// consumer finds but a read_committed one does not is then a known
	// defect of the embedded broker (apparently its transaction state does not
	// survive SIGKILL, so the partition's last stable offset stays behind
	// a transaction that never ends), reported under Known, not a
	// violation.
	BrokerKilled bool
	Known        []string
}

func (r *Report) check(ok bool, format string, args ...any) {
	r.Checks++
	if !ok {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

// has reports whether a violation containing s was found.
func (r Report) has(s string) bool {
	return slices.ContainsFunc(r.Violations, func(v string) bool { return strings.Contains(v, s) })
}

func (r Report) log(t testing.TB, name string) {
	t.Helper()
	t.Logf("%s: invariants checked %d, violations %d", name, r.Checks, len(r.Violations))
	if len(r.Known) > 0 {
		t.Logf("%s: %d published carts visible only to read_uncommitted consumers after the embedded broker was killed (known embedded-broker defect), e.g. %s",
			name, len(r.Known), r.Known[0])
	}
	for i, v := range r.Violations {
		if i == 20 {
			t.Logf("  … %d more", len(r.Violations)-20)
			break
		}
		t.Logf("  violation: %s", v)
	}
}

// storedEvent is a row of the events table, its data decoded.
type storedEvent struct {
	Position int64
	ID       uuid.UUID
	Type     string
	Tags     []string
	Data     map[string]any
}

func (e storedEvent) hasTag(key string, id uuid.UUID) bool {
	return slices.Contains(e.Tags, key+":"+id.String())
}

func (e storedEvent) str(field string) string { s, _ := e.Data[field].(string); return s }

// readLog reads the whole log.
func readLog(t testing.TB, dbURL string) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT position, id, type, tags, data FROM events ORDER BY position`)
	var out []storedEvent
	var e storedEvent
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&e.Position, &e.ID, &e.Type, &e.Tags, &data}, func() error {
		e.Data = nil
		if err := json.Unmarshal(data, &e.Data); err != nil {
			return fmt.Errorf("event %d: %w", e.Position, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	return out
}

// waitSettled waits until the system has nothing left to do: every listener
// at the head of the log, no job waiting or running, every acknowledged
// message consumed, every submitted cart's story ended.
func waitSettled(t testing.TB, dbURL string, produced []Produced, within time.Duration) {
	t.Helper()
	last := map[string]int64{}
	for _, p := range produced {
		k := fmt.Sprintf("%s/%d", p.Topic, p.Partition)
		last[k] = max(last[k], p.Offset)
	}
	start, reason := time.Now(), ""
	defer func() { t.Logf("settled in %s (last wait: %s)", time.Since(start).Round(time.Millisecond), reason) }()
	eventually(t, within, func() error {
		err := settled(t, dbURL, last)
		if err != nil {
			reason = err.Error()
		}
		return err
	})
}

// settled says what the system still has to do, nil if nothing.
func settled(t testing.TB, dbURL string, last map[string]int64) error {
	{
		row := querySQL(t, dbURL, `SELECT
			(SELECT coalesce(max(position), 0) FROM events) AS head,
			(SELECT coalesce(min(position), 0) FROM listener_checkpoints) AS slowest,
			(SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'discarded', 'cancelled')) AS jobs`)[0]
		if row["slowest"].(int64) < row["head"].(int64) {
			return fmt.Errorf("a listener is at %d, the head at %d", row["slowest"], row["head"])
		}
		if n := row["jobs"].(int64); n > 0 {
			return fmt.Errorf("%d jobs not finished", n)
		}
		offsets := querySQL(t, dbURL, `SELECT topic || '/' || partition AS k, last_offset FROM kafka_offsets`)
		for k, want := range last {
			i := slices.IndexFunc(offsets, func(r map[string]any) bool { return r["k"] == k })
			if i < 0 || offsets[i]["last_offset"].(int64) < want {
				return fmt.Errorf("Kafka partition %s not consumed up to %d", k, want)
			}
		}
		return nil
	}
}

// snapshotReadModels returns every row of the stored read models, as JSON
// text, sorted, per table.
func snapshotReadModels(t testing.TB, dbURL string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range readModelTables {
		for _, r := range querySQL(t, dbURL, `SELECT to_jsonb(r)::text AS row FROM `+table+` r ORDER BY 1`) {
			out[table] = append(out[table], r["row"].(string))
		}
	}
	return out
}

// compareReadModels adds a violation for every row that differs between
// the stored read models and their rebuild.
func compareReadModels(r *Report, stored, rebuilt map[string][]string) {
	for _, table := range readModelTables {
		for _, row := range stored[table] {
			r.check(slices.Contains(rebuilt[table], row), "%s: stored row not in the rebuild: %s", table, row)
		}
		for _, row := range rebuilt[table] {
			r.check(slices.Contains(stored[table], row), "%s: rebuilt row missing from the stored read model: %s", table, row)
		}
	}
}

// CheckRebuild checks that the stored read models equal a rebuild: it
// snapshots them, stops the servers, starts the first again with
// --reset-read-model all, waits until it has replayed the log, and
// compares. It returns the new server (on the same database and broker).
func CheckRebuild(t testing.TB, r *Report, servers []*Server, produced []Produced) *Server {
	t.Helper()
	s := servers[0]
	stored := snapshotReadModels(t, s.DatabaseURL)
	for _, other := range servers {
		other.Stop()
	}
	s = s.Restart(t, "--reset-read-model", "all")
	waitSettled(t, s.DatabaseURL, produced, 2*time.Minute)
	compareReadModels(r, stored, snapshotReadModels(t, s.DatabaseURL))
	return s
}

// CheckInvariants checks the log, the jobs and the published-carts topic
// against what the workload had acknowledged. The server must have settled
// (waitSettled).
func CheckInvariants(t testing.TB, r *Report, s *Server, acks []Ack, produced []Produced) {
	t.Helper()
	log := readLog(t, s.DatabaseURL)
	byPosition := map[int64]storedEvent{}
	byID := map[uuid.UUID]storedEvent{}
	for _, e := range log {
		byPosition[e.Position], byID[e.ID] = e, e
	}

	// Every acknowledged command has its events stored.
	wantType := map[string]string{"additem": "CartItemAdded", "removeitem": "CartItemRemoved", "clearcart": "CartCleared",
		"submitcart": "CartSubmitted", "register": "UserRegistered", "login": "UserLoggedIn"}
	for _, a := range acks {
		e, ok := byPosition[a.Position]
		switch a.Kind {
		case "register", "login":
			r.check(ok && e.Type == wantType[a.Kind] && e.hasTag("user_id", a.User),
				"acknowledged %s of user %s: no %s at position %d (found %s)", a.Kind, a.User, wantType[a.Kind], a.Position, e.Type)
		default:
			r.check(ok && e.Type == wantType[a.Kind] && e.hasTag("cart_id", a.Cart) && (a.Item == uuid.Nil || e.hasTag("item_id", a.Item)),
				"acknowledged %s of cart %s item %s: no %s at position %d (found %s)", a.Kind, a.Cart, a.Item, wantType[a.Kind], a.Position, e.Type)
		}
	}

	// Every acknowledged message was translated once, under its own id, and
	// nothing was rejected.
	for _, p := range produced {
		id := p.eventID()
		e, ok := byID[id]
		want := map[string]string{"inventories": "InventoryChanged", "price-changes": "PriceChanged"}[p.Topic]
		r.check(ok && e.Type == want && e.str("product_id") == p.Product.String(),
			"message %s/%d/%d (product %s) not translated into a %s with id %s", p.Topic, p.Partition, p.Offset, p.Product, want, id)
	}
	rejected := querySQL(t, s.DatabaseURL, `SELECT count(*) AS n FROM rejected_messages`)[0]["n"].(int64)
	r.check(rejected == 0, "%d Kafka messages rejected", rejected)

	checkCartStories(t, r, s, log)
	checkJobs(t, r, s, log)
}

// checkCartStories: every submitted cart was submitted once and has exactly
// one of CartPublished and CartPublicationFailed, and every published cart
// is on the topic published-carts with its submission.
func checkCartStories(t testing.TB, r *Report, s *Server, log []storedEvent) {
	t.Helper()
	type story struct {
		submitted       []storedEvent
		published, lost int
	}
	stories := map[string]*story{}
	for _, e := range log {
		switch e.Type {
		case "CartSubmitted", "CartPublished", "CartPublicationFailed":
			st := stories[e.str("cart_id")]
			if st == nil {
				st = &story{}
				stories[e.str("cart_id")] = st
			}
			switch e.Type {
			case "CartSubmitted":
				st.submitted = append(st.submitted, e)
			case "CartPublished":
				st.published++
			default:
				st.lost++
			}
		}
	}
	want := map[string]storedEvent{}
	for cart, st := range stories {
		r.check(len(st.submitted) == 1, "cart %s submitted %d times", cart, len(st.submitted))
		r.check(st.published+st.lost == 1, "cart %s: %d CartPublished and %d CartPublicationFailed", cart, st.published, st.lost)
		if st.published > 0 && len(st.submitted) > 0 {
			want[cart] = st.submitted[0]
		}
	}
	if len(want) == 0 {
		return
	}
	got := map[string]map[string]any{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Broker), kgo.ConsumeTopics("published-carts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	duplicates := 0
	for len(got) < len(want) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			var m map[string]any
			_ = json.Unmarshal(rec.Value, &m)
			if _, seen := got[string(rec.Key)]; seen {
				duplicates++
			}
			got[string(rec.Key)] = m
		})
	}
	var hidden map[string][]string
	for cart, sub := range want {
		m, ok := got[cart]
		ok = ok && m["cart_id"] == cart && m["total_price"] == sub.Data["total_price"] &&
			fmt.Sprint(m["ordered_products"]) == fmt.Sprint(sub.Data["ordered_products"])
		r.Checks++
		if ok {
			continue
		}
		if hidden == nil { // the diagnosis takes seconds: only for a violation
			hidden = uncommitted(t, s.Broker)
		}
		found := hidden[cart]
		msg := fmt.Sprintf("cart %s has CartPublished but published-carts holds %v (read uncommitted: %v), not its submission %v",
			cart, m, found, sub.Data)
		if r.BrokerKilled && m == nil && len(found) > 0 {
			r.Known = append(r.Known, msg)
		} else {
			r.Violations = append(r.Violations, msg)
		}
	}
	t.Logf("published carts %d; the same cart published again (at-least-once, keyed): %d", len(want), duplicates)
}

// uncommitted says where a read_uncommitted consumer finds the records of
// published-carts, per key, to tell a lost record from one hidden behind an
// unfinished transaction.
func uncommitted(t testing.TB, broker string) map[string][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("published-carts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	found := map[string][]string{}
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			found[string(rec.Key)] = append(found[string(rec.Key)], fmt.Sprintf("partition %d offset %d", rec.Partition, rec.Offset))
		})
	}
	return found
}

// checkJobs: no job ran its effect twice. One job per unique key, each
// ended, and never two ItemArchived for one (cart, item, price change).
func checkJobs(t testing.TB, r *Report, s *Server, log []storedEvent) {
	t.Helper()
	for _, row := range s.SQL(t, `SELECT kind, args->>'unique_key' AS key, count(*) AS n FROM river_job
		GROUP BY 1, 2 HAVING count(*) > 1`) {
		r.check(false, "%d jobs %s for one key %v", row["n"], row["kind"], row["key"])
	}
	for _, row := range s.SQL(t, `SELECT kind, state, count(*) AS n FROM river_job GROUP BY 1, 2`) {
		r.check(row["state"] == "completed", "%d jobs %s ended %s", row["n"], row["kind"], row["state"])
	}
	archived := map[string]int{}
	for _, e := range log {
		if e.Type == "ItemArchived" {
			archived[fmt.Sprintf("%s/%s@%v", e.str("cart_id"), e.str("item_id"), e.Data["price_changed_position"])]++
		}
	}
	for k, n := range archived {
		r.check(n == 1, "item archived %d times for one price change: %s", n, k)
	}
}

// TestReliabilityCheckerDetectsCorruption: the checker passes a quiet run
// and reports each kind of damage done to it afterwards: a read model row
// deleted, a cart published twice, an item archived twice, an acknowledged
// command or Kafka message that is not in the log.
func TestReliabilityCheckerDetectsCorruption(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{Env: reliabilityEnv(nil)})
	targets := &Targets{}
	targets.Set(s.HTTP)
	w := StartWorkload(t, targets, WorkloadOptions{Clients: 3, Interval: 20 * time.Millisecond, Products: 3,
		KafkaInterval: 50 * time.Millisecond, Broker: s.Broker})
	// Enough history: submitted carts and archived items.
	eventually(t, time.Minute, func() error {
		if n := len(s.Events(t, []string{"ItemArchived"})); n == 0 {
			return fmt.Errorf("no item archived yet")
		}
		if n := len(s.Events(t, []string{"CartSubmitted"})); n < 3 {
			return fmt.Errorf("%d carts submitted", n)
		}
		return nil
	})
	w.Stop()
	w.Report(t)
	acks, produced := w.Acks(), w.Produced()
	waitSettled(t, s.DatabaseURL, produced, time.Minute)

	var clean Report
	CheckInvariants(t, &clean, s, acks, produced)
	clean.log(t, "before the damage")
	if len(clean.Violations) > 0 {
		t.Fatalf("violations on an undamaged run: %v", clean.Violations)
	}

	published := s.Events(t, []string{"CartPublished"})[0]
	archived := s.Events(t, []string{"ItemArchived"})[0]
	for _, e := range []Event{published, archived} {
		data, _ := json.Marshal(e.Data)
		resp := Request(t, http.MethodPost, s.Admin, "/dcb/append", "application/json",
			map[string]any{"events": []any{map[string]any{"type": e.Type, "tags": e.Tags, "data": string(data)}}})
		if resp.Status != http.StatusOK {
			t.Fatalf("append %s: %s", e.Type, resp)
		}
	}
	s.SQL(t, `DELETE FROM cart_items WHERE item_id = (SELECT item_id FROM cart_items LIMIT 1)`)
	lostCart := newID()
	acks = append(acks, Ack{Kind: "additem", Cart: lostCart, Item: newID(), Position: 1})
	produced = append(produced, Produced{Topic: "inventories", Partition: 0, Offset: 1 << 40, Product: newID()})

	var damaged Report
	CheckInvariants(t, &damaged, s, acks, produced)
	s = CheckRebuild(t, &damaged, []*Server{s}, nil)
	damaged.log(t, "after the damage")
	for _, want := range []string{
		"cart " + published.Data["cart_id"].(string) + ": 2 CartPublished",
		"item archived 2 times",
		"cart_items: rebuilt row missing from the stored read model",
		"acknowledged additem of cart " + lostCart.String(),
		"message inventories/0/1099511627776",
	} {
		if !damaged.has(want) {
			t.Errorf("the checker did not report %q", want)
		}
	}
}
