// Command devbroker runs the embedded development Kafka broker on its own,
// for scripts and for trying outside clients (kcat) against it. It prints
// the broker's address as the first line on standard output, logs to
// standard error, and stops on SIGINT or SIGTERM (saving its state when
// given a data directory).
//
//	go run ./kafkabridge/internal/devbroker -addr 127.0.0.1:0 -topic inventories:3 -data-dir /tmp/kafka
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/dcbkit/dcbkit/kafkabridge"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	addr := fs.String("addr", kafkabridge.DefaultEmbeddedAddr, "listen address; port 0 picks a free port")
	dataDir := fs.String("data-dir", "", "keep the broker's data here (default: in memory)")
	var topics []kafkabridge.Topic
	fs.Func("topic", "topic to create, NAME or NAME:PARTITIONS (repeatable)", func(s string) error {
		name, parts, found := strings.Cut(s, ":")
		t := kafkabridge.Topic{Name: name, Partitions: 1}
		if found {
			n, err := strconv.ParseInt(parts, 10, 32)
			if err != nil || n < 1 {
				return fmt.Errorf("partitions of %q: want a positive number", s)
			}
			t.Partitions = int32(n)
		}
		if name == "" {
			return fmt.Errorf("topic %q: empty name", s)
		}
		topics = append(topics, t)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	broker, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: *addr, DataDir: *dataDir, Topics: topics, Logger: logger,
	})
	if err != nil {
		return err
	}
	fmt.Println(broker.Addrs()[0])
	<-ctx.Done()
	broker.Close()
	logger.Info("embedded development Kafka broker stopped")
	return nil
}
