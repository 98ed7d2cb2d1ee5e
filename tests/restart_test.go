package tests

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRestartKeepsKafkaProgress: a server restarted on the same database
// and embedded broker data directory, after a clean stop or a crash
// (SIGKILL), goes on with the messages produced since, and handles none
// twice. After a crash, the new process waits for the dead one's listener
// leases to expire (15 s) before its read models move.
func TestRestartKeepsKafkaProgress(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "SIGTERM", true: "SIGKILL"}[crash], func(t *testing.T) {
			t.Parallel()
			s := StartServer(t, ServerOptions{})
			p := newID()
			produce(t, s.Broker, "inventories", 0, p.String(), fmt.Sprintf(`{"product_uuid":"%s","inventory":1}`, p))
			waitInventory(t, s, p, 1)
			if crash {
				s.Kill()
			} else {
				s.Stop()
			}

			s = s.Restart(t)
			produce(t, s.Broker, "inventories", 0, p.String(), fmt.Sprintf(`{"product_uuid":"%s","inventory":2}`, p))
			eventually(t, kafkaWait, func() error {
				if n := len(s.Events(t, []string{"InventoryChanged"})); n != 2 {
					return fmt.Errorf("%d InventoryChanged", n)
				}
				return nil
			})
			waitInventory(t, s, p, 2) // the lease of the crashed process must expire first
			offsets := s.SQL(t, `SELECT last_offset FROM kafka_offsets WHERE topic = 'inventories' AND partition = 0`)
			require.EqualValues(t, 1, offsets[0]["last_offset"], "the new message continues the partition's offsets")
		})
	}
}
