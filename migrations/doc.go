// Package migrations holds the numbered SQL migrations of the whole system,
// embedded in the binary and applied with goose, plus River's own migrations.
package migrations
