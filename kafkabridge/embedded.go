package kafkabridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultEmbeddedAddr is where the embedded broker listens unless told
// otherwise (KAFKA_EMBEDDED_ADDR's default).
const DefaultEmbeddedAddr = "127.0.0.1:9092"

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// Addr is the host:port to listen on, DefaultEmbeddedAddr if empty.
	// Port 0 picks a free port; Addrs tells which. The broker advertises
	// exactly this address to clients, so it must be one they can dial: a
	// loopback address, not 0.0.0.0.
	Addr string
	// DataDir keeps the broker's topics, records, group offsets and
	// transaction state across restarts. Empty keeps everything in memory:
	// a restart then begins every partition at offset 0 again, which the
	// consumers' offsets in PostgreSQL would take for redeliveries.
	DataDir string
	// Topics are created at start when missing, and grown to the given
	// number of partitions when they have fewer.
	Topics []Topic
	// Logger receives the start line and the broker's own warnings and
	// errors; slog.Default() if nil.
	Logger *slog.Logger
}

// Topic names a topic and its number of partitions (1 if not positive).
type Topic struct {
	Name       string
	Partitions int32
}

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake) for
// development and tests: any Kafka client, librdkafka's included, can talk to
// it. It is one broker, with no replication and no security; production uses
// a real Kafka cluster through the same client code.
type Embedded struct {
	cluster *kfake.Cluster
	addrs   []string
	unlock  func()
	closing sync.Once
}

// StartEmbedded starts the embedded broker, creates the topics, and logs one
// info line saying that an embedded development broker listens on its
// address. It fails when the address is taken, or when another process
// holds DataDir. The caller must Close it.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultEmbeddedAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		return nil, fmt.Errorf("kafkabridge: embedded broker address %q: %w", opts.Addr, err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafkabridge: embedded broker: %w", err)
	}
	e := &Embedded{addrs: []string{ln.Addr().String()}, unlock: func() {}}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("dcbkit-embedded"),
		kfake.WithLogger(kfakeLogger{opts.Logger}),
		// kfake listens on 127.0.0.1 only; handing it our own listener
		// honours the host of Addr and reports a port-0 choice exactly.
		kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil }),
	}
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			ln.Close()
			return nil, fmt.Errorf("kafkabridge: embedded broker data directory: %w", err)
		}
		// kfake does not guard its directory; two brokers writing one
		// would corrupt it.
		unlock, err := lockDir(opts.DataDir)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("kafkabridge: embedded broker data directory %s: %w", opts.DataDir, err)
		}
		e.unlock = unlock
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	e.cluster, err = kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close()
		e.unlock()
		return nil, fmt.Errorf("kafkabridge: embedded broker: %w", err)
	}
	if err := e.ensureTopics(opts.Topics); err != nil {
		e.Close()
		return nil, err
	}
	opts.Logger.Info("embedded development Kafka broker started: not for production; set KAFKA_BROKERS to use a real cluster",
		"addr", e.addrs[0], "data_dir", opts.DataDir, "topics", len(opts.Topics))
	return e, nil
}

// Addrs returns the broker's address, to give to clients as their brokers.
// It stays valid after Close.
func (e *Embedded) Addrs() []string { return append([]string(nil), e.addrs...) }

// Close stops the broker: it closes every client connection, and with a
// DataDir saves its state there (a later StartEmbedded on the same DataDir
// continues from it). Calling Close more than once is harmless.
//
// The saved state includes the members of consumer groups. Stop the
// consumers first (let Consumer.Run return): a member saved as present
// holds its partitions after the restart until its session times out
// (45 seconds by default), and the group waits for it.
func (e *Embedded) Close() {
	e.closing.Do(func() {
		e.cluster.Close()
		e.unlock()
	})
}

// ensureTopics creates the missing topics and grows the short ones. kfake's
// own SeedTopics option applies only to a fresh DataDir, so a topic added to
// the configuration later would never appear.
func (e *Embedded) ensureTopics(topics []Topic) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, e.addrs, topics); err != nil {
		return fmt.Errorf("kafkabridge: embedded broker: %w", err)
	}
	return nil
}

// EnsureTopics creates the topics that do not exist on the brokers and adds
// partitions to those that have fewer than asked. It never removes anything.
// Replication is the broker's default.
func EnsureTopics(ctx context.Context, brokers []string, topics []Topic) error {
	if len(topics) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafkabridge: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, t := range topics {
		parts := max(t.Partitions, 1)
		res, err := adm.CreateTopic(ctx, parts, -1, nil, t.Name)
		if err == nil {
			err = res.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			err = growTopic(ctx, adm, t.Name, parts)
		}
		if err != nil {
			return fmt.Errorf("kafkabridge: create topic %s: %w", t.Name, err)
		}
	}
	return nil
}

func growTopic(ctx context.Context, adm *kadm.Client, topic string, parts int32) error {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	if d, ok := details[topic]; ok && int32(len(d.Partitions)) >= parts {
		return d.Err
	}
	res, err := adm.UpdatePartitions(ctx, int(parts), topic)
	if err != nil {
		return err
	}
	return res.Error()
}

// kfakeLogger forwards the broker's warnings and errors; its info and debug
// lines describe every request.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error("embedded Kafka broker: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn("embedded Kafka broker: " + fmt.Sprintf(format, args...))
	}
}
