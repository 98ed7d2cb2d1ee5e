// Package eventstore is an aggregate-less event store with Dynamic
// Consistency Boundaries (DCB) on PostgreSQL.
//
// # Model
//
// One shared, append-only log. An event has an id, a type, a set of tags
// (strings such as "cart_id:0193…") and opaque data; once stored it has a
// position and a record time. A Query is a list of items joined by OR; an item
// matches an event whose type is one of the item's types (any, if none) and
// that carries every tag of the item (any, if none). A query without items
// matches every event.
//
// A decision reads the events of its query, folds them into a state, decides,
// and appends with the condition that no event matching the same query was
// appended after the last position it read (AppendCondition). Package decide
// runs that loop; the Registry maps Go structs to types, tags and JSON.
//
// # Guarantees
//
//  1. Exactly one winner. Appends whose conditions overlap are decided one
//     after the other: of racing writers, exactly one commits and the others
//     get ErrAppendConditionFailed. Conditions are exact, so writers whose
//     boundaries are disjoint never fail each other. This holds for every
//     query shape.
//  2. No lost update through gaps. Every append takes one transaction-scoped
//     lock before drawing positions and holds it until commit, so positions
//     become visible in strictly increasing order: a reader that sees position
//     N sees every committed position below N, and the position of the last
//     event a read returned is always a safe "after".
//  3. Listeners never skip. Because of 2, reading "after the last position I
//     handled" never misses an event that commits later with a lower
//     position: there is none.
//  4. Atomic with the caller's transaction: AppendTx and ReadTx work inside a
//     pgx.Tx the caller owns (READ COMMITTED), so an offset, a read-model row
//     or a queued job commits with the events, or nothing does.
//  5. Idempotent retries: appending events whose ids are already stored (a
//     retry after a timeout) stores nothing and answers with the first
//     attempt's position. The caller gives every event of the append an id
//     (or none, and gives up this guarantee): see Event.ID.
//  6. Cost does not grow with the log. Every probe is a range scan of a btree
//     of (lookup key, position), the keys being 64-bit hashes of the event's
//     type, of each tag and of each (type, tag); candidates are verified
//     against the event, so hashing never changes an answer. A key that
//     consecutive events of one append share is one entry for the run of
//     their positions. The statements pin generic plans, which are index
//     probes whatever the arguments.
//  7. Nothing lost, nothing half-written: an append is one transaction. Input
//     that cannot be stored (empty type, oversized tag, too many events,
//     malformed query: see Limits) is refused with an *InputError before
//     anything is sent to the database.
//
// # Throughput
//
// Serialising appends would cap throughput at one commit at a time, so
// Append group-commits: appends that arrive while a commit is in flight are
// committed together in the next transaction, by one call of the dcb_append
// function, each checked against its own condition in arrival order (the
// later of two appends whose events and condition overlap fails, exactly as
// if they had run one after the other). The package's benchmarks compare
// conditional appends with plain INSERTs on the same database.
//
// # Writing
//
// Only this package writes to the events and event_keys tables (see
// migrations/00001_events.sql); the table is append-only, enforced by a
// trigger. The database schema comes from package migrations.
package eventstore
