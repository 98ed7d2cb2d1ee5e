// Package identity lets a person register and log in: POST an email and a
// password, get 401 or a signed token. A second bounded context beside the
// cart, sharing the event store and nothing else.
//
// It shows the canonical DCB example: a unique email without a uniqueness
// table. Registration decides over the events tagged with the email's hash
// and appends with that query as its condition, so of two concurrent
// registrations of one address exactly one succeeds.
//
// Logins are limited per email (the lock-out, decided from the
// UserLoginFailed events, which wrong current passwords at a password
// change record too, and which lock out password changes as well) and per client address (a count in PostgreSQL,
// taken before the attempt costs a hash); both hold across replicas. Every
// failed login commits once after its hash, so that the failures that
// record an event and the one that does not (an unknown email) take the
// same time.
//
// Password hashes are the expensive part (Argon2id holds HashParams.
// MemoryKiB while it runs): a service runs at most Config.HashConcurrency
// at once, and a request that waits longer than Config.HashWait for a slot
// is answered 503 server_busy.
//
// Slices: register.go, login.go, change_password.go, deactivate_user.go,
// activate_user.go, and the stored read model users.go (GET /users/me).
// Passwords are Argon2id PHC strings (password.go); tokens are HS256 JWTs
// (token.go). No plaintext password, hash or token is ever logged. The spec is
// shared/docs/identity.md.
package identity
