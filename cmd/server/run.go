package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dcbkit/dcbkit/eventstore"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
	"github.com/dcbkit/dcbkit/listeners"
	"github.com/dcbkit/dcbkit/migrations"
	"github.com/dcbkit/dcbkit/slices/cart"
	"github.com/dcbkit/dcbkit/slices/identity"
	"github.com/dcbkit/dcbkit/workqueue"
)

// Kafka topics: consumed (cart.md, "Change inventory" and "Change price")
// and produced (published carts).
var topics = []kafkabridge.Topic{
	{Name: "inventories", Partitions: 3},
	{Name: "price-changes", Partitions: 3},
	{Name: cart.PublishedCartsTopic, Partitions: 3},
}

// run builds the whole server from its configuration and serves until ctx is
// done, then shuts down in reverse order of start. It returns an error when
// the configuration is invalid or a part cannot start.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stdout, cfg.LogLevel)
	var stack shutdownStack
	defer stack.unwind(logger)

	// PostgreSQL, its schema, the event store.
	pool, err := connect(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	stack.push("database pool", func(context.Context) error { pool.Close(); return nil })
	if err := migrations.Up(ctx, pool, logger); err != nil {
		return err
	}
	m := newMetrics()
	store := eventstore.New(pool, eventstore.Options{OnAppend: m.observeAppend})
	stack.push("event store", func(context.Context) error { store.Close(); return nil })

	// Kafka: the embedded development broker unless brokers are configured.
	brokers := cfg.KafkaBrokers
	if len(brokers) > 0 {
		// Real Kafka: create missing topics if the brokers let us. A broker
		// that is away now is not fatal: consumer and producer retry.
		topicsCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := kafkabridge.EnsureTopics(topicsCtx, brokers, topics); err != nil {
			logger.Warn("could not make sure the Kafka topics exist; create them if they do not", "error", err)
		}
		cancel()
	} else {
		broker, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
			Addr: cfg.KafkaEmbeddedAddr, DataDir: cfg.KafkaDataDir, Topics: topics, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("embedded kafka: %w", err)
		}
		stack.push("embedded kafka", func(context.Context) error { broker.Close(); return nil })
		brokers = broker.Addrs()
	}
	producer, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{
		Brokers: brokers, TransactionalID: "dcbkit-publisher-" + cfg.ReplicaID, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	stack.push("kafka producer", func(context.Context) error { producer.Close(); return nil })

	// The bounded contexts.
	jobs := workqueue.New(pool, workqueue.Options{Logger: logger, ID: cfg.ReplicaID})
	readModels := httpapi.ReadModels{Wait: cfg.ReadModelWait}
	carts := &cart.Service{Store: store, Pool: pool, Logger: logger, ReadModels: readModels, Jobs: jobs, Producer: producer}
	carts.RegisterJobs(jobs, cfg.PublishBudget)
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
		logger.Info("JWT_SECRET is not set: tokens are signed with a random secret and end with this process (development only)")
	}
	users := identity.NewService(identity.Config{
		Hashing:           identity.HashParams{MemoryKiB: uint32(cfg.HashMemoryKiB), Iterations: uint32(cfg.HashIterations), Parallelism: uint8(cfg.HashParallelism)},
		Policy:            identity.PasswordPolicy{MinLength: cfg.PasswordMinLength, MaxLength: 128},
		Tokens:            identity.Tokens{Secret: secret, Lifetime: cfg.TokenLifetime},
		AdminToken:        cfg.AdminToken,
		AttemptsPerMinute: cfg.LoginAttemptsPerMinute,
		HashConcurrency:   cfg.HashConcurrency,
		HashWait:          cfg.HashWait,
	}, store, pool, logger, readModels)

	all := append(carts.Listeners(), identity.UsersListener())
	runtime := listeners.New(pool, store, listeners.Options{Holder: cfg.ReplicaID, Logger: logger}, all...)
	readModels.Checkpoints = runtime
	carts.ReadModels, users.ReadModels = readModels, readModels
	if len(cfg.ResetReadModels) > 0 {
		names := resetNames(cfg.ResetReadModels, all)
		if err := runtime.Reset(ctx, names...); err != nil {
			return fmt.Errorf("--reset-read-model: %w", err)
		}
		logger.Info("read models reset; they are replayed from the start", "read_models", names)
	}
	consumer, err := kafkabridge.NewConsumer(pool, kafkabridge.ConsumerOptions{
		Brokers: brokers, Group: "cart", Logger: logger,
		Translators: map[string]kafkabridge.Translator{
			"inventories":   carts.TranslateInventory,
			"price-changes": carts.TranslatePriceChange,
		},
	})
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}

	// Background work: jobs, listeners, the Kafka consumer.
	if err := jobs.Start(ctx); err != nil {
		return fmt.Errorf("work queue: %w", err)
	}
	stack.push("work queue", jobs.Stop)
	stack.goUntilStopped("listeners", logger, runtime.Run)
	stack.goUntilStopped("kafka consumer", logger, consumer.Run)

	// The two HTTP APIs.
	public := httpapi.NewEngine(httpapi.Options{Logger: logger, Observe: m.observeHTTP("public"), TrustedProxies: cfg.TrustedProxies})
	public.GET("/healthcheck", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	carts.Routes(public)
	users.Routes(public)
	admin, err := newAdmin(ctx, adminDeps{cfg: cfg, logger: logger, metrics: m, pool: pool, store: store,
		listeners: runtime, jobs: jobs, consumer: consumer, producer: producer})
	if err != nil {
		return err
	}
	servers := []struct {
		name, addr string
		handler    http.Handler
	}{
		{"http", cfg.HTTPAddr, public}, {"admin", cfg.AdminAddr, admin},
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		if err := serve(&stack, logger, s.name, s.addr, s.handler, cfg.ReadHeaderTimeout, errc); err != nil {
			return err
		}
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
		logger.Info("shutting down")
	}
	return err
}

// resetNames expands "all" to every stored read model: the listeners with
// tables to empty. Automations without a read model are not replayed.
func resetNames(asked []string, all []listeners.Listener) []string {
	if !slices.Contains(asked, "all") {
		return asked
	}
	var names []string
	for _, l := range all {
		if l.Reset != nil {
			names = append(names, l.Name)
		}
	}
	return names
}

// connect opens the pool, waiting up to a minute for PostgreSQL to answer
// (it may be starting beside the server).
func connect(ctx context.Context, url string, logger *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	// pgx's default pool (4 connections on this machine's 2 cores) is too
	// small for group commit, listeners, jobs and 32 concurrent requests;
	// an explicit pool_max_conns in the URL wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 40
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.Ping(pingCtx)
		cancel()
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("database: no answer from PostgreSQL (%s): %w", cfg.ConnConfig.Host, err)
		}
		logger.Warn("waiting for PostgreSQL", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// serve listens on addr and serves handler until the stack unwinds. A
// client that has not sent a request's headers within readHeaderTimeout is
// cut off (a slow-headers attack would otherwise hold a connection for the
// whole ReadTimeout).
func serve(stack *shutdownStack, logger *slog.Logger, name, addr string, handler http.Handler, readHeaderTimeout time.Duration, errc chan<- error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s: %w", name, err)
		}
	}()
	stack.push(name+" server", srv.Shutdown)
	logger.Info(name+" listening", "addr", ln.Addr().String())
	return nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts))
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// shutdownStack stops what was started, in reverse order.
type shutdownStack struct {
	steps []shutdownStep
}

type shutdownStep struct {
	name string
	stop func(context.Context) error
}

func (s *shutdownStack) push(name string, stop func(context.Context) error) {
	s.steps = append(s.steps, shutdownStep{name, stop})
}

// goUntilStopped runs f in a goroutine with its own context, cancelled (and
// waited for) when the stack unwinds.
func (s *shutdownStack) goUntilStopped(name string, logger *slog.Logger, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f(ctx); err != nil && ctx.Err() == nil {
			logger.Error(name+" stopped", "error", err)
		}
	}()
	s.push(name, func(stopCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-stopCtx.Done():
			return stopCtx.Err()
		}
	})
}

func (s *shutdownStack) unwind(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].stop(ctx); err != nil {
			logger.Error("stopping "+s.steps[i].name, "error", err)
		}
	}
	logger.Info("stopped")
}
