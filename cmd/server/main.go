// Command server runs the dcbkit server: the public HTTP API of the slices,
// the operator API, listeners, background jobs and the Kafka bridge. See the
// README for configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	if help, ok := errors.AsType[helpRequested](err); ok {
		fmt.Print(help)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}
