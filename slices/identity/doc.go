// Package identity lets a person register and log in: POST an email and a
// password, get 401 or a signed token. A second bounded context beside the
// cart, sharing the event store and nothing else.
//
// It shows the canonical DCB example: a unique email without a uniqueness
// table. Registration decides over the events tagged with the email's hash
// and appends with that query as its condition, so of two concurrent
// registrations of one address exactly one succeeds.
//
// Logins are limited per email and per client address, both across
// replicas. The lock-out per email is decided from the failed logins
// recorded with it: UserLoginFailed (a wrong password, a deactivated user,
// or a wrong current password at a password change, which the user's
// failures lock out too) and LoginFailedForUnknownEmail, so that an unknown
// email is locked out like a registered one and the lock-out does not tell
// which are registered. The limit per client address is a count in
// PostgreSQL, taken before the attempt costs a hash; it also bounds the
// failures a client can record. Every failed login records one event after
// its hash, so the three failures cost the same commit and take the same
// time.
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
