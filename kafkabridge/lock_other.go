//go:build !unix

package kafkabridge

// lockDir does nothing where flock is not available: keep one embedded
// broker per data directory by hand.
func lockDir(string) (func(), error) { return func() {}, nil }
