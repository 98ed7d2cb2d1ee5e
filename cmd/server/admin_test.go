package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcbkit/dcbkit/eventstore/eventstoretest"
	"github.com/dcbkit/dcbkit/httpapi"
	"github.com/dcbkit/dcbkit/kafkabridge"
)

// call does a request and returns status and body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOperatorAPI: health, readiness, metrics, listener status and River's
// UI answer on the operator port.
func TestOperatorAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	status, body := call(t, "GET", s.httpURL+"/healthcheck", "", "")
	require.Equal(t, 200, status, body)
	status, body = call(t, "GET", s.adminURL+"/healthz", "", "")
	require.Equal(t, 200, status, body)

	eventually(t, "readiness with Kafka connected", func() bool {
		status, body = call(t, "GET", s.adminURL+"/readyz", "", "")
		return status == 200 && strings.Contains(body, `"kafka":"ok"`)
	})
	require.JSONEq(t, `{"status":"ready","checks":{"postgres":"ok","migrations":"ok","kafka":"ok"}}`, body)

	status, body = call(t, "GET", s.adminURL+"/listeners", "", "")
	require.Equal(t, 200, status, body)
	var listeners []struct {
		Name       string `json:"name"`
		Checkpoint int64  `json:"checkpoint"`
		Lag        int64  `json:"lag"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &listeners))
	var names []string
	for _, l := range listeners {
		names = append(names, l.Name)
	}
	require.ElementsMatch(t, []string{"cart_items", "inventories", "carts_with_products", "publish_carts", "users"}, names)

	// Some traffic, then the metrics show it.
	status, body = call(t, "POST", s.adminURL+"/dcb/append", "", `{"events":[{"type":"Probe","tags":["probe:1"],"data":"x"}]}`)
	require.Equal(t, 200, status, body)
	status, body = call(t, "GET", s.adminURL+"/metrics", "", "")
	require.Equal(t, 200, status)
	for _, want := range []string{
		`dcbkit_http_requests_total{api="public",method="GET",route="/healthcheck",status="200"} 1`,
		`dcbkit_appends_total{outcome="ok"}`, "dcbkit_append_duration_seconds_bucket",
		`dcbkit_listener_lag{listener="cart_items"}`, `dcbkit_jobs{kind=`, "dcbkit_kafka_connected 1",
		`dcbkit_kafka_consumer_lag{partition="0",topic="inventories"}`, "go_goroutines",
	} {
		require.Contains(t, body, want)
	}

	status, body = call(t, "GET", s.adminURL+"/riverui/", "", "")
	require.Equal(t, 200, status)
	require.Contains(t, body, "<html")
}

// TestDCBAPIThroughServer: the DCB HTTP API on the operator port, with a
// failed condition as a normal answer and malformed input refused with
// nothing written.
func TestDCBAPIThroughServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	status, body := call(t, "POST", s.adminURL+"/dcb/append", "",
		`{"events":[{"type":"CourseDefined","tags":["course:c1"],"data":"{\"capacity\":2}"}]}`)
	require.Equal(t, 200, status, body)
	var res struct {
		Failed   bool  `json:"appendConditionFailed"`
		Position int64 `json:"position"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	require.False(t, res.Failed)

	q := `{"items":[{"types":["CourseDefined"],"tags":["course:c1"]}]}`
	status, body = call(t, "GET", s.adminURL+"/dcb/read?query="+url.QueryEscape(q), "", "")
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"data":"{\"capacity\":2}"`)
	require.Contains(t, body, `"position":`)

	status, body = call(t, "POST", s.adminURL+"/dcb/append", "",
		`{"events":[{"type":"CourseDefined","tags":["course:c1"],"data":""}],"condition":{"failIfEventsMatch":`+q+`,"after":0}}`)
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"appendConditionFailed":true`)

	head := func() string {
		_, body := call(t, "GET", s.adminURL+"/dcb/read?query="+url.QueryEscape(`{"items":[]}`)+"&options="+url.QueryEscape(`{"backwards":true,"limit":1}`), "", "")
		return body
	}
	before := head()
	for _, bad := range []string{`{"events":[{"type":"","data":""}]}`, `{"events":[{"type":"A","data":""}],"bogus":1}`, `{"events":`} {
		status, body = call(t, "POST", s.adminURL+"/dcb/append", "", bad)
		require.Equal(t, 400, status, body)
		require.Contains(t, body, `"code":"invalid_request"`)
	}
	status, body = call(t, "GET", s.adminURL+"/dcb/read?query="+url.QueryEscape(`{"items":[{"types":[""]}]}`), "", "")
	require.Equal(t, 400, status, body)
	require.Contains(t, body, `"code":"invalid_request"`)
	require.Equal(t, before, head(), "nothing was written")
}

// TestOperatorToken: with ADMIN_TOKEN set, the operator API refuses requests
// without it or with another one; the public API does not need it.
func TestOperatorToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-operator-token-of-sufficient-length"
	s := startServer(t, map[string]string{"ADMIN_TOKEN": token})
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/listeners", "/riverui/", "/dcb/read?query=%7B%22items%22%3A%5B%5D%7D"} {
		status, body := call(t, "GET", s.adminURL+path, "", "")
		require.Equal(t, http.StatusUnauthorized, status, path)
		require.Contains(t, body, `"code":"unauthorized"`, path)
		status, _ = call(t, "GET", s.adminURL+path, "wrong-token", "")
		require.Equal(t, http.StatusUnauthorized, status, path)
		status, _ = call(t, "GET", s.adminURL+path, token, "")
		require.NotEqual(t, http.StatusUnauthorized, status, path)
	}
	status, _ := call(t, "POST", s.adminURL+"/dcb/append", "", `{"events":[{"type":"A","data":""}]}`)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = call(t, "GET", s.httpURL+"/healthcheck", "", "")
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, s.logs.String(), token, "the token never reaches the log")
}

// TestResetReadModelFlag: an unknown read model is refused with the list of
// known ones; a known one and "all" work on a brand-new database.
func TestResetReadModelFlag(t *testing.T) {
	t.Parallel()
	startServer(t, nil, "--reset-read-model", "cart_items", "--reset-read-model", "users")
	startServer(t, nil, "--reset-read-model", "all")
}

func TestResetReadModelRefusesUnknownName(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL": eventstoretest.DatabaseURL(t), "HTTP_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0",
		"KAFKA_EMBEDDED_ADDR": "127.0.0.1:0", "KAFKA_DATA_DIR": t.TempDir(),
	}
	err := run(context.Background(), []string{"--reset-read-model", "nope"}, func(k string) string { return env[k] }, io.Discard)
	require.ErrorContains(t, err, `--reset-read-model`)
	require.ErrorContains(t, err, "nope")
	require.ErrorContains(t, err, "cart_items")
}

// TestOperatorAPIShowsFailingKafkaMessage: a Kafka message that keeps
// failing (here the rejected_messages table refuses its row) shows on the
// operator port with its topic, partition, offset and error: in /readyz,
// degraded but ready, and as dcbkit_kafka_consumer_failing 1; once the fault
// clears, the message is stored and both are back to normal.
func TestOperatorAPIShowsFailingKafkaMessage(t *testing.T) {
	t.Parallel()
	dbURL := eventstoretest.DatabaseURL(t)
	s := startServer(t, map[string]string{"DATABASE_URL": dbURL})
	pool, err := pgxpool.New(context.Background(), dbURL)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `ALTER TABLE rejected_messages ADD CONSTRAINT refuses_all CHECK (false) NOT VALID`)
	require.NoError(t, err)

	cl, err := kgo.NewClient(kgo.SeedBrokers(embeddedBroker(t, s)), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "inventories", Partition: 1, Value: []byte("not json")}).FirstErr())

	var ready struct {
		Status  string            `json:"status"`
		Checks  map[string]string `json:"checks"`
		Failing []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Attempts  int    `json:"attempts"`
			Error     string `json:"error"`
		} `json:"kafka_failing"`
	}
	eventually(t, "the failing message in /readyz", func() bool {
		status, body := call(t, "GET", s.adminURL+"/readyz", "", "")
		require.Equal(t, 200, status, body)
		require.NoError(t, json.Unmarshal([]byte(body), &ready))
		return len(ready.Failing) > 0
	})
	require.Equal(t, "ready", ready.Status)
	require.Contains(t, ready.Checks["kafka"], "degraded: a message keeps failing")
	require.Len(t, ready.Failing, 1)
	f := ready.Failing[0]
	require.Equal(t, "inventories", f.Topic)
	require.Equal(t, int32(1), f.Partition)
	require.Equal(t, int64(0), f.Offset)
	require.GreaterOrEqual(t, f.Attempts, 1)
	require.Contains(t, f.Error, "refuses_all")
	_, body := call(t, "GET", s.adminURL+"/metrics", "", "")
	require.Contains(t, body, `dcbkit_kafka_consumer_failing{partition="1",topic="inventories"} 1`)
	require.Contains(t, body, `dcbkit_kafka_consumer_failing{partition="0",topic="inventories"} 0`)

	_, err = pool.Exec(context.Background(), `ALTER TABLE rejected_messages DROP CONSTRAINT refuses_all`)
	require.NoError(t, err)
	eventually(t, "readiness back to ok", func() bool {
		_, body := call(t, "GET", s.adminURL+"/readyz", "", "")
		return body == `{"checks":{"kafka":"ok","migrations":"ok","postgres":"ok"},"status":"ready"}`
	})
	_, body = call(t, "GET", s.adminURL+"/metrics", "", "")
	require.Contains(t, body, `dcbkit_kafka_consumer_failing{partition="1",topic="inventories"} 0`)
	var rejected int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM rejected_messages WHERE topic = 'inventories' AND partition = 1 AND "offset" = 0`).Scan(&rejected))
	require.Equal(t, 1, rejected)
}

// embeddedBroker returns the address of the server's embedded Kafka broker,
// from its log.
func embeddedBroker(t *testing.T, s *server) string {
	t.Helper()
	var addr string
	eventually(t, "the embedded broker's log line", func() bool {
		for line := range strings.SplitSeq(s.logs.String(), "\n") {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, "embedded development Kafka broker started") {
				addr = l.Addr
				return true
			}
		}
		return false
	})
	return addr
}

// TestReadinessReportsTheProducer: a producer whose last publication failed
// (here: fenced by another producer with its transactional id) makes
// /readyz report Kafka degraded, though the consumer is connected; the next
// successful publication makes it ok again.
func TestReadinessReportsTheProducer(t *testing.T) {
	t.Parallel()
	broker, err := kafkabridge.StartEmbedded(kafkabridge.EmbeddedOptions{
		Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Topics: []kafkabridge.Topic{{Name: "published-carts", Partitions: 1}},
	})
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	pool := eventstoretest.NewPool(t)
	consumer, err := kafkabridge.NewConsumer(pool, kafkabridge.ConsumerOptions{
		Brokers: broker.Addrs(), Group: "cart", Logger: slog.New(slog.DiscardHandler),
		Translators: map[string]kafkabridge.Translator{"published-carts": func(context.Context, pgx.Tx, kafkabridge.Record) error { return nil }},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	newProducer := func() *kafkabridge.Producer {
		p, err := kafkabridge.NewProducer(kafkabridge.ProducerOptions{
			Brokers: broker.Addrs(), TransactionalID: "replica-1", Logger: slog.New(slog.DiscardHandler), Timeout: 10 * time.Second,
		})
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	producer := newProducer()
	e := httpapi.NewEngine(httpapi.Options{Logger: slog.New(slog.DiscardHandler)})
	e.GET("/readyz", readiness(adminDeps{pool: pool, consumer: consumer, producer: producer}))
	srv := httptest.NewServer(e)
	defer srv.Close()
	kafka := func() string {
		status, body := call(t, "GET", srv.URL+"/readyz", "", "")
		require.Equal(t, 200, status, body)
		var ready struct{ Checks map[string]string }
		require.NoError(t, json.Unmarshal([]byte(body), &ready))
		return ready.Checks["kafka"]
	}
	rec := kafkabridge.Record{Topic: "published-carts", Key: []byte("cart"), Value: []byte(`{}`)}

	require.NoError(t, producer.Produce(ctx, rec))
	eventually(t, "kafka ok", func() bool { return kafka() == "ok" })

	require.NoError(t, newProducer().Produce(ctx, rec), "fences the first producer")
	require.Error(t, producer.Produce(ctx, rec))
	require.Contains(t, kafka(), "degraded: the last publication failed and is retried: ")

	require.NoError(t, producer.Produce(ctx, rec))
	require.Equal(t, "ok", kafka())
}
