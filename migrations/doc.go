// Package migrations holds the numbered SQL migrations of the whole system,
// embedded in the binary and applied with goose, plus River's own migrations.
//
// Up is safe to run from several server replicas at once: the replicas queue on
// a PostgreSQL advisory lock and the first one does the work.
package migrations
